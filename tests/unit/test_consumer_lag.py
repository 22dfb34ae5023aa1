"""Consumer lag, reported by the ConsumerLoop itself (fakes): lfr_consumer_lag{topic, group} = high-water
mark - position over the own assignment, refreshed after each fetched batch and at least every interval;
and KafkaWorker.consumer_loop, the one place a worker's loop is set up."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from aiokafka.errors import IllegalStateError
from kafka_support import Rec

from services.common.grpc_server import GrpcServer
from services.common.kafka import ConsumerLag, ConsumerLoop, Outbox, RecordLike
from services.common.metrics import MessageMetrics, MetricsFactory
from services.common.service import ServiceContext
from services.common.settings import ServiceSettings
from services.common.worker import KafkaWorker

TOPIC = "lfr.faces.v1"
GROUP = "lfr-matcher"


@dataclasses.dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class FakeProducer:
    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   partition: int | None = None, timestamp_ms: int | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class FakeConsumer:
    """Partition logs of ``ends[tp]`` records each; ``getmany`` hands out one batch of up to ``step``
    records per partition (position moves past them), then nothing."""

    def __init__(self, ends: dict[TP, int], step: int = 2) -> None:
        self.ends = dict(ends)
        self.positions = dict.fromkeys(ends, 0)
        self.step = step
        self.fail_position = False
        self.committed: dict[TP, int] = {}

    def assignment(self) -> set[TP]:
        return set(self.ends)

    def highwater(self, tp: TP) -> int | None:
        return self.ends[tp]

    async def position(self, tp: TP) -> int:
        if self.fail_position:
            raise IllegalStateError("partition is not assigned (rebalancing)")
        return self.positions[tp]

    async def getmany(self, *partitions: Any, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[Any, list[Any]]:
        out: dict[Any, list[Any]] = {}
        for tp, end in self.ends.items():
            start = self.positions[tp]
            stop = min(end, start + self.step)
            if stop > start:
                out[tp] = [Rec(tp.topic, tp.partition, o, b"x") for o in range(start, stop)]
                self.positions[tp] = stop
        if not out:
            await asyncio.sleep(timeout_ms / 1000)
        return out

    async def commit(self, offsets: dict[Any, int] | None = None) -> None:
        self.committed.update(offsets or {})


def _gauge(factory: MetricsFactory) -> Any:
    return factory.gauge("consumer_lag", "records behind", ("topic", "group"))


def _lag(factory: MetricsFactory, topic: str = TOPIC, group: str = GROUP) -> float | None:
    return factory.registry.get_sample_value("lfr_consumer_lag", {"topic": topic, "group": group})


async def _noop(record: RecordLike, out: Outbox) -> None:
    return None


async def test_lag_is_the_records_behind_each_partitions_high_water_mark_summed_per_topic() -> None:
    factory = MetricsFactory("test")
    consumer = FakeConsumer({TP(TOPIC, 0): 5, TP(TOPIC, 1): 3})
    consumer.positions = {TP(TOPIC, 0): 1, TP(TOPIC, 1): 3}
    lag = ConsumerLag(_gauge(factory), GROUP, (TOPIC, "lfr.other.v1"))
    await lag.measure(consumer)
    assert _lag(factory) == 4
    assert _lag(factory, "lfr.other.v1") == 0  # a subscribed topic with no partition here: 0, not missing


async def test_a_rebalance_leaves_the_last_value() -> None:
    factory = MetricsFactory("test")
    consumer = FakeConsumer({TP(TOPIC, 0): 5})
    lag = ConsumerLag(_gauge(factory), GROUP, (TOPIC,))
    await lag.measure(consumer)
    assert _lag(factory) == 5
    consumer.fail_position = True
    await lag.measure(consumer)
    assert _lag(factory) == 5


async def test_the_loop_refreshes_the_lag_after_each_batch() -> None:
    factory = MetricsFactory("test")
    consumer = FakeConsumer({TP(TOPIC, 0): 5, TP(TOPIC, 1): 1})
    loop = ConsumerLoop(consumer=consumer, producer=FakeProducer(), service="test", instance="i1",
                        metrics=MessageMetrics.create(factory), handler=_noop, poll_timeout_ms=10,
                        lag=ConsumerLag(_gauge(factory), GROUP, (TOPIC,), interval_s=60.0))
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    for _ in range(200):
        await asyncio.sleep(0.01)
        if consumer.committed == {TP(TOPIC, 0): 5, TP(TOPIC, 1): 1} and _lag(factory) == 0:
            break
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert _lag(factory) == 0  # measured after the last batch, not 60 s later


async def test_an_idle_loop_refreshes_the_lag_every_interval() -> None:
    factory = MetricsFactory("test")
    consumer = FakeConsumer({TP(TOPIC, 0): 0})
    loop = ConsumerLoop(consumer=consumer, producer=FakeProducer(), service="test", instance="i1",
                        metrics=MessageMetrics.create(factory), handler=_noop, poll_timeout_ms=10,
                        lag=ConsumerLag(_gauge(factory), GROUP, (TOPIC,), interval_s=0.02))
    stop = asyncio.Event()
    task = asyncio.create_task(loop.run(stop))
    await asyncio.sleep(0.05)
    assert _lag(factory) == 0
    consumer.ends[TP(TOPIC, 0)] = 7  # the high-water mark moved, nothing fetched (e.g. a batch still in flight)
    consumer.step = 0
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert _lag(factory) == 7


class Worker(KafkaWorker):
    pass


def _ctx() -> ServiceContext:
    settings = ServiceSettings()
    return ServiceContext(name="things", settings=settings, metrics=MetricsFactory("things"),
                          grpc=GrpcServer(settings.grpc), stop=asyncio.Event())


async def test_a_worker_loop_reports_its_input_topics_lag_in_its_group() -> None:
    worker = Worker(_ctx(), input_topic=TOPIC, group_id="lfr-things-a")
    assert (worker.input_topic, worker.group_id) == (TOPIC, "lfr-things-a")
    worker.consumer = FakeConsumer({TP(TOPIC, 0): 2})
    worker.producer = FakeProducer()
    worker.consumer.step = 0  # nothing fetched: 2 records behind
    task = asyncio.create_task(worker.consumer_loop().run(worker.ctx.stop))
    await asyncio.sleep(0.05)
    worker.ctx.stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert _lag(worker.ctx.metrics, TOPIC, "lfr-things-a") == 2


async def test_a_worker_without_an_input_topic_has_no_loop_and_no_lag_gauge() -> None:
    worker = Worker(_ctx())
    assert (worker.input_topic, worker.group_id, worker.consumer_lag) == (None, "lfr-things", None)
    with pytest.raises(RuntimeError, match="no consumer"):
        worker.consumer_loop()
    assert "lfr_consumer_lag" not in {m.name for m in worker.ctx.metrics.registry.collect()}
