"""Kafka helpers: a reliable producer and a consumer loop that commits after processing.

The loop (in the spirit of aiokafka's ``examples/concurrent_consumption.py``):
partitions of a fetched batch are handled concurrently, records within a
partition in order. A handler publishes through an :class:`Outbox`; the loop
waits until every publish of the batch (dead letters included) is acknowledged
by the broker (``acks=all``) and only then commits the batch's offsets. So a
crash redelivers (at least once) and never loses a record.

Stale input (``max_age_s``, live video): when the head of a fetched batch is
already older than ``max_age_s`` (record timestamp), every assigned partition
skips ahead to the first record of the last ``max_age_s``
(``offsets_for_times``; the end when there is none) without reading what it
skips; ``on_skipped`` is told how many offsets each partition skipped, and the
new positions are committed before anything else of the batch is handled (a
restart does not read them again). So a consumer that cannot keep up has a lag
bounded by ``max_age_s`` x the offered rate instead of one that grows.

Bad input: a handler raises :class:`PoisonMessage` (reason, detail); the record
goes to the dead-letter topic and its offset is committed, the service keeps
running. An unexpected exception is logged, counted and dead-lettered with
reason INTERNAL (no crash loop on one bad record). Only a failure to publish
(the broker itself) ends the loop without committing.

Privacy: a dead letter keeps its source payload only for topics the caller
lists in ``payload_topics``; for biometric topics (frames, faces, matches,
alerts) it keeps the reason, topic, partition, offset and key, and drops the bytes.

Consumer lag (``lag``, :class:`ConsumerLag`): ``lfr_consumer_lag{topic, group}``,
the records between the consumer's position and each assigned partition's
high-water mark, summed per topic (0 for a subscribed topic with no partition
here). Refreshed after every fetched batch and at least every ``interval_s``
(when idle, or while a batch takes long, e.g. a dependency is down).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

from google.protobuf.message import DecodeError, Message

from services.common import topics
from services.common.metrics import MessageMetrics
from services.common.settings import KafkaSettings

log = logging.getLogger(__name__)

# the names come from services/common/topics.py, their single source
FRAMES_TOPIC = topics.FRAMES.name
FACES_TOPIC = topics.FACES.name
MATCHES_TOPIC = topics.MATCHES.name
ALERTS_TOPIC = topics.ALERTS.name
DLQ_TOPIC = topics.DLQ.name
AUDIT_TOPIC = topics.AUDIT.name
# topics whose payloads hold pixels, crops or embeddings: never copied into the DLQ
BIOMETRIC_TOPICS: frozenset[str] = frozenset({FRAMES_TOPIC, FACES_TOPIC, MATCHES_TOPIC, ALERTS_TOPIC})

HEADER_TYPE = "lfr-type"
HEADER_PRODUCER = "lfr-producer"
HEADER_TRACE = "lfr-trace"

M = TypeVar("M", bound=Message)


class PoisonMessage(Exception):
    """Raised by a handler for a record that can never be processed (bad input)."""

    def __init__(self, reason: int, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class RecordLike(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int
    headers: Sequence[tuple[str, bytes]]


class ProducerLike(Protocol):
    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> "asyncio.Future[Any]": ...


class ConsumerLike(Protocol):
    async def getmany(self, *partitions: Any, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[Any, list[Any]]: ...

    async def commit(self, offsets: dict[Any, int] | None = None) -> None: ...


class SeekableConsumerLike(ConsumerLike, Protocol):
    """What the stale skip-ahead needs besides fetch and commit."""

    def assignment(self) -> set[Any]: ...

    async def offsets_for_times(self, timestamps: dict[Any, int]) -> dict[Any, Any]: ...

    async def end_offsets(self, partitions: list[Any]) -> dict[Any, int]: ...

    async def position(self, partition: Any) -> int: ...

    def seek(self, partition: Any, offset: int) -> None: ...


class LagConsumerLike(Protocol):
    """What measuring the consumer lag needs (an AIOKafkaConsumer)."""

    def assignment(self) -> set[Any]: ...

    def highwater(self, partition: Any) -> int | None: ...

    async def position(self, partition: Any) -> int: ...


# --- keys and headers -------------------------------------------------------


def record_key(*parts: str) -> bytes:
    """A record key from ids (e.g. the camera id, so each camera stays ordered)."""
    if not parts or any(not p or "/" in p for p in parts):
        raise ValueError("record key parts must be non-empty ids without '/'")
    return "/".join(parts).encode()


def make_headers(message: Message | str, producer: str, trace_id: str | None = None) -> list[tuple[str, bytes]]:
    """Standard headers: the payload's protobuf type, the producing service, a trace id."""
    type_name = message if isinstance(message, str) else message.DESCRIPTOR.full_name
    out = [(HEADER_TYPE, type_name.encode()), (HEADER_PRODUCER, producer.encode())]
    if trace_id:
        out.append((HEADER_TRACE, trace_id.encode()))
    return out


