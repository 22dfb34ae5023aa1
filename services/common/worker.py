"""Base classes for a service's main task: connect (with retries), work until
stop, close. :class:`KafkaWorker` adds the producer and, when it is given an input
topic, a consumer driven by :class:`services.common.kafka.ConsumerLoop`
(:meth:`KafkaWorker.consumer_loop`: the one place a worker's loop is set up)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from google.protobuf.message import Message

from services.common import clients
from services.common.audit import AuditWriter
from services.common.kafka import (
    LAG_INTERVAL_S,
    BatchHandler,
    ConsumerLag,
    ConsumerLoop,
    Outbox,
    RecordLike,
    decode,
    start_consumer,
    start_producer,
)
from services.common.metrics import MessageMetrics
from services.common.service import ServiceContext

log = logging.getLogger(__name__)


class Worker:
    """Subclasses implement ``connect`` (idempotent: connect what is not yet
    connected, raise if a server does not answer), ``work`` and ``close``."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx

    async def connect(self) -> None:
        raise NotImplementedError

    async def work(self) -> None:
        await self.ctx.stop.wait()

    async def close(self) -> None:
        return None

    async def _connect(self) -> bool:
        await self.connect()
        return True

    async def run(self) -> None:
        try:
            if await self.ctx.connect(f"{self.ctx.name} dependencies", self._connect) is None:
                return  # stopped before the servers answered
            log.info("connected", extra={"service": self.ctx.name})
            self.ctx.refresh_health()
            await self.work()
        finally:
            await self.close()


class RedisUser:
    """Mixin for a worker that holds one Redis client in ``self.redis`` (set by its ``connect``):
    the health check its ServiceContext polls, and the close."""

    redis: Any = None

    async def check_redis(self) -> None:
        if self.redis is None:
            raise ConnectionError("not connected")
        await clients.check_redis(self.redis)

    async def close_redis(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None


class AuditUser:
    """Mixin for a Kafka worker that appends to the audit log through one writer in ``self.audit``: started
    (closed again when the start fails) by its ``connect``, closed by its ``close``."""

    audit: AuditWriter | None = None

    async def start_audit(self, topic: str, redis: Any,
                          on_record: Callable[[str], None] | None = None) -> AuditWriter:
        """The running writer of this service to ``topic`` (started once; ``redis`` holds the writers' lock)."""
        if self.audit is None:
            ctx: ServiceContext = self.ctx  # type: ignore[attr-defined]  # the worker's
            audit = AuditWriter.from_settings(ctx.settings.kafka, ctx.name, ctx.settings.audit, topic=topic,
                                              redis=redis, instance=ctx.settings.instance, on_record=on_record)
            try:
                await audit.start()
            except BaseException:
                await audit.close()
                raise
            self.audit = audit
        return self.audit

    async def close_audit(self) -> None:
        if self.audit is not None:
            await self.audit.close()
            self.audit = None


class KafkaWorker(Worker):
    """A worker with a Kafka producer and, if ``input_topic`` is given, a consumer of it in
    ``group_id`` (default ``lfr-<service>``) and the consumer loop that reports its lag.

    A worker overrides :meth:`handle` (per record) with the real work, or :meth:`work`
    with ``self.consumer_loop(batch_handler=...)``; the default handler decodes the
    record as ``input_type`` (bad protobuf -> DLQ) and drops it."""

    input_type: ClassVar[type[Message] | None] = None

    def __init__(self, ctx: ServiceContext, *, input_topic: str | None = None, group_id: str | None = None) -> None:
        super().__init__(ctx)
        self.settings = ctx.settings
        self.kafka = ctx.settings.kafka
        self.input_topic = input_topic
        self.group_id = group_id or f"lfr-{ctx.name}"
        self.messages = MessageMetrics.create(ctx.metrics)
        self.consumer_lag = ctx.metrics.gauge(
            "consumer_lag", "records behind the partitions' high-water marks (own assignment), per topic",
            ("topic", "group")) if input_topic else None
        self.producer: Any = None
        self.consumer: Any = None
        ctx.add_dependency("kafka", self.check_kafka)

    async def connect(self) -> None:
        if self.producer is None:
            self.producer = await start_producer(self.kafka, self.ctx.name)
        if self.input_topic and self.consumer is None:
            self.consumer = await start_consumer(self.kafka, self.ctx.name, self.group_id, [self.input_topic],
                                                 instance=self.settings.instance)

    async def check_kafka(self) -> None:
        if self.producer is None:
            raise ConnectionError("not connected")
        await clients.check_kafka(self.producer)

    async def handle(self, record: RecordLike, out: Outbox) -> None:
        assert self.input_type is not None
        decode(record, self.input_type, max_bytes=self.kafka.max_request_bytes)

    def consumer_loop(
        self,
        *,
        batch_handler: BatchHandler | None = None,
        max_age_s: float | None = None,
        on_skipped: Callable[[Any, int], None] | None = None,
        lag_interval_s: float = LAG_INTERVAL_S,
    ) -> ConsumerLoop:
        """The loop over the input topic (after :meth:`connect`): :meth:`handle` per record, or
        ``batch_handler`` per partition batch; dead letters as the Kafka settings say; the lag
        reported as ``lfr_consumer_lag{topic, group}``, refreshed at least every ``lag_interval_s``."""
        if self.consumer is None or self.input_topic is None or self.consumer_lag is None:
            raise RuntimeError(f"{self.ctx.name}: no consumer (no input topic, or not connected yet)")
        return ConsumerLoop(
            consumer=self.consumer,
            producer=self.producer,
            service=self.ctx.name,
            instance=self.settings.instance,
            metrics=self.messages,
            handler=None if batch_handler is not None else self.handle,
            batch_handler=batch_handler,
            dlq_topic=self.kafka.dlq_topic,
            max_payload_bytes=self.kafka.dlq_max_payload_bytes,
            max_records=self.kafka.max_poll_records,
            max_age_s=max_age_s,
            on_skipped=on_skipped,
            lag=ConsumerLag(self.consumer_lag, self.group_id, (self.input_topic,), lag_interval_s),
        )

    async def work(self) -> None:
        if self.consumer is None:
            await self.ctx.stop.wait()
            return
        await self.consumer_loop().run(self.ctx.stop)

    async def close(self) -> None:
        # consumer first: its last offsets are already committed by the loop
        if self.consumer is not None:
            await self.consumer.stop()
            self.consumer = None
        if self.producer is not None:
            await self.producer.stop()  # flushes anything still buffered
            self.producer = None
