"""Recognizer chunk overlap (``analyse_concurrency``) with a fake face pipeline on a
fake Triton: chunks of one batch are analysed concurrently, their observations
are still published in chunk order (data keys first), 1 keeps the chunks
sequential, and Triton failures keep their retry / frame-by-frame / dead-letter
path without publishing anything out of order. Needs no models."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from lfr.v1 import dlq_pb2, faces_pb2, frames_pb2
from services.common.grpc_server import GrpcServer
from services.common.kafka import Outbox
from services.common.metrics import MetricsFactory
from services.common.service import ServiceContext
from services.common.triton_client import TritonInferenceError, TritonUnavailable
from services.face.detector import FACEBOXES
from services.face.embedder import EMBEDDING_DIM
from services.face.embedders import DEFAULT_EMBEDDER as EMBEDDER
from services.face.pipeline import Face
from services.face.quality import Quality
from services.recognizer import worker as worker_module
from services.recognizer.config import RecognizerOptions, RecognizerSettings
from services.recognizer.worker import Recognizer
from kafka_support import Rec
from recognizer_fakes import Producer, Redis

CAMERA = "cam-1"
WIDTH = 64  # a frame's width is WIDTH + seq: the fakes tell the frames apart by it


class Runner:
    """Fake Triton: each call sleeps (per frame: ``delays``, else ``delay``) and notes when it
    started and ended; frames in ``refused`` make FaceBoxes fail (TritonInferenceError),
    frames in ``down`` find the server unreachable until ``down_until``, a frame in
    ``broken`` raises an unexpected error."""

    def __init__(self, delay: float = 0.05, delays: dict[int, float] | None = None) -> None:
        self.delay = delay
        self.delays = delays or {}
        self.refused: set[int] = set()
        self.down: set[int] = set()
        self.down_until = 0.0
        self.broken: set[int] = set()
        self.calls: list[tuple[str, tuple[int, ...], float, float]] = []  # model, seqs, start, end
        self.detector = self

    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        seqs = tuple(int(s) for s in inputs["seq"])
        if self.down & set(seqs) and time.monotonic() < self.down_until:
            raise TritonUnavailable("127.0.0.1:1", "connection refused")
        start = time.monotonic()
        await asyncio.sleep(max(self.delays.get(s, self.delay) for s in seqs))
        self.calls.append((model, seqs, start, time.monotonic()))
        if model == FACEBOXES and self.refused & set(seqs):
            raise TritonInferenceError(model, "bad input")
        if self.broken & set(seqs):
            raise RuntimeError("bug")
        return {}

    async def model_ready(self, model: str) -> bool:
        return True

    async def close(self) -> None:
        return None

    def span(self, seqs: tuple[int, ...]) -> tuple[float, float]:
        """When the analysis of these frames started (detector call) and ended (embedder call)."""
        start = min(s for m, q, s, _ in self.calls if q == seqs and m == FACEBOXES)
        end = max(e for m, q, _, e in self.calls if q == seqs and m == EMBEDDER)
        return start, end


class Pipeline:
    """FacePipeline stand-in: one detector and one embedder call per analyse, one good face a frame."""

    def __init__(self, runner: Any, config: Any = None) -> None:
        self.runner = runner

    async def analyse(self, images: list[np.ndarray]) -> list[list[Face]]:
        seqs = np.array([im.shape[1] - WIDTH for im in images])
        await self.runner.infer(FACEBOXES, {"seq": seqs})
        await self.runner.infer(EMBEDDER, {"seq": seqs})
        return [[face()] for _ in images]


def face() -> Face:
    embedding = np.zeros(EMBEDDING_DIM, np.float32)
    embedding[0] = 1.0
    return Face(box=np.array([8, 8, 40, 40], np.float32), landmarks=np.full((5, 2), 20, np.float32), det_score=0.9,
                quality=Quality(eye_distance_px=30, sharpness=100, yaw_deg=0, pitch_deg=0, det_score=0.9, reason=None),
                aligned=np.zeros((112, 112, 3), np.uint8), embedding=embedding)


def make_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runner: Runner,
                **options: Any) -> tuple[Recognizer, Producer, list[str]]:
    monkeypatch.setattr(worker_module, "FacePipeline", Pipeline)
    registry = tmp_path / "cameras.yaml"
    registry.write_text(f"cameras:\n  - {{id: {CAMERA}, zone: z1, deployment_id: op1, source: x.mp4}}\n")
    settings = RecognizerSettings(
        # plaintext frames (sealing: test_recognizer_overlap.py::test_unsealed_frames_*)
        recognizer={"cameras_file": str(registry), "retry_initial_s": 0.01, "retry_max_s": 0.05,
                    "batch_frames": 2, "require_sealed_frames": False, **options},
        metrics={"enabled": False},
    )
    ctx = ServiceContext(name="recognizer", settings=settings, metrics=MetricsFactory("recognizer"),
                         grpc=GrpcServer(settings.grpc), stop=asyncio.Event())
    worker = Recognizer(ctx, settings)
    worker.runner = runner  # type: ignore[assignment]
    events: list[str] = []
    producer = Producer(events, label=lambda topic, value: str(faces_pb2.FaceObservation.FromString(value).frame.seq)
                        if topic == "lfr.faces.v1" else topic)
    worker.producer, worker.redis = producer, Redis(events)
    return worker, producer, events


def records(count: int, ages: dict[int, float] | None = None) -> list[Rec]:
    """Frames 1..count (captured now, or ``ages[seq]`` seconds ago), one record each."""
    out = []
    for seq in range(1, count + 1):
        image = cv2.imencode(".jpg", np.full((48, WIDTH + seq, 3), 128, np.uint8))[1].tobytes()
        value = frames_pb2.Frame(camera_id=CAMERA, zone="z1", deployment_id="op1", seq=seq,
                                 capture_unix_ns=time.time_ns() - int((ages or {}).get(seq, 0.0) * 1e9), image=image,
                                 encoding=frames_pb2.FRAME_ENCODING_JPEG).SerializeToString()
        out.append(Rec("lfr.frames.v1", 0, seq - 1, value))
    return out


def sent_seqs(producer: Producer) -> list[int]:
    return [faces_pb2.FaceObservation.FromString(v).frame.seq for _, v, _ in producer.sent]


def value(worker: Recognizer, metric: str, **labels: str) -> float:
    v = worker.ctx.metrics.registry.get_sample_value(metric, labels)
    return 0.0 if v is None else v


def test_analyse_concurrency_defaults_to_one_and_is_bounded() -> None:
    assert RecognizerOptions().analyse_concurrency == 1
    for bad in (0, 9):
        with pytest.raises(ValueError):
            RecognizerOptions(analyse_concurrency=bad)


async def test_chunks_are_analysed_concurrently_and_published_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = Runner(delay=0.1)
    worker, producer, events = make_worker(tmp_path, monkeypatch, runner, analyse_concurrency=2)
    out = Outbox(producer)
    await worker.handle_batch(records(4), out)
    first, second = runner.span((1, 2)), runner.span((3, 4))
    assert second[0] < first[1]  # the second chunk started before the first one ended
    assert sent_seqs(producer) == [1, 2, 3, 4]  # all published when handle_batch returns, in order
    assert events == ["redis:set", "redis:set", "send:1", "send:2", "redis:set", "redis:set", "send:3", "send:4"]
    assert out.dead_letters == []
    assert await out.flush() == 4
    assert value(worker, "lfr_stage_latency_seconds_count", stage="detect") == 4
    assert value(worker, "lfr_stage_latency_seconds_count", stage="embed") == 4
    assert value(worker, "lfr_faces_embedded_total") == 4


async def test_publish_order_is_chunk_order_when_a_later_chunk_is_analysed_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = Runner(delay=0.01, delays={1: 0.3, 2: 0.3})
    worker, producer, events = make_worker(tmp_path, monkeypatch, runner, analyse_concurrency=3)
    await worker.handle_batch(records(6), Outbox(producer))
    assert runner.span((3, 4))[1] < runner.span((1, 2))[1]  # chunk 2 was analysed first ...
    assert runner.span((5, 6))[1] < runner.span((1, 2))[1]
    assert sent_seqs(producer) == [1, 2, 3, 4, 5, 6]  # ... and published after chunk 1
    assert events == ["redis:set", "redis:set", "send:1", "send:2", "redis:set", "redis:set", "send:3", "send:4",
                      "redis:set", "redis:set", "send:5", "send:6"]


async def test_window_bounds_the_chunks_in_flight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = Runner(delay=0.05)
    worker, producer, _ = make_worker(tmp_path, monkeypatch, runner, analyse_concurrency=2)
    await worker.handle_batch(records(8), Outbox(producer))
    spans = [runner.span((s, s + 1)) for s in (1, 3, 5, 7)]
    for n in range(2, 4):  # chunk n starts once chunk n - 2 has finished
        assert spans[n][0] >= spans[n - 2][1]
    assert sent_seqs(producer) == list(range(1, 9))


async def test_concurrency_one_is_sequential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = Runner(delay=0.03)
    worker, producer, events = make_worker(tmp_path, monkeypatch, runner, analyse_concurrency=1)
    await worker.handle_batch(records(6), Outbox(producer))
    spans = [runner.span((s, s + 1)) for s in (1, 3, 5)]
    for before, after in zip(spans, spans[1:]):
        assert after[0] >= before[1]
    assert sent_seqs(producer) == [1, 2, 3, 4, 5, 6]
    assert events == ["redis:set", "redis:set", "send:1", "send:2", "redis:set", "redis:set", "send:3", "send:4",
                      "redis:set", "redis:set", "send:5", "send:6"]


async def test_a_refused_frame_is_dead_lettered_and_the_rest_stays_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = Runner(delay=0.01, delays={1: 0.2, 2: 0.2})
    runner.refused = {2}
    worker, producer, _ = make_worker(tmp_path, monkeypatch, runner, analyse_concurrency=2)
    out = Outbox(producer)
    await worker.handle_batch(records(4), out)
    # chunk 1 (frames 1, 2) failed as a whole, then frame by frame: 1 published, 2 dead-lettered;
    # chunk 2, analysed meanwhile, published after it
    assert sent_seqs(producer) == [1, 3, 4]
    assert [(r.offset, e.reason) for r, e in out.dead_letters] == [(1, dlq_pb2.DEAD_LETTER_REASON_INTERNAL)]
    assert "inference failed" in out.dead_letters[0][1].detail
    assert runner.span((3, 4))[1] < runner.span((1,))[1]


async def test_triton_unavailable_is_retried_and_later_chunks_wait_for_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    runner = Runner(delay=0.01)
    runner.down, runner.down_until = {1}, time.monotonic() + 0.3
    worker, producer, _ = make_worker(tmp_path, monkeypatch, runner, analyse_concurrency=2)
    out = Outbox(producer)
    await worker.handle_batch(records(4), out)
    assert out.dead_letters == []  # Triton down is not the frames' fault
    assert sent_seqs(producer) == [1, 2, 3, 4]
    assert runner.span((3, 4))[1] < runner.span((1, 2))[0]  # chunk 2 was done before chunk 1 got through
    assert any("triton unavailable" in r.getMessage() for r in caplog.records)


async def test_frames_that_go_stale_waiting_for_the_chunk_before_are_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = Runner(delay=0.01)
    runner.down, runner.down_until = {1}, time.monotonic() + 10
    worker, producer, _ = make_worker(tmp_path, monkeypatch, runner, analyse_concurrency=2, max_age_s=0.3)
    out = Outbox(producer)
    started = time.monotonic()
    await worker.handle_batch(records(4, ages={3: 0.1, 4: 0.1}), out)  # chunk 2 goes stale before chunk 1
    assert time.monotonic() - started < 5
    assert producer.sent == [] and out.dead_letters == []
    assert value(worker, "lfr_frames_dropped_total", camera=CAMERA, reason="stale") == 4  # each counted once
    assert runner.span((3, 4))  # chunk 2 was analysed, but went stale before its turn


async def test_an_unexpected_error_cancels_the_other_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = Runner(delay=0.01, delays={1: 3.0, 2: 3.0})
    runner.broken = {3}
    worker, producer, _ = make_worker(tmp_path, monkeypatch, runner, analyse_concurrency=2)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="bug"):
        await worker.handle_batch(records(6), Outbox(producer))
    assert time.monotonic() - started < 2.5  # chunk 1 was cancelled, not waited for
    assert producer.sent == []
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    assert not [c for c in runner.calls if c[1] == (5, 6)]  # chunk 3 never started


async def test_unsealed_frames_are_refused_when_sealing_is_required(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sealing on (the default): a plaintext frame is never analysed; it is dead-lettered UNSEALED,
    without its payload, and counted; a frame sealed the way ingest seals it goes through."""
    from services.common.frame_keys import FrameKeyOptions, FrameSealer
    from services.common.kafka import ConsumerLoop

    assert RecognizerOptions().require_sealed_frames is True
    runner = Runner(delay=0.01)
    worker, producer, _ = make_worker(tmp_path, monkeypatch, runner, require_sealed_frames=True)
    plain = records(3)
    sealed_frame = frames_pb2.Frame.FromString(plain[1].value)
    await FrameSealer(worker.redis, FrameKeyOptions()).seal(sealed_frame)
    batch = [plain[0], Rec("lfr.frames.v1", 0, 1, sealed_frame.SerializeToString()), plain[2]]
    loop = ConsumerLoop(consumer=_Consumer(), producer=producer, service="recognizer", instance="t",
                        metrics=worker.messages, batch_handler=worker.handle_batch)
    await loop.process({("frames", 0): batch})

    assert [faces_pb2.FaceObservation.FromString(v).frame.seq
            for t, v, _ in producer.sent if t == "lfr.faces.v1"] == [2]
    assert {q for _, seqs, _, _ in runner.calls for q in seqs} == {2}, "a plaintext frame is never analysed"
    letters = [dlq_pb2.DeadLetter.FromString(v) for t, v, _ in producer.sent if t == "lfr.dlq.v1"]
    assert [(d.source_offset, d.reason) for d in letters] == [
        (0, dlq_pb2.DEAD_LETTER_REASON_UNSEALED), (2, dlq_pb2.DEAD_LETTER_REASON_UNSEALED)]
    for d in letters:
        assert d.payload == b"" and d.payload_dropped and d.service == "recognizer"
        assert "not sealed" in d.detail and "require_sealed_frames" in d.detail
    assert value(worker, "lfr_dlq_messages_total", topic="lfr.frames.v1", reason="DEAD_LETTER_REASON_UNSEALED") == 2


async def test_unsealed_frames_pass_only_where_sealing_is_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    worker, producer, _ = make_worker(tmp_path, monkeypatch, Runner(delay=0.01), require_sealed_frames=False)
    out = Outbox(producer)
    await worker.handle_batch(records(2), out)
    assert out.dead_letters == [] and sent_seqs(producer) == [1, 2]


class _Consumer:
    async def getmany(self, *partitions: Any, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[Any, list[Any]]:
        return {}

    async def commit(self, offsets: dict[Any, int] | None = None) -> None:
        return None