def header(record: RecordLike, name: str) -> str | None:
    for k, v in record.headers or ():
        if k == name:
            return v.decode(errors="replace")
    return None


def decode(record: RecordLike, message_cls: type[M], max_bytes: int | None = None) -> M:
    """Parse a record's value as ``message_cls`` or raise PoisonMessage."""
    from lfr.v1 import dlq_pb2

    value = record.value
    if value is None:
        raise PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_DECODE_ERROR, "empty record value")
    if max_bytes is not None and len(value) > max_bytes:
        raise PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_OVERSIZED, f"record of {len(value)} bytes > {max_bytes}")
    try:
        return message_cls.FromString(value)
    except DecodeError as e:
        raise PoisonMessage(
            dlq_pb2.DEAD_LETTER_REASON_DECODE_ERROR, f"not a valid {message_cls.DESCRIPTOR.full_name}: {e}"
        ) from e


# --- producer ----------------------------------------------------------------


def client_kwargs(settings: KafkaSettings, service: str) -> dict[str, Any]:
    """Connection options shared by producers, consumers and admin clients."""
    kw: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "client_id": f"{settings.client_id}-{service}",
        "request_timeout_ms": settings.request_timeout_ms,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        kw["ssl_context"] = create_ssl_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None,
            certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
            keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        )
    if settings.security_protocol.startswith("SASL"):
        kw["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        kw["sasl_plain_username"] = settings.sasl_username
        secret = settings.sasl_secret()  # read from sasl_password_file now: a rotated Secret applies on reconnect
        kw["sasl_plain_password"] = secret.get_secret_value() if secret else None
    return kw


async def start_producer(settings: KafkaSettings, service: str) -> Any:
    """A started AIOKafkaProducer: acks=all, idempotent, batched (linger), size-capped."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        **client_kwargs(settings, service),
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.linger_ms,
        compression_type=None if settings.compression == "none" else settings.compression,
        max_request_size=settings.max_request_bytes,
    )
    try:
        await producer.start()
    except BaseException:
        await producer.stop()
        raise
    return producer


def group_instance_id(settings: KafkaSettings, service: str, instance: str | None) -> str | None:
    """The static group membership id (KIP-345) of this replica, or None (dynamic membership).

    ``settings.group_instance_id`` when set, else ``<service>-<instance>`` (the
    instance name: the hostname by default, i.e. the pod name in Kubernetes)."""
    if not settings.static_membership:
        return None
    if settings.group_instance_id:
        return settings.group_instance_id
    if not instance:
        return None
    return f"{service}-{instance}"[:249]


async def start_consumer(
    settings: KafkaSettings, service: str, group_id: str, topics: Sequence[str], instance: str | None = None
) -> Any:
    """A started AIOKafkaConsumer in ``group_id``, manual commits.

    With static membership (:func:`group_instance_id`) a replica restarted after
    a crash rejoins as the same member and gets its partitions back at once,
    instead of after the dead member's session timeout; the price: a replica
    that stops for good keeps its partitions until ``session_timeout_ms``."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        *topics,
        **client_kwargs(settings, service),
        group_id=group_id,
        group_instance_id=group_instance_id(settings, service, instance),
        enable_auto_commit=False,
        auto_offset_reset=settings.auto_offset_reset,
        session_timeout_ms=settings.session_timeout_ms,
        max_partition_fetch_bytes=settings.max_request_bytes,
        isolation_level="read_committed",
    )
    try:
        await consumer.start()
    except BaseException:
        await consumer.stop()
        raise
    return consumer


