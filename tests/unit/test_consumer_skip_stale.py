"""ConsumerLoop's stale skip-ahead (fakes): seek by timestamp, count, commit before handling;
and the static group membership id."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from services.common.kafka import ConsumerLoop, Outbox, RecordLike, group_instance_id
from services.common.metrics import MessageMetrics, MetricsFactory
from services.common.settings import KafkaSettings

NOW_S = 1_700_000_100.0
MAX_AGE_S = 10.0
CUTOFF_MS = int((NOW_S - MAX_AGE_S) * 1000)


@dataclasses.dataclass(frozen=True)
class TP:
    topic: str
    partition: int


@dataclasses.dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    timestamp: int
    value: bytes | None = b"x"
    key: bytes | None = b"cam-1"
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclasses.dataclass
class Found:
    offset: int
    timestamp: int


class FakeProducer:
    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int | None = None,
                   timestamp_ms: int | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class FakeLog:
    """A consumer over in-memory partition logs: record i of a partition has timestamp ``stamps[tp][i]``."""

    def __init__(self, stamps: dict[TP, list[int]], positions: dict[TP, int]) -> None:
        self.stamps = stamps
        self.positions = dict(positions)
        self.events: list[str] = []
        self.committed: dict[TP, int] = {}
        self.seeks: dict[TP, int] = {}

    def assignment(self) -> set[TP]:
        return set(self.stamps)

    async def getmany(self, *partitions: Any, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[Any, list[Any]]:
        return {}

    async def offsets_for_times(self, timestamps: dict[TP, int]) -> dict[TP, Found | None]:
        out: dict[TP, Found | None] = {}
        for tp, ts in timestamps.items():
            hits = [i for i, t in enumerate(self.stamps[tp]) if t >= ts]
            out[tp] = Found(hits[0], self.stamps[tp][hits[0]]) if hits else None
        return out

    async def end_offsets(self, partitions: list[TP]) -> dict[TP, int]:
        return {tp: len(self.stamps[tp]) for tp in partitions}

    async def position(self, tp: TP) -> int:
        return self.positions[tp]

    def seek(self, tp: TP, offset: int) -> None:
        self.events.append(f"seek:{tp.partition}:{offset}")
        self.seeks[tp] = offset
        self.positions[tp] = offset

    async def commit(self, offsets: dict[Any, int] | None = None) -> None:
        assert offsets is not None
        self.events.append("commit:" + ",".join(f"{tp.partition}={o}"
                                                for tp, o in sorted(offsets.items(), key=lambda x: x[0].partition)))
        self.committed.update(offsets)


def _batch(log: FakeLog, tp: TP, start: int, count: int) -> list[Rec]:
    return [Rec(tp.topic, tp.partition, o, log.stamps[tp][o]) for o in range(start, start + count)]


def _loop(consumer: FakeLog, handled: list[tuple[int, int]], skipped: dict[int, int],
          max_age_s: float | None = MAX_AGE_S) -> ConsumerLoop:
    async def handler(record: RecordLike, out: Outbox) -> None:
        consumer.events.append(f"handle:{record.partition}:{record.offset}")
        handled.append((record.partition, record.offset))

    def on_skipped(tp: Any, n: int) -> None:
        skipped[tp.partition] = skipped.get(tp.partition, 0) + n

    return ConsumerLoop(consumer=consumer, producer=FakeProducer(), service="test", instance="i1",
                        metrics=MessageMetrics.create(MetricsFactory("test")), handler=handler,
                        max_age_s=max_age_s, on_skipped=on_skipped, clock=lambda: NOW_S)


def _stamps(old: int, fresh: int) -> list[int]:
    """``old`` records 30 s..20 s old, then ``fresh`` ones 5 s old or younger (1 per 10 ms)."""
    return [CUTOFF_MS - 20_000 + i for i in range(old)] + [CUTOFF_MS + 5_000 + 10 * i for i in range(fresh)]


async def test_a_stale_head_skips_every_partition_to_the_last_max_age_and_commits_first() -> None:
    p0, p1 = TP("frames", 0), TP("frames", 1)
    log = FakeLog({p0: _stamps(100, 20), p1: _stamps(50, 0)}, positions={p0: 40, p1: 7})
    handled: list[tuple[int, int]] = []
    skipped: dict[int, int] = {}
    loop = _loop(log, handled, skipped)
    batch = {p0: _batch(log, p0, 40, 8)}  # the consumer fetched p0's 40..47 (position 48 now)
    log.positions[p0] = 48

    left = await loop.skip_stale(batch)
    assert left == {}  # every record of the batch is older than the cutoff
    assert skipped == {0: 100 - 40, 1: 50 - 7}  # offset arithmetic from each partition's head / position
    assert log.seeks == {p0: 100, p1: 50}  # p0: first fresh record; p1: none fresh -> its end
    assert log.committed == {p0: 100, p1: 50}  # a restart does not read them again

    await loop.process(left)
    assert handled == []


async def test_records_of_the_batch_after_the_cutoff_are_still_handled_in_order() -> None:
    p0 = TP("frames", 0)
    log = FakeLog({p0: _stamps(5, 10)}, positions={p0: 0})
    handled: list[tuple[int, int]] = []
    skipped: dict[int, int] = {}
    loop = _loop(log, handled, skipped)
    batch = {p0: _batch(log, p0, 0, 8)}  # 0..4 stale, 5..7 fresh
    log.positions[p0] = 8

    left = await loop.skip_stale(batch)
    assert skipped == {0: 5} and log.seeks == {}  # the fresh tail was fetched already: no seek back
    assert log.committed == {p0: 5}
    await loop.process(left)
    assert handled == [(0, 5), (0, 6), (0, 7)]
    assert log.events == ["commit:0=5", "handle:0:5", "handle:0:6", "handle:0:7", "commit:0=8"]


async def test_a_fresh_head_changes_nothing_and_a_disabled_loop_never_skips() -> None:
    p0 = TP("frames", 0)
    log = FakeLog({p0: _stamps(5, 10)}, positions={p0: 5})
    handled: list[tuple[int, int]] = []
    skipped: dict[int, int] = {}
    batch = {p0: _batch(log, p0, 5, 4)}
    assert await _loop(log, handled, skipped).skip_stale(batch) is batch
    assert skipped == {} and log.events == []

    stale = {p0: _batch(log, p0, 0, 4)}
    loop = _loop(log, handled, skipped, max_age_s=None)

    async def once(*_: Any, **__: Any) -> dict[Any, list[Any]]:
        stop.set()
        return stale

    stop = asyncio.Event()
    log.getmany = once  # type: ignore[method-assign]
    await loop.run(stop)
    assert handled == [(0, 0), (0, 1), (0, 2), (0, 3)] and skipped == {}  # no max_age_s: read in full


async def test_a_kafka_error_while_skipping_leaves_the_batch_to_the_handler() -> None:
    from aiokafka.errors import KafkaError

    p0 = TP("frames", 0)
    log = FakeLog({p0: _stamps(5, 0)}, positions={p0: 0})

    async def broken(timestamps: dict[TP, int]) -> dict[TP, Found | None]:
        raise KafkaError("rebalancing")

    log.offsets_for_times = broken  # type: ignore[method-assign]
    skipped: dict[int, int] = {}
    batch = {p0: _batch(log, p0, 0, 5)}
    assert await _loop(log, [], skipped).skip_stale(batch) is batch
    assert skipped == {} and log.committed == {}


def test_group_instance_id_is_per_replica_and_overridable() -> None:
    kafka = KafkaSettings()
    assert group_instance_id(kafka, "recognizer", "pod-7f9c") == "recognizer-pod-7f9c"
    assert group_instance_id(kafka, "recognizer", None) is None
    assert group_instance_id(KafkaSettings(group_instance_id="rec-a"), "recognizer", "h") == "rec-a"
    assert group_instance_id(KafkaSettings(static_membership=False, group_instance_id="rec-a"),
                             "recognizer", "h") is None
    with pytest.raises(ValueError):
        KafkaSettings(group_instance_id="")
