"""A batch the matcher fails on leaves no readable face behind, over the real Kafka,
Redis and Milvus connection: the matcher runs in-process as the service does (``serve``), on
topics of its own; sealed observations go in with their data keys in the real Redis, exactly as
the recognizer writes them.

The fault: the watchlist search raises an error that is not an outage (a bug, or an input that
breaks it), so the consumer loop dead-letters the whole batch as INTERNAL. Before that, every
key the batch names must be gone from Redis: the dead letters carry no payload, and the sealed
bytes left in Kafka are unreadable at once, not after the keys' TTL (60 s).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from rig_support import free_port, health
from topics_support import BOOTSTRAP, KafkaTopics, random_tag
from grpc_health.v1 import health_pb2
from lfr.v1 import common_pb2, dlq_pb2, faces_pb2

from services.common.faces_schema import EMBEDDING_DIM
from services.common.kafka import record_key, start_producer
from services.common.sealing import redis_key, seal
from services.common.service import ServiceContext, serve
from services.common.settings import KafkaSettings
from services.face.embedders import DEFAULT_EMBEDDER
from services.matcher.config import MatcherSettings
from services.matcher.worker import Matcher

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

FACES_COUNT = 4


@pytest.fixture
async def topics(kafka_topics: KafkaTopics) -> dict[str, str]:
    tag = random_tag(10)
    return {**await kafka_topics.copies("test", tag, ("faces", "matches", "dlq"), max_partitions=1), "tag": tag}


async def _dead_letters(topic: str, count: int, timeout_s: float) -> list[tuple[Any, dlq_pb2.DeadLetter]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got: list[tuple[Any, dlq_pb2.DeadLetter]] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count:
            assert time.monotonic() < deadline, f"{len(got)} of {count} dead letters after {timeout_s:.0f} s"
            for recs in (await consumer.getmany(timeout_ms=200)).values():
                got += [(r, dlq_pb2.DeadLetter.FromString(r.value)) for r in recs]
        return got
    finally:
        await consumer.stop()


def _broken_search(*args: Any, **kwargs: Any) -> list[Any]:
    raise ValueError("poison: the search cannot handle this batch")


async def test_a_failed_batch_is_shredded_before_it_is_dead_lettered(topics: dict[str, str], tmp_path: Path) -> None:
    from redis.asyncio import Redis

    camera = f"it-poison-{topics['tag']}"
    registry = tmp_path / "cameras.yaml"
    registry.write_text(f"cameras:\n  - {{id: {camera}, zone: it-zone, deployment_id: it-op, source: x.mp4}}\n")
    grpc_port = free_port()
    settings = MatcherSettings(
        kafka={"dlq_topic": topics["dlq"], "auto_offset_reset": "earliest"},
        matcher={"faces_topic": topics["faces"], "matches_topic": topics["matches"],
                 "group_id": f"lfr-it-matcher-{topics['tag']}", "cameras_file": str(registry),
                 "gating": {"min_officers": 0}},
        grpc={"port": grpc_port},
        metrics={"enabled": False},
    )

    async def setup(ctx: ServiceContext) -> None:
        ctx.spawn(Matcher(ctx, settings, search=_broken_search).run(), "matcher")

    stop = asyncio.Event()
    service = asyncio.create_task(serve("matcher", settings, setup, stop))
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    producer = await start_producer(KafkaSettings(), "it-recognizer")
    keys: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while await health(grpc_port) != health_pb2.HealthCheckResponse.SERVING:
            assert not service.done(), f"matcher exited: {service.result()}"
            assert time.monotonic() < deadline, "matcher not SERVING (Kafka, Redis, Milvus up?)"
            await asyncio.sleep(0.25)

        # what the recognizer does: the key in Redis first (TTL: the faces retention), then the observation
        batch = []
        for i in range(FACES_COUNT):
            obs_id = f"it-poison-{topics['tag']}-{i}"
            secret = faces_pb2.FaceSecret(embedding=[1.0] + [0.0] * (EMBEDDING_DIM - 1),
                                          crop_jpeg=b"\xff\xd8crop" + bytes([i]), crop_width=112, crop_height=112)
            sealed = seal(secret.SerializeToString(), obs_id)
            await redis.set(redis_key(sealed.sealed.key_id), sealed.key, ex=60)
            keys.append(redis_key(sealed.sealed.key_id))
            batch.append(faces_pb2.FaceObservation(
                observation_id=obs_id, secret=sealed.sealed, det_score=0.99, quality=0.9,
                frame=common_pb2.FrameRef(camera_id=camera, zone="it-zone", deployment_id="it-op", seq=i + 1,
                                          capture_unix_ns=time.time_ns()),
                box=common_pb2.BoundingBox(x1=1, y1=2, x2=30, y2=40),
                model=common_pb2.ModelVersion(embedder=DEFAULT_EMBEDDER)).SerializeToString())
        assert await redis.exists(*keys) == FACES_COUNT
        acks = [await producer.send(topics["faces"], value=value, key=record_key(camera)) for value in batch]
        await asyncio.gather(*acks)  # sent together: one batch for the matcher

        letters = await _dead_letters(topics["dlq"], FACES_COUNT, 60)
        # the moment the dead letters are readable, the keys are already gone (deleted before they were sent)
        assert await redis.exists(*keys) == 0, "a failed batch's keys are still readable in Redis"
        assert {d.reason for _, d in letters} == {dlq_pb2.DEAD_LETTER_REASON_INTERNAL}
        for record, d in letters:
            assert d.source_topic == topics["faces"] and d.service == "matcher"
            assert d.payload == b"" and d.payload_dropped and record.key == record_key(camera)
        assert not service.done()
    finally:
        stop.set()
        code = await asyncio.wait_for(service, timeout=30)
        await producer.stop()
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
    assert code == 0
