"""Support of the e2e tests (see conftest.py for the session fixture). The pipeline: the REAL services as child
processes (``python -m services.<name>``, exactly what ``lfr demo`` starts) over the real
local stack (``lfr stack up``: Kafka, Redis, Milvus, Triton), no mocks.

One pipeline per session, isolated from anything else on the machine (a running
``lfr up``, other test runs): ports of the brief + 3000, topics of its own
(``lfr.e2e.<tag>.*.v1``, created with the declared configs of the real topics:
same retention, segment roll, max message size), consumer groups
``lfr-e2e-<tag>-<service>``, camera ids ``e2e-<tag>-*`` (so Redis pass state is
its own) and one deployment per test (so each test's watchlists are only
searched for its own cameras). Logs: ``.lfr/logs/e2e-<service>.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from topics_support import BOOTSTRAP, KafkaTopics, random_tag, run_private

from services.cli.demo import AlertListener, PassStats, WatchlistClient, stream_pass
from services.cli.launch import DutyOfficer, Pipeline, PipelineLayout, ServiceProcess, Topics, state_dir, write_registry
from services.common.cameras import Camera

REPO = Path(__file__).resolve().parents[2]
DATA = (REPO.parent / "shared" / "data").resolve()
VIDEO = DATA / "video"
FACES_DIR = DATA / "faces"
PORT_OFFSET = 3000
E2E_FPS = 5.0


@dataclasses.dataclass
class RunResult:
    """One streamed pass: alerts as StreamAlerts delivered them and as lfr.alerts saw them,
    the match candidates (score per subject), ingest's counts."""

    camera: Camera
    stats: PassStats
    streamed: list[Any]
    alerts: list[Any]
    matches: list[Any]

    def alerts_by_subject(self, alerts: list[Any] | None = None) -> dict[str, int]:
        out: dict[str, int] = {}
        for a in self.alerts if alerts is None else alerts:
            out[a.subject_id] = out.get(a.subject_id, 0) + 1
        return out

    def best_match(self, subject_id: str) -> float | None:
        scores = [m.score for m in self.matches if m.subject_id == subject_id]
        return max(scores) if scores else None

    def summary(self) -> str:
        per = ", ".join(f"{s}: {n} alert(s), best match {self.best_match(s):.3f}, "
                        f"{sum(1 for m in self.matches if m.subject_id == s)} matched frame(s)"
                        for s, n in sorted(self.alerts_by_subject().items())) or "no alerts"
        return (f"{self.camera.id}: {self.stats.published} frames in {self.stats.seconds:g} s "
                f"({self.stats.dropped} dropped at ingest); {per}")


class E2E:
    """The session's pipeline and what the tests do with it."""

    def __init__(self, tag: str, layout: PipelineLayout, pipeline: Pipeline, cameras: dict[str, Camera]) -> None:
        self.tag = tag
        self.layout = layout
        self.pipeline = pipeline
        self.cameras = cameras

    def watchlists(self) -> WatchlistClient:
        return WatchlistClient(self.layout.grpc_port("watchlist"))

    async def new_watchlist(self, client: WatchlistClient, deployment_id: str, purpose: str) -> str:
        return await client.create(deployment_id, name=f"e2e {purpose}", authorisation_ref=f"E2E-{self.tag}",
                                   officer="e2e officer", purpose="demo", criteria=f"e2e test: {purpose}")

    async def run(self, key: str, seconds: float | None = None) -> RunResult:
        """Stream camera ``key`` once, wait until the pipeline drained, collect what it produced."""
        camera = self.cameras[key]
        listener = AlertListener(self.layout.grpc_port("alerts"), camera_ids=(camera.id,))
        officer = DutyOfficer(f"e2e-{self.tag}-officer", [camera.zone])
        await officer.start()  # cameras run only while officers are on duty (where gating exists)
        await listener.start()
        try:
            stats = await stream_pass(self.pipeline, camera, self.layout.cameras_file.parent / f"ingest-{key}.yaml",
                                      seconds)
            await asyncio.sleep(0.5)
            assert listener.failed() is None, listener.failed()
        finally:
            await listener.stop()
            await officer.stop()
        from lfr.v1 import alerts_pb2, matches_pb2

        alerts = [a for a in (alerts_pb2.Alert.FromString(v) for v in await read_topic(self.layout.topics.alerts))
                  if a.camera_id == camera.id]
        matches = [m for m in (matches_pb2.MatchCandidate.FromString(v)
                               for v in await read_topic(self.layout.topics.matches))
                   if m.frame.camera_id == camera.id]
        return RunResult(camera=camera, stats=stats, streamed=list(listener.alerts), alerts=alerts, matches=matches)


async def sealed_frame(camera: Camera, seq: int, image: bytes) -> bytes:
    """A JPEG Frame of ``camera``, captured now, sealed as the ingest service seals it (its key in the
    local Redis): what a test publishes to the frames topic itself. The recognizer refuses frames in
    clear (recognizer.require_sealed_frames: dead letter UNSEALED)."""
    from lfr.v1 import frames_pb2
    from redis.asyncio import Redis

    from services.common.frame_keys import FrameKeyOptions, FrameSealer

    now = time.time_ns()
    frame = frames_pb2.Frame(camera_id=camera.id, zone=camera.zone, deployment_id=camera.deployment_id, seq=seq,
                             capture_unix_ns=now, publish_unix_ns=now, image=image,
                             encoding=frames_pb2.FRAME_ENCODING_JPEG)
    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        await FrameSealer(redis, FrameKeyOptions()).seal(frame)
    finally:
        await redis.aclose()
    return frame.SerializeToString()


