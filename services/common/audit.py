"""The tamper-evident audit log: hash-chained ``AuditRecord`` protobufs on
``lfr.audit.v1`` (one partition = one total order, kept forever, never compacted).

Chain: ``hash = SHA-256(prev_hash || record.SerializeToString(deterministic=True))``
where the serialised record has ``hash`` cleared (and carries ``prev_hash``);
``seq`` is 0-based and contiguous; the first record has an empty ``prev_hash``.
:func:`verify_chain` recomputes it and names the first broken record.

Never biometric data: an audit record holds ids, SHA-256 hashes (exactly 32
bytes each, e.g. of an enrolled image) and decisions. :func:`build_record`
refuses anything else it can recognise (non-hash bytes, long detail values).

Several writer processes
------------------------
Each append runs under a lock; under it the writer asks the broker for the
partition's end offset and, when it moved since this writer's last append
(another process wrote), re-reads the last record and chains onto it. The lock:

- with Redis (``AuditWriter(redis=...)``): ``SET lfr:audit:lock NX PX`` via
  redis-py's ``Lock`` with a lease (``lock_lease_s``). Limits, stated honestly:
  one Redis instance is not a consensus system (no Redlock, no fencing token);
  if a writer stalls longer than the lease (GC pause, partition) or Redis fails
  over and loses the key, two writers can chain onto the same record. That is
  not silent: the fork shows up as a repeated ``seq`` / wrong ``prev_hash`` and
  ``lfr audit verify`` reports it. Nothing is lost (every record is in Kafka).
- without Redis: an in-process ``asyncio.Lock`` only, correct for one writer
  process (the end-offset check still catches a foreign append made before ours
  started, but not one racing with it).

Kafka transactions were considered and not used: they do not serialise two
producers with different transactional ids (each would still chain onto a
stale last record), and their commit markers take offsets in the partition.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from lfr.v1 import audit_pb2

from services.common.kafka import AUDIT_TOPIC, client_kwargs, make_headers, start_producer
from services.common.settings import KafkaSettings

log = logging.getLogger(__name__)

HASH_BYTES = 32
MAX_DETAIL_CHARS = 512
MAX_IDS = 1024
LOCK_KEY = "lfr:audit:lock"

# actions (others may add their own dotted names)
WATCHLIST_CREATE = "watchlist.create"
WATCHLIST_ENROL = "watchlist.enrol"
WATCHLIST_ENROL_REFUSED = "watchlist.enrol_refused"
WATCHLIST_REMOVE_SUBJECT = "watchlist.remove_subject"
WATCHLIST_CLOSE = "watchlist.close"
WATCHLIST_EXPIRE = "watchlist.expire"
WATCHLIST_BULK_IMPORT = "watchlist.bulk_import"
ALERT_RAISE = "alert.raise"
ALERT_ADJUDICATE = "alert.adjudicate"
CAMERA_ON = "camera.on"
CAMERA_OFF = "camera.off"


class AuditError(RuntimeError):
    """The record could not be appended (broker unreachable, lock not acquired, bad content)."""


def sha256(data: bytes) -> bytes:
    """The 32-byte digest to put in ``subject_hashes`` (e.g. of an image)."""
    return hashlib.sha256(data).digest()


def compute_hash(record: audit_pb2.AuditRecord) -> bytes:
    """SHA-256(prev_hash || deterministic serialisation of the record without its hash)."""
    body = audit_pb2.AuditRecord()
    body.CopyFrom(record)
    body.ClearField("hash")
    return hashlib.sha256(bytes(record.prev_hash) + body.SerializeToString(deterministic=True)).digest()


def build_record(
    *,
    seq: int,
    prev_hash: bytes,
    action: str,
    actor: str,
    service: str,
    deployment_id: str = "",
    subject_ids: Sequence[str] = (),
    subject_hashes: Sequence[bytes] = (),
    details: Mapping[str, str] | None = None,
    ts_unix_ns: int | None = None,
) -> audit_pb2.AuditRecord:
    """A sealed record (hash filled in). Refuses content that could carry biometric data."""
    if not action or not actor:
        raise AuditError("an audit record needs an action and an actor")
    if len(subject_ids) > MAX_IDS or len(subject_hashes) > MAX_IDS:
        raise AuditError(f"at most {MAX_IDS} ids and hashes per record")
    for h in subject_hashes:
        if len(h) != HASH_BYTES:
            raise AuditError(f"subject_hashes must be {HASH_BYTES}-byte SHA-256 digests, got {len(h)} bytes")
    for k, v in (details or {}).items():
        if not isinstance(v, str) or len(v) > MAX_DETAIL_CHARS:
            raise AuditError(f"detail {k!r} must be a string of at most {MAX_DETAIL_CHARS} characters")
    record = audit_pb2.AuditRecord(
        seq=seq,
        ts_unix_ns=time.time_ns() if ts_unix_ns is None else ts_unix_ns,
        actor=actor,
        action=action,
        deployment_id=deployment_id,
        subject_ids=list(subject_ids),
        subject_hashes=list(subject_hashes),
        details=dict(details or {}),
        service=service,
        prev_hash=prev_hash,
    )
    record.hash = compute_hash(record)
    return record


# --- verification ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int                 # records checked (up to and including the broken one)
    last_seq: int | None = None  # seq of the last good record
    broken_offset: int | None = None
    broken_seq: int | None = None
    reason: str = ""

    def summary(self) -> str:
        if self.ok:
            tail = f", last seq {self.last_seq}" if self.last_seq is not None else ""
            return f"audit chain OK: {self.records} records{tail}"
        return (f"audit chain BROKEN at offset {self.broken_offset} (seq {self.broken_seq}): {self.reason}; "
                f"{self.records - 1} records before it are intact")


def verify_chain(records: Iterable[tuple[int, bytes | None]]) -> VerifyResult:
    """Check (offset, value) pairs from the topic's start; stop at the first broken record."""
    prev_hash = b""
    expected_seq = 0
    count = 0
    last_seq: int | None = None
    for offset, value in records:
        count += 1
        try:
            rec = audit_pb2.AuditRecord.FromString(value or b"")
        except Exception as e:  # DecodeError and friends: the bytes are not a record
            return VerifyResult(False, count, last_seq, offset, None, f"not an AuditRecord ({type(e).__name__})")
        if not value:
            return VerifyResult(False, count, last_seq, offset, None, "empty record")
        problem = ""
        if rec.seq != expected_seq:
            problem = f"seq {rec.seq} where {expected_seq} was expected (gap, fork or reorder)"
        elif bytes(rec.prev_hash) != prev_hash:
            problem = "prev_hash does not match the previous record's hash"
        elif compute_hash(rec) != bytes(rec.hash):
            problem = "hash does not match the record's content (modified)"
        if problem:
            return VerifyResult(False, count, last_seq, offset, rec.seq, problem)
        prev_hash = bytes(rec.hash)
        expected_seq += 1
        last_seq = rec.seq
    return VerifyResult(True, count, last_seq)


