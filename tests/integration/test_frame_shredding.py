"""Crypto-shredding of frames over the real stack (Kafka, Redis, Triton; no mocks).

The ingest service (a child process, mTLS, gating off) streams a clip into a
frames topic of its own whose Kafka retention is one HOUR (so Kafka's own
retention cannot be what makes the bytes unreadable), with frame keys of a 2 s
window and a 3 s TTL. While a key lives, a frame read back from Kafka opens to
a JPEG. After the TTL:

- no frame key of the camera remains in Redis;
- the ciphertexts read from Kafka are found verbatim in the broker's raw log
  segment files on disk, and no JPEG header is;
- none of them can be opened: the key is gone (KeyGone), and a guessed key fails
  authentication (InvalidTag);
- the recognizer, started afterwards on the same topic, dead-letters every one of
  those frames KEY_EXPIRED, without payload.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lfr.v1 import dlq_pb2, frames_pb2
from topics_support import KafkaTopics

from services.cli.launch import PipelineLayout, ServiceProcess, Topics, state_dir, write_registry
from services.common import frame_keys
from services.common.cameras import Camera
from services.common.topics import AUDIT, DLQ, FRAMES, HOUR_MS

pytestmark = [pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
VIDEO = (REPO.parent / "shared" / "data" / "video" / "hamilton_white_house_short_clip.mp4").resolve()
BOOTSTRAP = "127.0.0.1:9092"
REDIS_URL = "redis://127.0.0.1:6379/0"
KAFKA_LOGS = state_dir() / "data" / "kafka" / "kraft-logs"
WINDOW_S, TTL_S = 2, 3
JPEG_HEADER = b"\xff\xd8\xff\xe0\x00\x10JFIF"


async def _read_all(topic: str, partitions: int, want: int = 1, timeout_s: float = 20.0) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, group_id=None,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    out: list[bytes] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(r.value for r in records)
            positions = {tp: await consumer.position(tp) for tp in tps}
            if len(out) >= want and all(positions[tp] >= ends[tp] for tp in tps):
                break
    finally:
        await consumer.stop()
    return out


async def test_frames_unreadable_once_their_keys_expire(tmp_path: Path, kafka_topics: KafkaTopics) -> None:
    from redis.asyncio import Redis

    if not VIDEO.is_file():
        pytest.skip(f"{VIDEO} missing")
    tag = uuid.uuid4().hex[:8]
    names = {"frames": f"lfr.itest.shred{tag}.frames.v1", "dlq": f"lfr.itest.shred{tag}.dlq.v1",
             "audit": f"lfr.itest.shred{tag}.audit.v1"}
    specs = (FRAMES.model_copy(update={"name": names["frames"], "partitions": 1, "retention_ms": HOUR_MS}),
             DLQ.model_copy(update={"name": names["dlq"]}), AUDIT.model_copy(update={"name": names["audit"]}))
    await kafka_topics.ensure(specs)
    camera = Camera(id=f"itest-shred-{tag}", zone=f"itest-shred-{tag}", deployment_id=f"itest-shred-{tag}",
                    source=str(VIDEO), fps=5.0, loop=True)
    layout = PipelineLayout(port_offset=4000, topics=Topics(**names), group_prefix=f"itest-shred-{tag}",
                            cameras_file=write_registry(tmp_path / "cameras.yaml", [camera]), log_dir=tmp_path,
                            log_prefix="shred-")
    redis = Redis.from_url(REDIS_URL)
    ingest = ServiceProcess("ingest", layout)
    ingest.env |= {"LFR_INGEST__GATING__MIN_OFFICERS": "0", "LFR_INGEST__AUDIT_TOPIC": names["audit"],
                   "LFR_INGEST__FRAME_KEYS__WINDOW_S": str(WINDOW_S), "LFR_INGEST__FRAME_KEYS__TTL_S": str(TTL_S)}
    recognizer: ServiceProcess | None = None
    try:
        ingest.start()
        await ingest.wait_serving(60)
        # while the keys live, frames open to JPEGs
        live = [frames_pb2.Frame.FromString(v) for v in await _read_all(names["frames"], 1, want=3)]
        assert live, f"ingest published nothing; read {ingest.log_file}"
        opener = frame_keys.FrameOpener(redis)
        first = live[0]
        assert first.protection == frame_keys.PROTECTION and first.key_id.startswith(camera.id)
        assert not first.image.startswith(b"\xff\xd8"), "the image went to Kafka in clear"
        assert (await opener.open(first)).startswith(b"\xff\xd8\xff"), "a live frame does not open"
        await asyncio.sleep(WINDOW_S * 2)  # a few windows: several keys
        assert ingest.stop() == 0
        frames = [frames_pb2.Frame.FromString(v) for v in await _read_all(names["frames"], 1, want=len(live))]
        key_ids = {f.key_id for f in frames}
        assert len(frames) >= 10 and len(key_ids) >= 2, (len(frames), key_ids)
        assert all(f.protection == frame_keys.PROTECTION for f in frames)

        # after window + TTL every key has expired by itself
        deadline = time.monotonic() + WINDOW_S + TTL_S + 5
        while [k async for k in redis.scan_iter(match=f"{frame_keys.KEY_PREFIX}{camera.id}.*")]:
            assert time.monotonic() < deadline, "frame keys outlived window + TTL"
            await asyncio.sleep(0.5)
        for kid in key_ids:
            assert await redis.exists(frame_keys.redis_key(kid)) == 0

        # the bytes are still on the broker's disk (retention 1 h): raw segment files
        segments = sorted((KAFKA_LOGS / f"{names['frames']}-0").glob("*.log"))
        raw = b"".join(p.read_bytes() for p in segments)
        assert segments and raw, f"no segment files under {KAFKA_LOGS}"
        assert all(bytes(f.image) in raw for f in frames), "the ciphertexts are not in the log segments"
        assert JPEG_HEADER not in raw, "a JPEG in clear lies in the frames topic's log segment"
        fresh = frame_keys.FrameOpener(redis)
        for f in frames:
            with pytest.raises(frame_keys.KeyGone):
                await fresh.open(f)
            with pytest.raises(InvalidTag):
                AESGCM(AESGCM.generate_key(bit_length=256)).decrypt(
                    f.nonce, f.image, frame_keys.associated_data(f))

        # and the recognizer dead-letters them KEY_EXPIRED, without payload
        recognizer = ServiceProcess("recognizer", layout)
        recognizer.env |= {"LFR_RECOGNIZER__MAX_AGE_S": "60"}
        recognizer.start()
        await recognizer.wait_serving(120)
        letters: list[dlq_pb2.DeadLetter] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            letters = [dlq_pb2.DeadLetter.FromString(v) for v in await _read_all(names["dlq"], 1, want=0,
                                                                                  timeout_s=3)]
            expired = [d for d in letters if d.reason == dlq_pb2.DEAD_LETTER_REASON_KEY_EXPIRED]
            if len(expired) >= len(frames):
                break
            await asyncio.sleep(1)
        expired = [d for d in letters if d.reason == dlq_pb2.DEAD_LETTER_REASON_KEY_EXPIRED]
        # frames older than max_age_s are dropped stale before they are opened: allow for a slow start
        assert len(expired) >= 1 and all(not d.payload and d.payload_dropped for d in expired), letters[:3]
        assert {d.reason for d in letters} == {dlq_pb2.DEAD_LETTER_REASON_KEY_EXPIRED}
    finally:
        ingest.stop()
        if recognizer is not None:
            recognizer.stop()
        await redis.aclose()
