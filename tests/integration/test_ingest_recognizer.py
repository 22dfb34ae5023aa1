"""Ingest -> Kafka -> recognizer (Triton) -> sealed observations, over the real
stack (Kafka, Redis, Triton with the built face models), no mocks.

Each run uses its own topics (``lfr.test.<random>.{frames,faces,dlq}.v1``, the
declared configs of the real ones), its own consumer group and its own camera
registry, so parallel runs and a running `make up` do not see each other."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from rig_support import free_port, health
from topics_support import BOOTSTRAP, KafkaTopics, random_tag
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2

from lfr.v1 import dlq_pb2, faces_pb2, frames_pb2
from services.common.cameras import Camera
from services.common.frame_keys import FrameKeyOptions, FrameSealer
from services.common.kafka import record_key, start_producer
from services.common.sealing import open_sealed, redis_key
from services.common.service import ServiceContext, serve
from services.common.settings import KafkaSettings
from services.common.topics import FACES
from services.ingest.camera import stream_file
from services.ingest.config import IngestOptions
from services.recognizer.config import RecognizerSettings
from services.recognizer.worker import Recognizer
from services.face.embedder import EMBEDDING_DIM

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLIP = (REPO.parent / "shared" / "data" / "video" / "hamilton_white_house_short_clip.mp4").resolve()
STREAM_S = 4.0
FPS = 5.0


@pytest.fixture
async def topics(kafka_topics: KafkaTopics) -> dict[str, str]:
    tag = random_tag(10)
    return {**await kafka_topics.copies("test", tag, ("frames", "faces", "dlq"), max_partitions=2), "tag": tag}


async def _consume(topic: str, want: Any, timeout_s: float, what: str, partitions: int = 2) -> list[Any]:
    """Records of ``topic`` from the beginning until ``want(records)`` is true."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, group_id=None,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(recs)
            if want(got):
                return got
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; got {len(got)} records")
    finally:
        await consumer.stop()


def _clip_frame_with_face() -> np.ndarray:
    cap = cv2.VideoCapture(str(CLIP))
    ok, image = cap.read()  # the first frame shows Lin-Manuel Miranda close up
    cap.release()
    assert ok
    return image


def _frame(camera: Camera, seq: int, image: bytes) -> frames_pb2.Frame:
    return frames_pb2.Frame(camera_id=camera.id, zone=camera.zone, deployment_id=camera.deployment_id, seq=seq,
                            capture_unix_ns=time.time_ns(), publish_unix_ns=time.time_ns(), image=image,
                            encoding=frames_pb2.FRAME_ENCODING_JPEG)