# --- reading the topic ---------------------------------------------------------------


async def _start_reader(kafka: KafkaSettings, topic: str) -> tuple[Any, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(**client_kwargs(kafka, "audit-reader"), enable_auto_commit=False,
                                group_id=None, isolation_level="read_committed")
    await consumer.start()
    tp = TopicPartition(topic, 0)
    try:
        if topic not in await consumer.topics():
            raise AuditError(f"topic {topic} does not exist (run 'lfr stack up --only kafka')")
        consumer.assign([tp])
    except BaseException:
        await consumer.stop()
        raise
    return consumer, tp


async def read_records(kafka: KafkaSettings, topic: str = AUDIT_TOPIC, *, start: int = 0,
                       follow: bool = False, stop: asyncio.Event | None = None) -> AsyncIterator[tuple[int, bytes | None]]:
    """(offset, value) from ``start`` up to the end offset seen at the start (or forever with ``follow``)."""
    consumer, tp = await _start_reader(kafka, topic)
    try:
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.seek(tp, start)
        pos = start
        while follow or pos < end:
            if stop is not None and stop.is_set():
                return
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=500)
            for msg in batch.get(tp, []):
                if not follow and msg.offset >= end:
                    return
                pos = msg.offset + 1
                yield msg.offset, msg.value
            if not follow and not batch:
                pos = max(pos, await consumer.position(tp))  # skips transaction markers, if any
    finally:
        await consumer.stop()


async def verify_topic(kafka: KafkaSettings, topic: str = AUDIT_TOPIC) -> VerifyResult:
    """Recompute the whole chain from the topic's start."""
    records: list[tuple[int, bytes | None]] = []
    async for item in read_records(kafka, topic):
        records.append(item)
    return verify_chain(records)


async def _last_record(consumer: Any, tp: Any, end: int) -> audit_pb2.AuditRecord | None:
    """The last record before ``end`` (records only: skips transaction markers, if any)."""
    if end == 0:
        return None
    back = 1
    while True:
        start = max(0, end - back)
        consumer.seek(tp, start)
        last = None
        pos = start
        while pos < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
            msgs = batch.get(tp, [])
            if not msgs:
                break
            for msg in msgs:
                if msg.offset < end:
                    last = msg
                pos = msg.offset + 1
        if last is not None:
            return audit_pb2.AuditRecord.FromString(last.value or b"")
        if start == 0:
            return None
        back *= 4


# --- writing ---------------------------------------------------------------------


