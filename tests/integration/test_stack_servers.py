"""The real servers of the local stack (started by `lfr stack up`), no mocks:
Kafka round-trips a protobuf message and really deletes short-retention data,
topics carry their declared configs, Redis SET/GET with a TTL that expires,
Milvus insert/search/delete. Fails (never skips) when the stack is not up."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from services.common.topics import TOPICS, TopicSpec, delete_topics, ensure_topics

pytestmark = pytest.mark.integration

BOOTSTRAP = "127.0.0.1:9092"
# test-only topics: the pipeline's own topics may have live consumers
PROBE = TopicSpec(name="lfr.test.stackprobe.v1", partitions=2, retention_ms=600_000, segment_ms=60_000,
                  description="integration test probe")
RETENTION_PROBE = TopicSpec(name="lfr.test.retention.v1", partitions=1, retention_ms=2000, segment_ms=1000,
                            extra={"file.delete.delay.ms": "0", "message.timestamp.type": "LogAppendTime"},
                            description="short retention, as frames/faces but faster")


async def _topic_configs(names: list[str]) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10_000)
    await admin.start()
    try:
        configs: dict[str, dict[str, str]] = {}
        for resp in await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names]):
            for err, _msg, _t, rname, entries in resp.resources:
                assert err == 0, f"describe_configs {rname}: error {err}"
                configs[rname] = {e[0]: e[1] for e in entries}
        parts = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
        return configs, parts
    finally:
        await admin.close()


async def test_declared_topics_exist_with_their_configs() -> None:
    report = await ensure_topics(BOOTSTRAP)  # idempotent: `lfr stack up` already ran it
    assert report["created"] == [] and report["altered"] == [], report
    configs, parts = await _topic_configs([t.name for t in TOPICS])
    for spec in TOPICS:
        assert parts[spec.name] == spec.partitions, spec.name
        for key, value in spec.configs().items():
            assert configs[spec.name][key] == value, f"{spec.name} {key}"
    assert configs["lfr.audit.v1"]["retention.ms"] == "-1"
    assert configs["lfr.audit.v1"]["cleanup.policy"] == "delete"
    for name in ("lfr.frames.v1", "lfr.faces.v1"):
        assert 0 < int(configs[name]["retention.ms"]) <= 60_000


async def test_ensure_topics_creates_then_alters_to_match() -> None:
    await delete_topics(BOOTSTRAP, [PROBE.name], wait_s=10)
    try:
        assert (await ensure_topics(BOOTSTRAP, (PROBE,)))["created"] == [PROBE.name]
        assert (await ensure_topics(BOOTSTRAP, (PROBE,)))["unchanged"] == [PROBE.name]
        changed = PROBE.model_copy(update={"retention_ms": 300_000, "partitions": 3})
        assert (await ensure_topics(BOOTSTRAP, (changed,)))["altered"] == [PROBE.name]
        configs, parts = await _topic_configs([PROBE.name])
        assert configs[PROBE.name]["retention.ms"] == "300000"
        assert parts[PROBE.name] == 3
    finally:
        await delete_topics(BOOTSTRAP, [PROBE.name])


async def test_protobuf_frame_round_trip_through_kafka() -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from lfr.v1 import frames_pb2

    await delete_topics(BOOTSTRAP, [PROBE.name], wait_s=10)
    await ensure_topics(BOOTSTRAP, (PROBE,))
    sent = frames_pb2.Frame(camera_id=f"cam-{uuid.uuid4().hex[:8]}", zone="test", seq=42,
                            capture_unix_ns=time.time_ns(), image=b"\xff\xd8not-a-real-jpeg\xff\xd9",
                            width=4, height=2)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        meta = await producer.send_and_wait(PROBE.name, sent.SerializeToString(), key=sent.camera_id.encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tp = TopicPartition(PROBE.name, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
        await delete_topics(BOOTSTRAP, [PROBE.name])
    got = frames_pb2.Frame.FromString(record.value)
    assert got == sent
    assert record.key == sent.camera_id.encode()
    assert (record.partition, record.offset) == (meta.partition, meta.offset)


async def test_short_retention_really_deletes() -> None:
    """The broker's retention check (5 s) removes records of a short-retention
    topic: the privacy guarantee that frames/faces topics rely on."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    await delete_topics(BOOTSTRAP, [RETENTION_PROBE.name], wait_s=10)
    await ensure_topics(BOOTSTRAP, (RETENTION_PROBE,))
    tp = TopicPartition(RETENTION_PROBE.name, 0)
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    try:
        meta = await producer.send_and_wait(RETENTION_PROBE.name, b"ephemeral", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        start = time.monotonic()
        earliest = (await consumer.beginning_offsets([tp]))[tp]
        assert earliest <= meta.offset  # still there right after producing
        while earliest <= meta.offset and time.monotonic() - start < 45:
            await asyncio.sleep(1)
            earliest = (await consumer.beginning_offsets([tp]))[tp]
        assert earliest > meta.offset, "record still in the log 45 s after a 2 s retention"
    finally:
        await consumer.stop()
        await delete_topics(BOOTSTRAP, [RETENTION_PROBE.name])


def test_redis_set_get_with_ttl_expires() -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5)
    key = f"lfr:test:{uuid.uuid4().hex}"
    try:
        assert client.set(key, b"on-duty", px=1500)
        assert client.get(key) == b"on-duty"
        assert 0 < client.pttl(key) <= 1500
        deadline = time.monotonic() + 5
        while client.get(key) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.get(key) is None
        assert client.exists(key) == 0
        # no persistence: nothing of ours is written to disk
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
    finally:
        client.delete(key)
        client.close()


def test_milvus_insert_search_delete() -> None:
    from services.common.clients import milvus_client

    client = milvus_client("http://127.0.0.1:19530", timeout=30)
    name = f"test_stack_{uuid.uuid4().hex[:12]}"
    dim = 8
    vectors = {i: [1.0 if j == i else 0.0 for j in range(dim)] for i in range(dim)}
    try:
        client.create_collection(name, dimension=dim, metric_type="COSINE")
        res = client.insert(name, [{"id": i, "vector": v} for i, v in vectors.items()])
        assert res["insert_count"] == dim
        client.flush(name)
        hits = client.search(name, data=[vectors[3]], limit=2)[0]
        assert hits[0]["id"] == 3 and hits[0]["distance"] == pytest.approx(1.0, abs=1e-5)
        client.delete(name, ids=[3])
        remaining = sorted(r["id"] for r in client.query(name, filter="id >= 0", output_fields=["id"]))
        assert remaining == [i for i in range(dim) if i != 3]
        hits = client.search(name, data=[vectors[3]], limit=2)[0]
        assert all(h["id"] != 3 for h in hits)
    finally:
        if client.has_collection(name):
            client.drop_collection(name)
        client.close()
    assert name not in milvus_client("http://127.0.0.1:19530").list_collections()