async def test_clip_to_sealed_observations_and_bad_input_to_the_dlq(topics: dict[str, str], tmp_path: Path) -> None:
    from redis.asyncio import Redis

    assert CLIP.is_file(), CLIP
    camera = Camera(id=f"it-cam-{topics['tag']}", zone="it-zone", deployment_id="it-op", source=str(CLIP),
                    fps=FPS, loop=True)
    registry = tmp_path / "cameras.yaml"
    registry.write_text(
        "cameras:\n"
        f"  - {{id: {camera.id}, zone: {camera.zone}, deployment_id: {camera.deployment_id}, "
        f"source: '{CLIP}', fps: {FPS}, loop: true}}\n"
    )
    grpc_port = free_port()
    settings = RecognizerSettings(
        kafka={"dlq_topic": topics["dlq"], "auto_offset_reset": "earliest"},
        recognizer={"frames_topic": topics["frames"], "faces_topic": topics["faces"],
                    "group_id": f"lfr-it-recognizer-{topics['tag']}", "cameras_file": str(registry),
                    "max_age_s": 30.0},
        grpc={"port": grpc_port},
        metrics={"enabled": False},
    )
    workers: list[Recognizer] = []

    async def setup(ctx: ServiceContext) -> None:
        worker = Recognizer(ctx, settings)
        workers.append(worker)
        ctx.spawn(worker.run(), "recognizer")

    stop = asyncio.Event()
    service = asyncio.create_task(serve("recognizer", settings, setup, stop))
    producer = await start_producer(KafkaSettings(), "it-ingest")
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        deadline = time.monotonic() + 60
        while await health(grpc_port) != health_pb2.HealthCheckResponse.SERVING:
            assert not service.done(), f"recognizer exited: {service.result()}"
            assert time.monotonic() < deadline, "recognizer not SERVING (Kafka, Redis, Triton + models up?)"
            await asyncio.sleep(0.25)
        worker = workers[0]

        # 1. ingest streams the clip (real time, 5 fps), sealing each frame as the ingest service does
        #    -> the recognizer (sealing required, the default) -> sealed observations
        sealer = FrameSealer(redis, FrameKeyOptions())

        async def sealed(frame: frames_pb2.Frame) -> bytes:
            await sealer.seal(frame)
            return frame.SerializeToString()

        started = time.monotonic()
        stats = await stream_file(camera, producer, STREAM_S, options=IngestOptions(frames_topic=topics["frames"]),
                                  sealer=sealer)
        assert stats.published >= 0.6 * STREAM_S * FPS, stats
        assert stats.oversized == 0 and stats.publish_errors == 0

        def frames_done(_: list[Any]) -> bool:
            m = worker.metrics
            consumed = m.consumed.labels("recognizer")._value.get()
            return consumed >= stats.published

        records = await _consume(
            topics["faces"],
            lambda recs: frames_done(recs) and len(recs) >= 1,
            90, "face observations of the streamed clip")
        took = time.monotonic() - started
        observations = [faces_pb2.FaceObservation.FromString(r.value) for r in records]
        assert all(r.key == record_key(camera.id) for r in records)
        for obs in observations:
            assert obs.frame.camera_id == camera.id and obs.frame.zone == "it-zone"
            assert obs.frame.deployment_id == "it-op" and 1 <= obs.frame.seq <= stats.last_seq
            assert len(obs.embedding) == 0 and not obs.crop.jpeg, "biometric fields must travel sealed only"
            assert obs.secret.ciphertext and obs.secret.key_id
            assert obs.box.x2 > obs.box.x1 and obs.box.y2 > obs.box.y1 and obs.det_score > 0
            key = await redis.get(redis_key(obs.secret.key_id))
            assert key is not None, "data key missing from Redis"
            ttl = await redis.ttl(redis_key(obs.secret.key_id))
            assert 0 < ttl <= FACES.retention_ms // 1000
            secret = faces_pb2.FaceSecret.FromString(open_sealed(obs.secret, key, obs.observation_id))
            emb = np.asarray(secret.embedding, np.float32)
            assert emb.shape == (EMBEDDING_DIM,) and abs(float(np.linalg.norm(emb)) - 1.0) < 1e-3
            crop = cv2.imdecode(np.frombuffer(secret.crop_jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert crop is not None and crop.shape[:2] == (secret.crop_height, secret.crop_width)
            assert max(crop.shape[:2]) <= 160
        m = worker.metrics
        print(f"\n{stats.published} frames streamed, {len(observations)} observations, "
              f"{m.detected._value.get():.0f} faces detected, {m.embedded._value.get():.0f} embedded, "
              f"stale drops {sum(c._value.get() for c in m.dropped._metrics.values()):.0f}, {took:.1f} s")
        assert m.embedded._value.get() == len(observations)

        # 2. bad input -> the DLQ with a reason, and the recognizer keeps going; a frame published in
        #    clear (not through ingest's sealing) is refused UNSEALED and never analysed
        with pytest.raises(DecodeError):
            frames_pb2.Frame.FromString(b"not a protobuf \xff\xff")
        good_jpeg = cv2.imencode(".jpg", _clip_frame_with_face())[1].tobytes()
        bad = [
            (record_key(camera.id), await sealed(_frame(camera, 10_001, b"\xff\xd8\xff\xe0" + b"corrupt" * 200))),
            (record_key(camera.id), b"not a protobuf \xff\xff"),
            (record_key("no-such-camera"),
             _frame(Camera(id="no-such-camera", zone="z", deployment_id="d", source="x"), 1, good_jpeg)
             .SerializeToString()),
            (record_key(camera.id), await sealed(_frame(camera, 10_002, np.random.default_rng(1).bytes(2_500_000)))),
            (record_key(camera.id), _frame(camera, 10_003, good_jpeg).SerializeToString()),  # in clear
        ]
        for key, value in bad:
            await producer.send_and_wait(topics["frames"], value=value, key=key)
        letters_rec = await _consume(topics["dlq"], lambda recs: len(recs) >= 5, 60, "5 dead letters", partitions=1)
        letters = [dlq_pb2.DeadLetter.FromString(r.value) for r in letters_rec]
        reasons = sorted(dlq_pb2.DeadLetterReason.Name(d.reason) for d in letters)
        assert reasons == sorted(["DEAD_LETTER_REASON_CORRUPT_IMAGE", "DEAD_LETTER_REASON_DECODE_ERROR",
                                  "DEAD_LETTER_REASON_UNKNOWN_CAMERA", "DEAD_LETTER_REASON_OVERSIZED",
                                  "DEAD_LETTER_REASON_UNSEALED"]), reasons
        assert worker.messages.dead_lettered.labels(topics["frames"], "DEAD_LETTER_REASON_UNSEALED")._value.get() == 1
        for d in letters:
            assert d.source_topic == topics["frames"] and d.service == "recognizer"
            assert d.payload == b"" and d.payload_dropped and d.payload_size > 0

        await producer.send_and_wait(topics["frames"], value=await sealed(_frame(camera, 20_001, good_jpeg)),
                                     key=record_key(camera.id))

        def has_good(recs: list[Any]) -> bool:
            return any(faces_pb2.FaceObservation.FromString(r.value).frame.seq == 20_001 for r in recs)

        after = await _consume(topics["faces"], has_good, 60, "an observation of the good frame after the bad ones")
        seqs = {faces_pb2.FaceObservation.FromString(r.value).frame.seq for r in after}
        assert 10_003 not in seqs, "the frame published in clear was analysed"  # same key: it came before 20_001
        assert not service.done()
        assert await health(grpc_port) == health_pb2.HealthCheckResponse.SERVING
    finally:
        stop.set()
        code = await asyncio.wait_for(service, timeout=30)
        await producer.stop()
        await redis.aclose()
    assert code == 0