class AuditWriter:
    """Appends hash-chained records. ``await start()``, ``await record(...)``, ``await close()``.

    ``record`` returns once the broker acknowledged the record (acks=all), so a
    caller that audits before answering its own client never reports an action
    the log does not hold. ``on_record(action)`` (optional) is called after each
    append (e.g. to count ``lfr_audit_records_total{action}``)."""

    def __init__(self, kafka: KafkaSettings, service: str, *, topic: str = AUDIT_TOPIC, redis: Any = None,
                 lock_lease_s: float = 10.0, lock_wait_s: float = 10.0, on_record: Any = None) -> None:
        self.kafka = kafka
        self.service = service
        self.topic = topic
        self._redis = redis
        self._lock_lease_s = lock_lease_s
        self._lock_wait_s = lock_wait_s
        self._on_record = on_record
        self._local = asyncio.Lock()
        self._producer: Any = None
        self._reader: Any = None
        self._tp: Any = None
        self._next_offset: int | None = None
        self._next_seq = 0
        self._last_hash = b""

    @property
    def producer(self) -> Any:
        return self._producer

    async def start(self) -> None:
        """Connect and read the last record (raises while Kafka is down)."""
        if self._reader is None:
            self._reader, self._tp = await _start_reader(self.kafka, self.topic)
        if self._producer is None:
            self._producer = await start_producer(self.kafka, f"{self.service}-audit")
        async with self._local:
            await self._sync()

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None

    async def _sync(self) -> None:
        """Chain onto whatever is now last in the partition (another writer may have appended)."""
        end = (await self._reader.end_offsets([self._tp]))[self._tp]
        if end == self._next_offset:
            return
        last = await _last_record(self._reader, self._tp, end)
        self._next_seq = last.seq + 1 if last is not None else 0
        self._last_hash = bytes(last.hash) if last is not None else b""
        self._next_offset = end

    async def record(self, action: str, *, actor: str, deployment_id: str = "", subject_ids: Sequence[str] = (),
                     subject_hashes: Sequence[bytes] = (), details: Mapping[str, str] | None = None
                     ) -> audit_pb2.AuditRecord:
        """Append one record; returns it (with seq and hash) once acknowledged."""
        if self._producer is None or self._reader is None:
            raise AuditError("audit writer not started")
        async with self._local:
            lock = None
            if self._redis is not None:
                lock = self._redis.lock(LOCK_KEY, timeout=self._lock_lease_s, blocking_timeout=self._lock_wait_s)
                if not await lock.acquire():
                    raise AuditError(f"could not take the audit lock {LOCK_KEY} within {self._lock_wait_s} s")
            try:
                await self._sync()
                rec = build_record(seq=self._next_seq, prev_hash=self._last_hash, action=action, actor=actor,
                                   service=self.service, deployment_id=deployment_id, subject_ids=subject_ids,
                                   subject_hashes=subject_hashes, details=details)
                meta = await self._producer.send_and_wait(
                    self.topic, rec.SerializeToString(), key=action.encode(), partition=0,
                    headers=make_headers(rec, self.service))
                self._next_seq = rec.seq + 1
                self._last_hash = bytes(rec.hash)
                self._next_offset = meta.offset + 1
            finally:
                if lock is not None:
                    try:
                        await lock.release()
                    except Exception as e:  # lease expired under us: say so, the record is written
                        log.warning("audit lock lost before release", extra={"error": f"{type(e).__name__}: {e}"})
        log.info("audited", extra={"action": action, "seq": rec.seq, "offset": meta.offset})
        if self._on_record is not None:
            self._on_record(action)
        return rec

    # convenience for the other services --------------------------------------------

    async def alert_raised(self, alert_id: str, *, actor: str, deployment_id: str, camera_id: str,
                           watchlist_id: str, subject_id: str, score: float) -> audit_pb2.AuditRecord:
        return await self.record(ALERT_RAISE, actor=actor, deployment_id=deployment_id,
                                 subject_ids=[alert_id, camera_id, watchlist_id, subject_id],
                                 details={"score": f"{score:.4f}"})

    async def adjudicated(self, alert_id: str, *, officer_id: str, deployment_id: str, outcome: str,
                          note: str = "") -> audit_pb2.AuditRecord:
        details = {"outcome": outcome}
        if note:
            details["note"] = note[:MAX_DETAIL_CHARS]
        return await self.record(ALERT_ADJUDICATE, actor=officer_id, deployment_id=deployment_id,
                                 subject_ids=[alert_id], details=details)

    async def camera_changed(self, camera_id: str, *, on: bool, actor: str, deployment_id: str,
                             reason: str = "") -> audit_pb2.AuditRecord:
        return await self.record(CAMERA_ON if on else CAMERA_OFF, actor=actor, deployment_id=deployment_id,
                                 subject_ids=[camera_id], details={"reason": reason[:MAX_DETAIL_CHARS]} if reason else None)
