"""ConsumerLoop with in-memory fakes: commit after processing, poison -> DLQ, keep running."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from lfr.v1 import dlq_pb2, frames_pb2

from services.common.kafka import (
    ConsumerLoop,
    Outbox,
    PoisonMessage,
    RecordLike,
    build_dead_letter,
    decode,
    header,
    make_headers,
    record_key,
)
from services.common.metrics import MessageMetrics, MetricsFactory
from kafka_support import Rec


@dataclasses.dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class FakeProducer:
    """Acks each send after `delay`; records the order of acks vs commits in `events`."""

    def __init__(self, events: list[str], fail_topic: str | None = None, delay: float = 0.01) -> None:
        self.events = events
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.fail_topic = fail_topic
        self.delay = delay

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int | None = None,
                   timestamp_ms: int | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def ack() -> None:
            await asyncio.sleep(self.delay)
            if topic == self.fail_topic:
                fut.set_exception(ConnectionError("broker down"))
                return
            self.sent.append((topic, value or b"", key))
            self.events.append(f"ack:{topic}")
            fut.set_result(None)

        asyncio.get_running_loop().create_task(ack())
        return fut


class FakeConsumer:
    def __init__(self, batches: list[dict[TP, list[Rec]]], events: list[str],
                 stop: asyncio.Event | None = None) -> None:
        self.batches = batches
        self.events = events
        self.committed: dict[TP, int] = {}
        self.stop = stop

    async def getmany(self, *partitions: Any, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[Any, list[Any]]:
        if self.batches:
            return self.batches.pop(0)
        if self.stop is not None:
            self.stop.set()
        await asyncio.sleep(0)
        return {}

    async def commit(self, offsets: dict[Any, int] | None = None) -> None:
        assert offsets is not None
        self.events.append("commit")
        self.committed.update(offsets)


def _frame(seq: int) -> bytes:
    return frames_pb2.Frame(camera_id="cam-1", seq=seq, image=b"\xff\xd8jpeg").SerializeToString()


def _loop(consumer: FakeConsumer, producer: FakeProducer, handler: Any = None, batch_handler: Any = None,
          payload_topics: frozenset[str] = frozenset()) -> tuple[ConsumerLoop, MessageMetrics]:
    metrics = MessageMetrics.create(MetricsFactory("test"))
    loop = ConsumerLoop(consumer=consumer, producer=producer, service="test", instance="i1", metrics=metrics,
                        handler=handler, batch_handler=batch_handler, payload_topics=payload_topics)
    return loop, metrics


async def _forward(record: RecordLike, out: Outbox) -> None:
    frame = decode(record, frames_pb2.Frame)
    if frame.seq == 13:
        raise RuntimeError("unexpected bug")
    await out.send("lfr.faces.v1", b"face-of-%d" % frame.seq, key=record.key)


async def test_commit_happens_after_the_publishes_are_acknowledged() -> None:
    events: list[str] = []
    tp = TP("lfr.frames.v1", 0)
    consumer = FakeConsumer([{tp: [Rec(tp.topic, 0, o, _frame(o)) for o in range(3)]}], events)
    producer = FakeProducer(events)
    loop, metrics = _loop(consumer, producer, handler=_forward)
    await loop.process(consumer.batches.pop(0))
    assert events == ["ack:lfr.faces.v1"] * 3 + ["commit"]
    assert consumer.committed == {tp: 3}  # next offset to read
    assert metrics.produced.labels("lfr.faces.v1")._value.get() == 3


async def test_poison_and_internal_errors_go_to_the_dlq_and_the_loop_keeps_running() -> None:
    events: list[str] = []
    stop = asyncio.Event()
    tp0, tp1 = TP("lfr.frames.v1", 0), TP("lfr.frames.v1", 1)
    batches = [
        {tp0: [Rec(tp0.topic, 0, 10, b"\x0a\xff\xff not a protobuf"), Rec(tp0.topic, 0, 11, _frame(1))],
         tp1: [Rec(tp1.topic, 1, 5, _frame(13)), Rec(tp1.topic, 1, 6, None)]},
        {tp0: [Rec(tp0.topic, 0, 12, _frame(2))]},  # processed after the bad ones: still running
    ]
    consumer = FakeConsumer(batches, events, stop)
    producer = FakeProducer(events)
    loop, metrics = _loop(consumer, producer, handler=_forward)
    await asyncio.wait_for(loop.run(stop), timeout=5)

    assert consumer.committed == {tp0: 13, tp1: 7}
    faces = [v for t, v, _ in producer.sent if t == "lfr.faces.v1"]
    assert sorted(faces) == [b"face-of-1", b"face-of-2"]
    letters = [dlq_pb2.DeadLetter.FromString(v) for t, v, _ in producer.sent if t == "lfr.dlq.v1"]
    by_offset = {(d.source_partition, d.source_offset): d for d in letters}
    assert set(by_offset) == {(0, 10), (1, 5), (1, 6)}
    assert by_offset[(0, 10)].reason == dlq_pb2.DEAD_LETTER_REASON_DECODE_ERROR
    assert by_offset[(1, 5)].reason == dlq_pb2.DEAD_LETTER_REASON_INTERNAL
    assert "unexpected bug" in by_offset[(1, 5)].detail
    assert by_offset[(1, 6)].reason == dlq_pb2.DEAD_LETTER_REASON_DECODE_ERROR
    for d in letters:  # frames are biometric: reason and coordinates only, never the bytes
        assert d.service == "test" and d.source_topic == "lfr.frames.v1" and d.source_key == b"cam-1"
        assert d.payload == b""
    assert by_offset[(0, 10)].payload_dropped and by_offset[(0, 10)].payload_size > 0
    assert metrics.dead_lettered.labels("lfr.frames.v1", "DEAD_LETTER_REASON_INTERNAL")._value.get() == 1
    assert metrics.handler_errors.labels("lfr.frames.v1")._value.get() == 1
    # every commit follows the acks of its batch's publishes and dead letters
    first_commit = events.index("commit")
    assert events[:first_commit].count("ack:lfr.dlq.v1") == 3 and events[:first_commit].count("ack:lfr.faces.v1") == 1


async def test_a_failed_publish_is_not_committed() -> None:
    events: list[str] = []
    tp = TP("lfr.frames.v1", 0)
    consumer = FakeConsumer([], events)
    producer = FakeProducer(events, fail_topic="lfr.faces.v1")
    loop, _ = _loop(consumer, producer, handler=_forward)
    with pytest.raises(ConnectionError):
        await loop.process({tp: [Rec(tp.topic, 0, 0, _frame(1))]})
    assert consumer.committed == {} and "commit" not in events


async def test_batch_handler_reports_single_records_and_a_crash_dead_letters_the_batch() -> None:
    events: list[str] = []
    tp = TP("lfr.frames.v1", 0)
    consumer = FakeConsumer([], events)
    producer = FakeProducer(events)

    async def batch(records: list[RecordLike], out: Outbox) -> None:
        for r in records:
            if r.offset == 1:
                out.dead_letter(r, PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_CORRUPT_IMAGE, "bad jpeg"))
            else:
                await out.send("lfr.faces.v1", b"f", key=r.key)

    loop, _ = _loop(consumer, producer, batch_handler=batch)
    await loop.process({tp: [Rec(tp.topic, 0, o, _frame(o)) for o in range(3)]})
    letters = [dlq_pb2.DeadLetter.FromString(v) for t, v, _ in producer.sent if t == "lfr.dlq.v1"]
    assert [(d.source_offset, d.reason) for d in letters] == [(1, dlq_pb2.DEAD_LETTER_REASON_CORRUPT_IMAGE)]
    assert consumer.committed == {tp: 3}

    async def crash(records: list[RecordLike], out: Outbox) -> None:
        raise ValueError("model returned nonsense")

    producer.sent.clear()
    loop, _ = _loop(consumer, producer, batch_handler=crash)
    await loop.process({tp: [Rec(tp.topic, 0, o, _frame(o)) for o in range(3, 5)]})
    letters = [dlq_pb2.DeadLetter.FromString(v) for t, v, _ in producer.sent if t == "lfr.dlq.v1"]
    assert [(d.source_offset, d.reason) for d in letters] == [(3, dlq_pb2.DEAD_LETTER_REASON_INTERNAL),
                                                            (4, dlq_pb2.DEAD_LETTER_REASON_INTERNAL)]
    assert consumer.committed == {tp: 5}


def test_dead_letter_keeps_payload_only_for_allowed_non_biometric_topics() -> None:
    err = PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_INVALID_FIELD, "no actor")
    rec = Rec("lfr.audit.v1", 0, 7, b"x" * 100)
    kept = build_dead_letter(rec, err, service="s", instance="i", payload_topics=frozenset({"lfr.audit.v1"}),
                             max_payload_bytes=10)
    assert (kept.payload == b"x" * 10 and kept.payload_truncated and not kept.payload_dropped
            and kept.payload_size == 100)
    dropped = build_dead_letter(rec, err, service="s", instance="i", payload_topics=frozenset(), max_payload_bytes=10)
    assert dropped.payload == b"" and dropped.payload_dropped
    face = Rec("lfr.faces.v1", 0, 7, b"embedding-and-crop")
    never = build_dead_letter(face, err, service="s", instance="i", payload_topics=frozenset({"lfr.faces.v1"}),
                              max_payload_bytes=10)
    assert never.payload == b"" and never.payload_dropped  # biometric topics never, even if listed


def test_decode_limits_and_helpers() -> None:
    with pytest.raises(PoisonMessage) as e:
        decode(Rec("lfr.frames.v1", 0, 0, _frame(1)), frames_pb2.Frame, max_bytes=4)
    assert e.value.reason == dlq_pb2.DEAD_LETTER_REASON_OVERSIZED
    assert record_key("cam-1") == b"cam-1"
    with pytest.raises(ValueError):
        record_key("")
    frame = frames_pb2.Frame()
    rec = Rec("t", 0, 0, b"", headers=tuple(make_headers(frame, "ingest", trace_id="abc")))
    assert header(rec, "lfr-type") == "lfr.v1.Frame" and header(rec, "lfr-producer") == "ingest"
    assert header(rec, "lfr-trace") == "abc" and header(rec, "missing") is None
