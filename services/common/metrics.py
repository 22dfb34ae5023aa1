"""Prometheus helpers: one registry per service, ``lfr_``-prefixed metrics,
standard latency buckets, the common message counters, and the /metrics server
(started only when asked)."""

from __future__ import annotations

import dataclasses
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

PREFIX = "lfr_"
# seconds: 1 ms .. 10 s, fine-grained where the pipeline's stages live
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.035, 0.05, 0.075,
    0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
)  # fmt: skip


class MetricsFactory:
    """Creates ``lfr_``-prefixed metrics in one registry (a service's own)."""

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)

    def _name(self, name: str) -> str:
        return name if name.startswith(PREFIX) else PREFIX + name

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(self._name(name), doc, labelnames=labels, registry=self.registry)

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(self._name(name), doc, labelnames=labels, registry=self.registry)

    def histogram(
        self, name: str, doc: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] = LATENCY_BUCKETS
    ) -> Histogram:
        return Histogram(self._name(name), doc, labelnames=labels, registry=self.registry, buckets=buckets)


@dataclasses.dataclass(frozen=True)
class MessageMetrics:
    """The counters every Kafka-facing service exports."""

    consumed: Counter
    produced: Counter
    dead_lettered: Counter
    handler_errors: Counter
    handle_seconds: Histogram
    commit_failures: Counter

    @classmethod
    def create(cls, factory: MetricsFactory) -> "MessageMetrics":
        return cls(
            consumed=factory.counter("messages_in_total", "Kafka records consumed", ("topic",)),
            produced=factory.counter("messages_out_total", "Kafka records produced and acknowledged", ("topic",)),
            dead_lettered=factory.counter(
                "dlq_messages_total", "records sent to the dead-letter topic", ("topic", "reason")
            ),
            handler_errors=factory.counter(
                "handler_errors_total", "unexpected exceptions in message handlers", ("topic",)
            ),
            handle_seconds=factory.histogram(
                "batch_handle_seconds", "time to handle one consumed batch, publishes included", ("topic",)
            ),
            commit_failures=factory.counter("commit_failures_total", "offset commits that failed (will redeliver)"),
        )


@dataclasses.dataclass
class MetricsServer:
    """A running /metrics HTTP server; ``close()`` stops it."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve_metrics(factory: MetricsFactory, host: str, port: int) -> MetricsServer:
    """Start /metrics for the factory's registry (port 0 picks a free port)."""
    server, thread = start_http_server(port, addr=host, registry=factory.registry)
    return MetricsServer(server=server, thread=thread)