# --- the consumer loop ---------------------------------------------------------


class Outbox:
    """Publishes for one batch; the loop awaits every acknowledgement before committing."""

    def __init__(self, producer: ProducerLike, metrics: MessageMetrics | None = None) -> None:
        self._producer = producer
        self._metrics = metrics
        self._pending: list[tuple[str, asyncio.Future[Any]]] = []
        self.dead_letters: list[tuple[RecordLike, PoisonMessage]] = []

    async def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: list[tuple[str, bytes]] | None = None
    ) -> None:
        """Queue a record (returns once buffered, not yet acknowledged)."""
        fut = await self._producer.send(topic, value=value, key=key, headers=headers)
        self._pending.append((topic, fut))

    def dead_letter(self, record: RecordLike, error: PoisonMessage) -> None:
        """Mark one record of a batch as bad input (for batch handlers)."""
        self.dead_letters.append((record, error))

    async def flush(self) -> int:
        """Wait for every queued publish to be acknowledged; raises if one failed."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*(f for _, f in pending))
        if self._metrics is not None:
            for topic, _ in pending:
                self._metrics.produced.labels(topic).inc()
        return len(pending)


RecordHandler = Callable[[RecordLike, Outbox], Awaitable[None]]
BatchHandler = Callable[[list[RecordLike], Outbox], Awaitable[None]]

LAG_INTERVAL_S = 5.0  # lfr_consumer_lag is refreshed at least this often (recognizer: recognizer.lag_interval_s)


@dataclasses.dataclass(frozen=True)
class ConsumerLag:
    """Where a consumer loop reports its lag: ``gauge`` is ``lfr_consumer_lag`` labelled (topic, group)."""

    gauge: Any
    group: str
    topics: tuple[str, ...]
    interval_s: float = LAG_INTERVAL_S

    async def measure(self, consumer: LagConsumerLike) -> None:
        """Set the gauge of every subscribed topic: high-water mark - position, summed over the own
        assignment (partitions without a high-water mark yet count 0). During a rebalance nothing is
        set (the next refresh tries again)."""
        from aiokafka.errors import KafkaError

        totals = dict.fromkeys(self.topics, 0)
        try:
            for tp in consumer.assignment():
                high = consumer.highwater(tp)
                if high is None:
                    continue
                totals[tp.topic] = totals.get(tp.topic, 0) + max(high - await consumer.position(tp), 0)
        except (KafkaError, AssertionError, OSError) as e:  # rebalancing: try again next time
            log.debug("lag not measured", extra={"error": repr(e)})
            return
        for topic, total in totals.items():
            self.gauge.labels(topic, self.group).set(total)


def build_dead_letter(
    record: RecordLike,
    error: PoisonMessage,
    *,
    service: str,
    instance: str,
    payload_topics: frozenset[str],
    max_payload_bytes: int,
) -> Any:
    from lfr.v1 import dlq_pb2

    value = record.value or b""
    keep = record.topic in payload_topics and record.topic not in BIOMETRIC_TOPICS
    kept = value[:max_payload_bytes] if keep else b""
    return dlq_pb2.DeadLetter(
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        source_key=record.key or b"",
        source_timestamp_unix_ns=int(record.timestamp) * 1_000_000,
        reason=error.reason,
        detail=error.detail[:1024],
        service=service,
        instance=instance,
        dead_letter_unix_ns=time.time_ns(),
        payload=kept,
        payload_size=len(value),
        payload_truncated=keep and len(kept) < len(value),
        payload_dropped=bool(value) and not keep,
    )


class ConsumerLoop:
    """Consume, handle, publish, wait for acks, commit; dead-letter bad records.

    Give exactly one of ``handler`` (called per record, in order within a
    partition) or ``batch_handler`` (called once per partition batch; it reports
    bad records with ``out.dead_letter``; if it raises, every record of that
    batch is dead-lettered as INTERNAL). With ``lag`` it reports the consumer
    lag while it runs (see the module docstring).
    """

    def __init__(
        self,
        *,
        consumer: ConsumerLike,
        producer: ProducerLike,
        service: str,
        instance: str,
        metrics: MessageMetrics,
        handler: RecordHandler | None = None,
        batch_handler: BatchHandler | None = None,
        dlq_topic: str = DLQ_TOPIC,
        payload_topics: frozenset[str] = frozenset(),
        max_payload_bytes: int = 4096,
        max_records: int = 64,
        poll_timeout_ms: int = 200,
        max_age_s: float | None = None,
        on_skipped: Callable[[Any, int], None] | None = None,
        lag: ConsumerLag | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if (handler is None) == (batch_handler is None):
            raise ValueError("give exactly one of handler or batch_handler")
        self._consumer = consumer
        self._producer = producer
        self._service = service
        self._instance = instance
        self._metrics = metrics
        self._handler = handler
        self._batch_handler = batch_handler
        self._dlq_topic = dlq_topic
        self._payload_topics = payload_topics
        self._max_payload_bytes = max_payload_bytes
        self._max_records = max_records
        self._poll_timeout_ms = poll_timeout_ms
        self._max_age_s = max_age_s
        self._on_skipped = on_skipped
        self._lag = lag
        self._lag_due = asyncio.Event()
        self._clock = clock

    async def run(self, stop: asyncio.Event) -> None:
        """Loop until ``stop`` is set; the batch in flight is finished and committed first."""
        reporter = asyncio.create_task(self._report_lag(stop), name=f"{self._service}:lag") if self._lag else None
        try:
            while not stop.is_set():
                batches = await self._consumer.getmany(timeout_ms=self._poll_timeout_ms, max_records=self._max_records)
                if not batches:
                    continue
                if self._max_age_s is not None:
                    batches = await self.skip_stale(batches)
                if batches:
                    await self.process(batches)
                self._lag_due.set()  # handled or skipped: the lag changed
        finally:
            if reporter is not None:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
        log.info("consumer loop drained", extra={"service": self._service})

    async def _report_lag(self, stop: asyncio.Event) -> None:
        """Refresh the lag gauge after each handled batch (woken by ``run``) and at least every interval."""
        assert self._lag is not None
        consumer = cast(LagConsumerLike, self._consumer)
        while not stop.is_set():
            self._lag_due.clear()
            await self._lag.measure(consumer)
            try:
                await asyncio.wait_for(self._lag_due.wait(), timeout=self._lag.interval_s)
            except TimeoutError:
                pass

    async def process(self, batches: dict[Any, list[Any]]) -> None:
        """Handle one fetched batch and commit it (partitions concurrently)."""
        await asyncio.gather(*(self._partition(records) for records in batches.values() if records))
        offsets = {tp: records[-1].offset + 1 for tp, records in batches.items() if records}
        await self._commit(offsets)

    async def skip_stale(self, batches: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
        """Skip ahead when the batch's head is older than ``max_age_s``; returns what is left to handle.

        Each assigned partition moves to ``offsets_for_times(now - max_age_s)``
        (its end when no record is that recent) if that is ahead of where it
        stands; the skipped offsets are reported to ``on_skipped`` (offset
        arithmetic: nothing is read) and committed at once. Records of the batch
        at or after the new position stay in it. On a Kafka error (e.g. a
        rebalance) the batch is returned as it is: the handler's own staleness
        check still drops what is stale, one record at a time."""
        from aiokafka.errors import IllegalStateError, KafkaError

        assert self._max_age_s is not None
        consumer = cast(SeekableConsumerLike, self._consumer)
        cutoff_ms = int((self._clock() - self._max_age_s) * 1000)
        heads = {tp: records[0] for tp, records in batches.items() if records}
        if not any(0 <= r.timestamp < cutoff_ms for r in heads.values()):
            return batches
        try:
            partitions = set(consumer.assignment()) | set(heads)
            found = await consumer.offsets_for_times({tp: cutoff_ms for tp in partitions})
            missing = [tp for tp in partitions if found.get(tp) is None]
            ends = await consumer.end_offsets(missing) if missing else {}
            targets: dict[Any, tuple[int, int]] = {}
            for tp in partitions:
                start = heads[tp].offset if tp in heads else await consumer.position(tp)
                hit = found.get(tp)
                target = hit.offset if hit is not None else ends[tp]
                if target > start:
                    targets[tp] = (start, target)
        except (KafkaError, IllegalStateError, AssertionError) as e:
            log.warning("stale records not skipped", extra={"error": repr(e)})
            return batches
        if not targets:
            return batches
        left = dict(batches)
        for tp, (start, target) in targets.items():
            records = batches.get(tp) or []
            if not records or target > records[-1].offset + 1:
                consumer.seek(tp, target)  # past what was fetched: nothing of this batch is left
            left[tp] = [r for r in records if r.offset >= target]
        await self._commit({tp: target for tp, (_, target) in targets.items()})
        for tp, (start, target) in targets.items():
            if self._on_skipped is not None:
                self._on_skipped(tp, target - start)
        log.info("skipped stale records", extra={"service": self._service, "max_age_s": self._max_age_s,
                                                 "skipped": sum(t - s for s, t in targets.values())})
        return {tp: records for tp, records in left.items() if records}

    async def _partition(self, records: list[RecordLike]) -> None:
        topic = records[0].topic
        self._metrics.consumed.labels(topic).inc(len(records))
        out = Outbox(self._producer, self._metrics)
        started = time.perf_counter()
        if self._handler is not None:
            for record in records:
                await self._one(record, out)
        else:
            await self._batch(records, out)
        for record, error in out.dead_letters:
            await self._send_dead_letter(record, error, out)
        await out.flush()  # raises if the broker refused: nothing committed, redelivered later
        self._metrics.handle_seconds.labels(topic).observe(time.perf_counter() - started)

    async def _one(self, record: RecordLike, out: Outbox) -> None:
        assert self._handler is not None
        try:
            await self._handler(record, out)
        except PoisonMessage as e:
            out.dead_letter(record, e)
        except Exception as e:  # one bad record must not crash-loop the service
            out.dead_letter(record, self._internal(record, e))

    async def _batch(self, records: list[RecordLike], out: Outbox) -> None:
        assert self._batch_handler is not None
        try:
            await self._batch_handler(records, out)
        except Exception as e:  # the whole batch failed: dead-letter each record, keep running
            error = self._internal(records[0], e)
            out.dead_letters = [(r, error) for r in records]

    def _internal(self, record: RecordLike, exc: Exception) -> PoisonMessage:
        from lfr.v1 import dlq_pb2

        self._metrics.handler_errors.labels(record.topic).inc()
        log.exception(
            "handler failed",
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
            exc_info=exc,
        )
        return PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_INTERNAL, f"{type(exc).__name__}: {exc}")

    async def _send_dead_letter(self, record: RecordLike, error: PoisonMessage, out: Outbox) -> None:
        from lfr.v1 import dlq_pb2

        letter = build_dead_letter(
            record,
            error,
            service=self._service,
            instance=self._instance,
            payload_topics=self._payload_topics,
            max_payload_bytes=self._max_payload_bytes,
        )
        reason = (dlq_pb2.DeadLetterReason.Name(error.reason) if error.reason in dlq_pb2.DeadLetterReason.values()
                  else str(error.reason))
        self._metrics.dead_lettered.labels(record.topic, reason).inc()
        log.warning(
            "dead-lettered",
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset, "reason": reason,
                   "detail": error.detail},
        )
        await out.send(self._dlq_topic, letter.SerializeToString(), key=record.key,
                       headers=make_headers(letter, self._service))

    async def _commit(self, offsets: dict[Any, int]) -> None:
        from aiokafka.errors import CommitFailedError, IllegalStateError

        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as e:  # rebalanced away: redelivered to the new owner
            self._metrics.commit_failures.inc()
            log.warning("offset commit failed; records will be redelivered", extra={"error": str(e)})
