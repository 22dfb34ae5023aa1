"""Ingest's Prometheus metrics (names from the team's metric catalog)."""

from __future__ import annotations

import dataclasses

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import MetricsFactory


@dataclasses.dataclass(frozen=True)
class IngestMetrics:
    captured: Counter
    published: Counter
    dropped: Counter
    stage_latency: Histogram
    camera_active: Gauge
    cameras_configured: Gauge
    dead_lettered: Counter

    @classmethod
    def create(cls, factory: MetricsFactory, dead_lettered: Counter | None = None) -> "IngestMetrics":
        """``dead_lettered``: the service's shared lfr_dlq_messages_total (MessageMetrics) when it has one."""
        return cls(
            captured=factory.counter("frames_captured_total", "frames sampled from a camera", ("camera",)),
            published=factory.counter(
                "frames_published_total", "frames published to Kafka and acknowledged", ("camera",)
            ),
            dropped=factory.counter(
                "frames_dropped_total",
                "frames captured but not published (backpressure: evicted by a newer frame; error: "
                "oversized or the broker refused)",
                ("camera", "reason"),
            ),
            stage_latency=factory.histogram(
                "stage_latency_seconds", "time spent in a pipeline stage (ingest: capture to broker ack)", ("stage",)
            ),
            camera_active=factory.gauge("camera_active", "1 while the camera delivers frames", ("camera",)),
            cameras_configured=factory.gauge("cameras_configured", "cameras in the registry"),
            dead_lettered=dead_lettered if dead_lettered is not None else factory.counter(
                "dlq_messages_total", "messages sent to the dead-letter topic", ("topic", "reason")
            ),
        )
