"""Recognizer batch handling with fakes for Kafka and Redis and the real models
in-process (onnxruntime, from the model cache): Triton outages are retried and
never dead-lettered, stale frames are dropped, bad input is dead-lettered with
its reason, the data key reaches Redis before the observation is sent, and no
key or ciphertext reaches the logs."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from kafka_support import Rec
from lfr.v1 import dlq_pb2, faces_pb2, frames_pb2
from recognizer_fakes import Producer, Redis

from services.common.grpc_server import GrpcServer
from services.common.kafka import Outbox
from services.common.metrics import MetricsFactory
from services.common.sealing import open_sealed
from services.common.service import ServiceContext
from services.common.triton_client import TritonUnavailable
from services.face.embedder import EMBEDDING_DIM
from services.face.pipeline import face_models
from services.models.paths import model_path
from services.recognizer.config import RecognizerSettings
from services.recognizer.worker import Recognizer

REPO = Path(__file__).resolve().parents[2]
CLIP = REPO.parent / "shared" / "data" / "video" / "hamilton_white_house_short_clip.mp4"

pytestmark = pytest.mark.skipif(
    not all(model_path(m).is_file() for m in face_models()) or not CLIP.is_file(),
    reason="needs `lfr models build` and ../shared/data",
)


class FlakyRunner:
    """OnnxRunner (the real models, in-process) that is 'unreachable' for the first ``failures`` calls."""

    def __init__(self, failures: int) -> None:
        from services.face.runner import OnnxRunner

        self.inner = OnnxRunner(intra_op_threads=1)
        self.failures = failures
        self.calls = 0
        self.detector = self

    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls += 1
        if self.calls <= self.failures:
            raise TritonUnavailable("127.0.0.1:1", "connection refused")
        return await self.inner.infer(model, inputs)

    async def model_ready(self, model: str) -> bool:
        return self.calls > self.failures

    async def close(self) -> None:
        return None


CAMERA = "cam-1"


def make_worker(tmp_path: Path, events: list[str], failures: int = 0,
                **options: Any) -> tuple[Recognizer, Producer, Redis]:
    registry = tmp_path / "cameras.yaml"
    registry.write_text(f"cameras:\n  - {{id: {CAMERA}, zone: z1, deployment_id: op1, source: x.mp4}}\n")
    settings = RecognizerSettings(
        # plaintext frames (sealing: test_recognizer_overlap.py::test_unsealed_frames_*)
        recognizer={"cameras_file": str(registry), "retry_initial_s": 0.01, "retry_max_s": 0.05,
                    "require_sealed_frames": False, **options},
        metrics={"enabled": False},
    )
    ctx = ServiceContext(name="recognizer", settings=settings, metrics=MetricsFactory("recognizer"),
                         grpc=GrpcServer(settings.grpc), stop=asyncio.Event())
    worker = Recognizer(ctx, settings)
    worker.runner = FlakyRunner(failures)  # type: ignore[assignment]
    producer, redis = Producer(events), Redis(events)
    worker.producer, worker.redis = producer, redis
    return worker, producer, redis


def face_jpeg() -> bytes:
    cap = cv2.VideoCapture(str(CLIP))
    ok, image = cap.read()  # Lin-Manuel Miranda close up (and a small face in the background)
    cap.release()
    assert ok
    return cv2.imencode(".jpg", image)[1].tobytes()


def frame(seq: int, image: bytes, camera: str = CAMERA, age_s: float = 0.0) -> bytes:
    return frames_pb2.Frame(camera_id=camera, zone="z1", deployment_id="op1", seq=seq,
                            capture_unix_ns=time.time_ns() - int(age_s * 1e9), image=image,
                            encoding=frames_pb2.FRAME_ENCODING_JPEG).SerializeToString()


def value(worker: Recognizer, metric: str, **labels: str) -> float:
    v = worker.ctx.metrics.registry.get_sample_value(metric, labels)
    return 0.0 if v is None else v


async def test_triton_outage_is_retried_then_faces_are_sealed_and_keyed_before_publish(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    events: list[str] = []
    worker, producer, redis = make_worker(tmp_path, events, failures=2)
    out = Outbox(producer)
    await worker.handle_batch([Rec("lfr.frames.v1", 0, 0, frame(1, face_jpeg()))], out)
    await out.flush()
    assert out.dead_letters == []  # Triton down is not the frame's fault
    faces = [faces_pb2.FaceObservation.FromString(v) for t, v, _ in producer.sent if t == "lfr.faces.v1"]
    assert len(faces) >= 1
    assert events.index("send:lfr.faces.v1") > max(i for i, e in enumerate(events) if e == "redis:set")
    for obs in faces:
        assert obs.frame.camera_id == CAMERA and obs.frame.seq == 1 and not obs.embedding
        key, ttl = redis.store[f"lfr:obs:{obs.secret.key_id}"]
        assert ttl == 60
        secret = faces_pb2.FaceSecret.FromString(open_sealed(obs.secret, key, obs.observation_id))
        assert len(secret.embedding) == EMBEDDING_DIM
        assert abs(np.linalg.norm(secret.embedding) - 1) < 1e-3
        assert 0 < max(secret.crop_width, secret.crop_height) <= 160
    detected = value(worker, "lfr_faces_detected_total")
    rejected = sum(value(worker, "lfr_faces_rejected_total", reason=r)
                   for r in ("too_small", "blurred", "not_frontal", "low_score"))
    assert detected == len(faces) + rejected
    assert value(worker, "lfr_faces_embedded_total") == len(faces)
    assert value(worker, "lfr_stage_latency_seconds_count", stage="detect") == 1
    assert value(worker, "lfr_stage_latency_seconds_count", stage="embed") == 1
    assert any("triton unavailable" in r.getMessage() for r in caplog.records)
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    for obs in faces:
        key, _ = redis.store[f"lfr:obs:{obs.secret.key_id}"]
        assert key.hex() not in text and repr(key) not in text
        assert obs.secret.ciphertext[:16].hex() not in text


async def test_frames_that_go_stale_while_triton_is_down_are_dropped_not_dead_lettered(tmp_path: Path) -> None:
    events: list[str] = []
    worker, producer, _ = make_worker(tmp_path, events, failures=10**6, max_age_s=0.3)
    out = Outbox(producer)
    started = time.monotonic()
    await worker.handle_batch([Rec("lfr.frames.v1", 0, 0, frame(1, face_jpeg())),
                               Rec("lfr.frames.v1", 0, 1, frame(2, face_jpeg(), age_s=5.0))], out)
    assert time.monotonic() - started < 5
    assert out.dead_letters == [] and producer.sent == []
    assert value(worker, "lfr_frames_dropped_total", camera=CAMERA, reason="stale") == 2


async def test_bad_input_is_dead_lettered_with_its_reason(tmp_path: Path) -> None:
    events: list[str] = []
    worker, producer, _ = make_worker(tmp_path, events, max_frame_bytes=100_000)
    good = face_jpeg()
    records = [
        Rec("lfr.frames.v1", 0, 0, frame(1, b"\xff\xd8\xff\xe0" + b"junk" * 50)),
        Rec("lfr.frames.v1", 0, 1, b"not a protobuf \xff\xff"),
        Rec("lfr.frames.v1", 0, 2, frame(3, good, camera="cam-unknown"), key=b"cam-unknown"),
        Rec("lfr.frames.v1", 0, 3, frame(4, np.random.default_rng(0).bytes(150_000))),
        Rec("lfr.frames.v1", 0, 4, frames_pb2.Frame(camera_id=CAMERA, image=good).SerializeToString()),
    ]
    out = Outbox(producer)
    await worker.handle_batch(records, out)
    reasons = {r.offset: dlq_pb2.DeadLetterReason.Name(e.reason) for r, e in out.dead_letters}
    assert reasons == {0: "DEAD_LETTER_REASON_CORRUPT_IMAGE", 1: "DEAD_LETTER_REASON_DECODE_ERROR",
                       2: "DEAD_LETTER_REASON_UNKNOWN_CAMERA", 3: "DEAD_LETTER_REASON_OVERSIZED",
                       4: "DEAD_LETTER_REASON_INVALID_FIELD"}
    assert producer.sent == []
    assert value(worker, "lfr_frames_consumed_total", service="recognizer") == 5
