"""Ingest with fakes: drop-oldest buffer, image-directory source, video-file
sampling, pacing, oversized frames -> DLQ (services/ingest/)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from lfr.v1 import dlq_pb2, frames_pb2
from services.common.cameras import Camera
from services.common.metrics import MetricsFactory
from services.ingest.buffer import DropOldestBuffer
from services.ingest.camera import CameraStream, stream_file
from services.ingest.config import IngestOptions
from services.ingest.metrics import IngestMetrics
from services.ingest.sources import ImageDirSource, SourceError, VideoSource, encode_jpeg


class FakeProducer:
    """Records sends; each ack takes ``ack_s`` (a slow broker)."""

    def __init__(self, ack_s: float = 0.0) -> None:
        self.ack_s = ack_s
        self.sent: list[tuple[str, bytes, bytes | None, float]] = []

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   **_: Any) -> "asyncio.Future[None]":
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        assert value is not None

        def ack() -> None:
            self.sent.append((topic, value, key, time.monotonic()))
            fut.set_result(None)

        loop.call_later(self.ack_s, ack)
        return fut

    def frames(self, topic: str = "lfr.frames.v1") -> list[frames_pb2.Frame]:
        return [frames_pb2.Frame.FromString(v) for t, v, _, _ in self.sent if t == topic]


def metrics() -> tuple[IngestMetrics, MetricsFactory]:
    factory = MetricsFactory("ingest")
    return IngestMetrics.create(factory), factory


def sample(factory: MetricsFactory, name: str, **labels: str) -> float:
    value = factory.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def numbered_images(directory: Path, n: int, size: tuple[int, int] = (64, 48)) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.full((size[1], size[0], 3), i * 20 % 256, np.uint8)
        cv2.imwrite(str(directory / f"img_{i:03d}.png"), img)


def brightness(frame: frames_pb2.Frame) -> int:
    img = cv2.imdecode(np.frombuffer(frame.image, np.uint8), cv2.IMREAD_GRAYSCALE)
    return int(round(float(img.mean())))


# -- buffer --------------------------------------------------------------------


async def test_drop_oldest_buffer_keeps_the_newest_and_counts_evictions() -> None:
    buf: DropOldestBuffer[int] = DropOldestBuffer(2)
    assert buf.put(1) is None and buf.put(2) is None
    assert buf.put(3) == 1  # full: the oldest goes
    assert buf.put(4) == 2
    assert buf.dropped == 2 and len(buf) == 2
    assert await buf.get() == 3 and await buf.get() == 4
    getter = asyncio.create_task(buf.get())
    await asyncio.sleep(0)
    buf.put(5)
    assert await getter == 5
    buf.close()
    assert await buf.get() is None
    with pytest.raises(ValueError):
        DropOldestBuffer(0)


async def test_slow_broker_drops_the_oldest_frames_and_publishes_the_newest(tmp_path: Path) -> None:
    numbered_images(tmp_path / "imgs", 12)
    cam = Camera(id="cam-slow", zone="z", deployment_id="d", source=str(tmp_path / "imgs"), fps=40)
    m, factory = metrics()
    producer = FakeProducer(ack_s=0.2)  # ~5 acks/s against 40 fps
    stats = await stream_file(cam, producer, seconds=None, options=IngestOptions(buffer_size=1), metrics=m)
    assert stats.captured == 12
    assert stats.dropped_backpressure > 0
    assert stats.published + stats.dropped_backpressure == 12
    assert (sample(factory, "lfr_frames_dropped_total", camera="cam-slow", reason="backpressure")
            == stats.dropped_backpressure)
    assert sample(factory, "lfr_frames_published_total", camera="cam-slow") == stats.published
    seqs = [f.seq for f in producer.frames()]
    assert seqs == sorted(seqs) and seqs[-1] == 12  # the newest frame always survives
    assert len(seqs) < 12


async def test_fast_broker_publishes_everything_in_order_with_metadata(tmp_path: Path) -> None:
    numbered_images(tmp_path / "imgs", 5, size=(200, 100))
    cam = Camera(id="cam-a", zone="zone-1", deployment_id="op-1", source=str(tmp_path / "imgs"), fps=50,
                 max_width=100, jpeg_quality=80)
    m, factory = metrics()
    producer = FakeProducer()
    before = time.time_ns()
    stats = await stream_file(cam, producer, seconds=None, metrics=m)
    frames = producer.frames()
    assert stats.published == 5 and stats.dropped_backpressure == 0
    assert [f.seq for f in frames] == [1, 2, 3, 4, 5]
    assert [brightness(f) for f in frames] == [0, 20, 40, 60, 80]  # name order
    for f in frames:
        assert (f.camera_id, f.zone, f.deployment_id) == ("cam-a", "zone-1", "op-1")
        assert (f.width, f.height) == (100, 50)  # downscaled to max_width, aspect kept
        assert f.encoding == frames_pb2.FRAME_ENCODING_JPEG
        assert before <= f.capture_unix_ns <= f.publish_unix_ns <= time.time_ns()
    assert {k for _, _, k, _ in producer.sent} == {b"cam-a"}
    assert sample(factory, "lfr_stage_latency_seconds_count", stage="ingest") == 5
    assert sample(factory, "lfr_frames_captured_total", camera="cam-a") == 5
    assert sample(factory, "lfr_camera_active", camera="cam-a") == 0  # ended


async def test_image_directory_loops_and_is_paced_at_the_camera_fps(tmp_path: Path) -> None:
    numbered_images(tmp_path / "imgs", 3)
    (tmp_path / "imgs" / "zz_broken.jpg").write_bytes(b"not an image")
    (tmp_path / "imgs" / "notes.txt").write_text("ignored")
    cam = Camera(id="cam-loop", zone="z", deployment_id="d", source=str(tmp_path / "imgs"), fps=10, loop=True)
    producer = FakeProducer()
    stats = await stream_file(cam, producer, seconds=1.0)
    frames = producer.frames()
    assert 7 <= stats.published <= 11  # ~10 fps for 1 s
    assert [brightness(f) for f in frames[:6]] == [0, 20, 40, 0, 20, 40]
    gaps = np.diff([f.capture_unix_ns for f in frames]) / 1e9
    assert 0.07 < float(np.median(gaps)) < 0.15


def test_image_dir_source_errors_and_end(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        ImageDirSource(str(tmp_path / "missing"), 5).open()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError):
        ImageDirSource(str(tmp_path / "empty"), 5).open()
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.jpg").write_bytes(b"xx")
    src = ImageDirSource(str(tmp_path / "bad"), 5, loop=True)
    src.open()
    with pytest.raises(SourceError):
        src.next_sampled()
    numbered_images(tmp_path / "two", 2)
    src = ImageDirSource(str(tmp_path / "two"), 5)
    src.open()
    assert src.next_sampled() is not None and src.next_sampled() is not None
    assert src.next_sampled() is None


def write_video(path: Path, frames: int, fps: float) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((48, 64, 3), i * 8, np.uint8))
    writer.release()


def test_video_file_30fps_sampled_at_10fps_takes_every_third_frame(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 30, 30.0)
    src = VideoSource(str(path), fps=10)
    src.open()
    got = []
    while (raw := src.next_sampled()) is not None:
        got.append((round(raw.media_t, 3), int(round(float(raw.image.mean()) / 8))))
    src.close()
    assert [t for t, _ in got] == pytest.approx([i * 0.1 for i in range(10)])
    assert [i for _, i in got] == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]


def test_looping_video_keeps_media_time_increasing(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    write_video(path, 10, 10.0)
    src = VideoSource(str(path), fps=5, loop=True)
    src.open()
    ts = [src.next_sampled().media_t for _ in range(12)]  # type: ignore[union-attr]
    src.close()
    assert ts == pytest.approx([i * 0.2 for i in range(12)])
    with pytest.raises(SourceError):
        VideoSource(str(tmp_path / "missing.mp4"), fps=5).open()


async def test_oversized_frame_is_dead_lettered_without_its_bytes(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "a_noise.png"), rng.integers(0, 256, (400, 400, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "imgs" / "b_flat.png"), np.zeros((400, 400, 3), np.uint8))
    cam = Camera(id="cam-big", zone="z", deployment_id="d", source=str(tmp_path / "imgs"), fps=20, jpeg_quality=100)
    noise_jpeg, _, _ = encode_jpeg(cv2.imread(str(tmp_path / "imgs" / "a_noise.png")), 1920, 100)
    assert len(noise_jpeg) > 20_000
    m, factory = metrics()
    producer = FakeProducer()
    stats = await stream_file(cam, producer, seconds=None, options=IngestOptions(max_frame_bytes=20_000), metrics=m)
    assert stats.captured == 2 and stats.oversized == 1 and stats.published == 1
    assert [f.seq for f in producer.frames()] == [2]  # only the small one
    letters = [dlq_pb2.DeadLetter.FromString(v) for t, v, _, _ in producer.sent if t == "lfr.dlq.v1"]
    assert len(letters) == 1
    letter = letters[0]
    assert letter.reason == dlq_pb2.DEAD_LETTER_REASON_OVERSIZED
    assert letter.payload == b"" and letter.payload_dropped and letter.payload_size > 20_000
    assert letter.source_topic == "lfr.frames.v1" and letter.source_key == b"cam-big" and letter.service == "ingest"
    assert sample(factory, "lfr_frames_dropped_total", camera="cam-big", reason="oversized") == 1
    assert sample(factory, "lfr_dlq_messages_total", topic="lfr.frames.v1", reason="DEAD_LETTER_REASON_OVERSIZED") == 1


def test_max_frame_bytes_stays_below_the_topic_limit() -> None:
    from pydantic import ValidationError

    from services.common.topics import FRAMES

    assert IngestOptions().max_frame_bytes < FRAMES.max_message_bytes
    with pytest.raises(ValidationError):
        IngestOptions(max_frame_bytes=FRAMES.max_message_bytes)
    with pytest.raises(ValidationError):
        IngestOptions(buffer_size=3)


async def test_gate_closed_captures_nothing(tmp_path: Path) -> None:
    numbered_images(tmp_path / "imgs", 3)
    cam = Camera(id="cam-g", zone="z", deployment_id="d", source=str(tmp_path / "imgs"), fps=20)
    m, _ = metrics()
    producer = FakeProducer()
    stream = CameraStream(cam, producer, options=IngestOptions(), metrics=m, gate=lambda c: False)
    stats = await stream.run(seconds=0.3)
    assert stats.captured == 0 and producer.sent == []


def test_http_mjpeg_live_source_is_sampled_by_wall_clock_and_raises_when_the_stream_ends() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Mjpeg(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return None

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.end_headers()
            try:
                for i in range(60):  # ~50 fps for ~1.2 s, then the camera hangs up
                    jpg = cv2.imencode(".jpg", np.full((48, 64, 3), i * 4, np.uint8))[1].tobytes()
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     + str(len(jpg)).encode() + b"\r\n\r\n" + jpg + b"\r\n")
                    time.sleep(0.02)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Mjpeg)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = VideoSource(f"http://127.0.0.1:{server.server_address[1]}/cam.mjpg", fps=10)
        assert src.live
        src.open()
        times = [src.next_sampled().media_t for _ in range(5)]  # type: ignore[union-attr]
        gaps = np.diff(times)
        assert 0.07 < float(np.median(gaps)) < 0.2  # 10 fps out of ~50
        with pytest.raises(SourceError):
            for _ in range(100):
                src.next_sampled()
        src.close()
    finally:
        server.shutdown()
        server.server_close()
