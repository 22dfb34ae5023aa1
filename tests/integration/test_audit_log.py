"""The audit log on the real broker: the real lfr.audit.v1 verifies; a copy with
one record altered (Kafka logs cannot be edited in place) fails, naming it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lfr.v1 import audit_pb2

from services.common.audit import AuditWriter, read_records, sha256
from services.common.settings import KafkaSettings
from services.common.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KAFKA = KafkaSettings(bootstrap="127.0.0.1:9092")


def lfr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli.main", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def topics() -> Iterator[tuple[str, str]]:
    tag = "".join(c for c in uuid.uuid4().hex if c.isalpha())[:8] or "x"
    names = (f"lfr.test.audit.{tag}.v1", f"lfr.test.tampered.{tag}.v1")
    specs = tuple(TopicSpec(name=n, partitions=1, retention_ms=3_600_000, segment_ms=3_600_000) for n in names)
    asyncio.run(ensure_topics(KAFKA.bootstrap, specs))
    yield names

    async def drop() -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(list(names))
        finally:
            await admin.close()

    asyncio.run(drop())


def test_real_audit_log_verifies() -> None:
    run = lfr("audit", "verify")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "lfr.audit.v1: audit chain OK" in run.stdout


async def _write_chain(topic: str, n: int) -> None:
    from services.common.clients import connect_redis
    from services.common.settings import RedisSettings

    redis = await connect_redis(RedisSettings())
    writers = [AuditWriter(KAFKA, f"writer{i}", topic=topic, redis=redis) for i in range(2)]
    try:
        for w in writers:
            await w.start()

        async def write(w: AuditWriter, k: int) -> None:
            for i in range(k):
                await w.record("camera.on", actor=w.service, deployment_id="op-audit", subject_ids=[f"cam-{i}"],
                               subject_hashes=[sha256(f"{w.service}{i}".encode())])

        await asyncio.gather(write(writers[0], n // 2), write(writers[1], n - n // 2))  # two writers, one chain
    finally:
        for w in writers:
            await w.close()
        await redis.aclose()


async def _copy(src: str, dst: str, alter_offset: int) -> None:
    from services.common.kafka import start_producer

    producer = await start_producer(KAFKA, "audit-test")
    try:
        async for offset, value in read_records(KAFKA, src):
            if offset == alter_offset:
                rec = audit_pb2.AuditRecord.FromString(value or b"")
                rec.actor = "forger"  # hash left as it was
                value = rec.SerializeToString()
            await producer.send_and_wait(dst, value, partition=0)
    finally:
        await producer.stop()


def test_verify_names_the_tampered_record(topics: tuple[str, str]) -> None:
    good, bad = topics
    asyncio.run(_write_chain(good, 8))
    ok = lfr("audit", "verify", "--topic", good)
    assert ok.returncode == 0 and "audit chain OK: 8 records, last seq 7" in ok.stdout, ok.stdout + ok.stderr

    asyncio.run(_copy(good, bad, alter_offset=5))
    broken = lfr("audit", "verify", "--topic", bad)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "BROKEN at offset 5 (seq 5)" in broken.stdout and "modified" in broken.stdout, broken.stdout

    tail = lfr("audit", "tail", "--topic", bad, "-n", "3")
    assert tail.returncode == 0 and tail.stdout.count("camera.on") == 3, tail.stdout