async def read_topic(topic: str, timeout_s: float = 5.0) -> list[bytes]:
    """Every record value of ``topic`` now (from the beginning to the end offsets)."""
    return [r.value for r in await read_records(topic, timeout_s)]


async def read_records(topic: str, timeout_s: float = 5.0) -> list[Any]:
    """Every record (key, value, headers, timestamp) of ``topic`` now, from the beginning to the end offsets."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from aiokafka.admin import AIOKafkaAdminClient

    from services.cli.launch import partitions_of

    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10_000)
    await admin.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(admin, topic)]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, group_id=None,
                                max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(recs)
        return out
    finally:
        await consumer.stop()


def video_frames(path: Path, fps: float | None = None) -> list[np.ndarray]:
    """BGR frames of a video or GIF, sampled at ``fps`` (None: all)."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    src_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out, i, next_t = [], 0, 0.0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t = i / src_fps
        if fps is None or t + 1e-6 >= next_t:
            out.append(frame)
            next_t += 0 if fps is None else 1.0 / fps
        i += 1
    cap.release()
    return out


async def embeddings_of(images_bgr: list[np.ndarray]) -> list[list[Any]]:
    """FacePipeline (on the real Triton) over BGR images: per image, its faces."""
    import cv2

    from services.common.triton_client import TritonClient
    from services.face.pipeline import FacePipeline

    async with TritonClient() as client:
        pipeline = FacePipeline(client)
        out: list[list[Any]] = []
        for i in range(0, len(images_bgr), 8):
            out.extend(await pipeline.analyse([cv2.cvtColor(im, cv2.COLOR_BGR2RGB) for im in images_bgr[i:i + 8]]))
        return out


async def best_offline_score(reference: np.ndarray, video: Path, fps: float) -> tuple[float, int]:
    """Max cosine similarity between ``reference`` (an enrolled embedding) and every face of
    ``video`` sampled at ``fps`` that passes the quality gate (what the recognizer would
    embed and the matcher would score); and the number of such faces."""
    scores = [float(np.dot(f.embedding, reference)) for faces in await embeddings_of(video_frames(video, fps))
              for f in faces if f.embedding is not None]
    return (max(scores) if scores else float("nan")), len(scores)


@dataclasses.dataclass(frozen=True)
class CamSpec:
    deployment: str
    source: Path
    fps: float = E2E_FPS
    zone: str = "zone"


@contextlib.contextmanager
def pipeline_session(kind: str, cameras: dict[str, CamSpec], port_offset: int,
                     embedder: str | None = None, accept_licence: str | None = None) -> Iterator[E2E]:
    """A whole real pipeline (the services as child processes, private topics, groups, cameras and a camera
    registry of its own) for the block. Camera ids, zones and deployments are prefixed with ``kind`` and a
    random tag. Stopped and its topics deleted after; every service must stop cleanly."""
    down = _stack_healthy()
    if down:
        pytest.fail("the local stack is not healthy (" + "; ".join(down) + ") — fix: .venv/bin/lfr stack up")
    tag = random_tag()
    topics = KafkaTopics()
    names = run_private(topics.copies("e2e", tag, max_partitions=2))
    work = state_dir() / kind / tag
    cams = {key: Camera(id=f"{kind}-{tag}-{key}", zone=f"{kind}-{tag}-{c.zone}",
                        deployment_id=f"{kind}-{tag}-{c.deployment}",
                        source=str(c.source), fps=c.fps, loop=False) for key, c in cameras.items()}
    layout = PipelineLayout(port_offset=port_offset, topics=Topics(**names), group_prefix=f"lfr-{kind}-{tag}",
                            cameras_file=work / "cameras.yaml", log_dir=state_dir() / "logs", log_prefix=f"{kind}-",
                            pid_dir=state_dir() / "pids" / "services", embedder=embedder,
                            accept_licence=accept_licence)
    write_registry(layout.cameras_file, list(cams.values()))
    pipeline = Pipeline(layout)
    started = time.monotonic()
    codes: dict[str, int | None] = {}
    try:
        run_private(pipeline.start())
        print(f"\n{kind} pipeline {tag} SERVING in {time.monotonic() - started:.1f} s "
              f"(logs {layout.log_dir}/{kind}-*.log)")
        yield E2E(tag, layout, pipeline, cams)
    finally:
        codes = pipeline.stop()
        run_private(topics.delete())
        shutil.rmtree(work, ignore_errors=True)
    assert all(c == 0 for c in codes.values()), f"services did not stop cleanly: {codes}"


def _stack_healthy() -> list[str]:
    from services.stack import manager

    return [f"{h.name}: {h.detail}" for h in manager.status(manager.load_components()) if not h.healthy]


@contextlib.contextmanager
def officers_running(e2e: E2E) -> Iterator[ServiceProcess]:
    """The officers service of the session's layout (as `lfr demo` starts it: the layout's alerts
    and audit topics, group, cameras) for one test module; stopped at the end (the console
    tests start their own on the same ports)."""
    from services.cli.launch import OFFICERS

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(e2e.pipeline.start((OFFICERS,)))
    finally:
        loop.close()
    try:
        yield e2e.pipeline.services[OFFICERS]
    finally:
        code = e2e.pipeline.stop((OFFICERS,)).get(OFFICERS)
        assert code == 0, f"officers service did not stop cleanly: {code}"
