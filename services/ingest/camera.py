"""Camera ingest: reads cameras and publishes Frame protobufs to lfr.frames.v1.

Per camera, two coroutines and one thread:

    source thread (decode, sample) -> capture coroutine (pace, stamp, encode in the thread)
        -> DropOldestBuffer(1..2) -> publish coroutine (Kafka, waits for the ack)

The buffer never grows: when the broker is slower than the camera, the oldest
frame is evicted and counted (``lfr_frames_dropped_total{reason="backpressure"}``).
A frame whose serialized size exceeds ``max_frame_bytes`` is not published: it
is counted and a DeadLetter (reason OVERSIZED, no payload bytes) goes to the DLQ.

Gating (cameras run only while officers are on duty) plugs in as ``gate``: a
callable checked before every capture; closed -> the source is released and
nothing is captured. The service (:class:`CameraIngestor`) drives it from
officer availability in Redis (:class:`services.ingest.gate.GateMonitor`,
fail closed, transitions audited); ``stream_file`` (demo, tests) is ungated
unless given a gate.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import cv2
from lfr.v1 import common_pb2, dlq_pb2, frames_pb2

from services.common import clients
from services.common.audit import AuditWriter
from services.common.cameras import Camera, CameraFile
from services.common.frame_keys import FrameSealer
from services.common.kafka import DLQ_TOPIC, make_headers, record_key
from services.common.metrics import MetricsFactory
from services.common.paths import REPO_ROOT, resolve
from services.common.service import ServiceContext
from services.common.settings import KafkaSettings
from services.common.worker import AuditUser, KafkaWorker, RedisUser
from services.ingest.buffer import DropOldestBuffer
from services.ingest.gate import GateMonitor
from services.ingest.config import IngestOptions, IngestSettings
from services.ingest.metrics import IngestMetrics
from services.ingest.sampling import Pacer
from services.ingest.sources import FrameSource, RawFrame, SourceError, encode_jpeg, open_source

log = logging.getLogger(__name__)
T = TypeVar("T")
SERVICE = "ingest"

Gate = Callable[[Camera], bool]


def always_open(camera: Camera) -> bool:
    """No gating (``stream_file`` callers that gate themselves, tests)."""
    return True


@dataclasses.dataclass
class StreamStats:
    captured: int = 0
    published: int = 0
    dropped_backpressure: int = 0
    oversized: int = 0
    publish_errors: int = 0
    last_seq: int = 0


@dataclasses.dataclass
class _Pending:
    frame: frames_pb2.Frame
    started: float  # perf_counter at capture


class CameraStream:
    """One camera: capture -> drop-oldest buffer -> publish, until stopped or ``seconds`` elapse."""

    def __init__(
        self,
        camera: Camera,
        producer: Any,
        *,
        options: IngestOptions,
        metrics: IngestMetrics,
        dlq_topic: str = DLQ_TOPIC,
        instance: str = "local",
        gate: Gate = always_open,
        root: Path = REPO_ROOT,
        source: FrameSource | None = None,
        sealer: FrameSealer | None = None,
    ) -> None:
        self.camera = camera
        self.sealer = sealer
        self.producer = producer
        self.options = options
        self.metrics = metrics
        self.dlq_topic = dlq_topic
        self.instance = instance
        self.gate = gate
        self.root = root
        self._source = source
        self.buffer: DropOldestBuffer[_Pending] = DropOldestBuffer(options.buffer_size)
        self.stats = StreamStats()
        self._seq = 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._deadline: float | None = None
        self._stop: asyncio.Event = asyncio.Event()
        self.key = record_key(camera.id)
        self.headers = make_headers(frames_pb2.Frame.DESCRIPTOR.full_name, SERVICE)

    # -- lifecycle -------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None, seconds: float | None = None) -> StreamStats:
        self._stop = stop or asyncio.Event()
        self._deadline = time.monotonic() + seconds if seconds is not None else None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"cam-{self.camera.id}")
        publisher = asyncio.create_task(self._publish_loop(), name=f"publish:{self.camera.id}")
        try:
            await self._capture_loop()
        finally:
            self.buffer.close()
            try:
                await publisher
            finally:
                if self._tasks:
                    await asyncio.gather(*self._tasks, return_exceptions=True)
                self.metrics.camera_active.labels(self.camera.id).set(0)
                await self._in_thread(self._close_source)
                self._executor.shutdown(wait=False)  # never block the loop on a stuck decoder
        return self.stats

    def _stopping(self) -> bool:
        return self._stop.is_set() or (self._deadline is not None and time.monotonic() >= self._deadline)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, waking early on stop; never past the deadline."""
        if self._deadline is not None:
            seconds = min(seconds, max(self._deadline - time.monotonic(), 0.0))
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- capture ---------------------------------------------------------------
    def _open_source(self) -> FrameSource:
        source = self._source or open_source(self.camera, self.root)
        source.open()
        self._source = source
        return source

    def _close_source(self) -> None:
        if self._source is not None:
            self._source.close()

    async def _capture_loop(self) -> None:
        source: FrameSource | None = None
        pacer = Pacer(max_lag_s=self.options.max_lag_s)
        backoff = self.options.reconnect_initial_s
        active = self.metrics.camera_active.labels(self.camera.id)
        while not self._stopping():
            if not self.gate(self.camera):
                if source is not None:
                    await self._in_thread(source.close)
                    source = None
                active.set(0)
                await self._sleep(1.0 / self.camera.fps)
                continue
            try:
                if source is None:
                    source = await self._in_thread(self._open_source)
                    pacer.reset()
                    log.info("camera opened", extra={"camera": self.camera.id})
                raw = await self._in_thread(source.next_sampled)
            except (SourceError, cv2.error) as e:  # OpenCV raises cv2.error on some broken streams
                active.set(0)
                log.warning("camera source failed; retrying", extra={"camera": self.camera.id, "error": str(e),
                                                                     "retry_in_s": backoff})
                if source is not None:
                    await self._in_thread(source.close)
                    source = None
                await self._sleep(backoff)
                backoff = min(backoff * 2, self.options.reconnect_max_s)
                continue
            if raw is None:
                log.info("camera source ended", extra={"camera": self.camera.id, "frames": self.stats.captured})
                break
            backoff = self.options.reconnect_initial_s
            active.set(1)
            if not source.live:
                await self._sleep(pacer.delay(raw.media_t, time.monotonic()))
                if self._stopping():
                    break
            await self._capture(raw)

    async def _capture(self, raw: RawFrame) -> None:
        started = time.perf_counter()
        capture_ns = time.time_ns()
        self._seq += 1
        self.stats.captured += 1
        self.stats.last_seq = self._seq
        self.metrics.captured.labels(self.camera.id).inc()
        jpeg, width, height = await self._in_thread(
            encode_jpeg, raw.image, self.camera.max_width, self.camera.jpeg_quality
        )
        frame = frames_pb2.Frame(
            camera_id=self.camera.id,
            zone=self.camera.zone,
            deployment_id=self.camera.deployment_id,
            seq=self._seq,
            capture_unix_ns=capture_ns,
            image=jpeg,
            width=width,
            height=height,
            encoding=frames_pb2.FRAME_ENCODING_JPEG,
            protection=common_pb2.PAYLOAD_PROTECTION_PLAINTEXT,
        )
        if self.sealer is not None:
            try:
                await self.sealer.seal(frame)  # from here on the image exists only as ciphertext
            except Exception as e:  # Redis down: no key, no frame (never published in clear)
                self.metrics.dropped.labels(self.camera.id, "error").inc()
                log.warning("frame not sealed; dropped", extra={"camera": self.camera.id,
                                                                "error": f"{type(e).__name__}: {e}"[:200]})
                return
        size = frame.ByteSize() + 11  # + publish_unix_ns, set at publish time
        if size > self.options.max_frame_bytes:
            self._oversized(frame, size)
            return
        evicted = self.buffer.put(_Pending(frame, started))
        if evicted is not None:
            self.stats.dropped_backpressure += 1
            self.metrics.dropped.labels(self.camera.id, "backpressure").inc()

    def _oversized(self, frame: frames_pb2.Frame, size: int) -> None:
        self.stats.oversized += 1
        self.metrics.dropped.labels(self.camera.id, "oversized").inc()
        reason = dlq_pb2.DeadLetterReason.Name(dlq_pb2.DEAD_LETTER_REASON_OVERSIZED)
        self.metrics.dead_lettered.labels(self.options.frames_topic, reason).inc()
        letter = dlq_pb2.DeadLetter(
            source_topic=self.options.frames_topic,
            source_partition=-1,  # never reached the broker
            source_offset=-1,
            source_key=self.key,
            source_timestamp_unix_ns=frame.capture_unix_ns,
            reason=dlq_pb2.DEAD_LETTER_REASON_OVERSIZED,
            detail=f"camera {self.camera.id} frame seq {frame.seq}: {size} bytes > max_frame_bytes "
            f"{self.options.max_frame_bytes} ({frame.width}x{frame.height})",
            service=SERVICE,
            instance=self.instance,
            dead_letter_unix_ns=time.time_ns(),
            payload_size=size,
            payload_dropped=True,
        )
        log.warning("oversized frame dead-lettered",
                    extra={"camera": self.camera.id, "seq": frame.seq, "bytes": size,
                           "max_bytes": self.options.max_frame_bytes})
        task = asyncio.create_task(self._send_dead_letter(letter))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_dead_letter(self, letter: dlq_pb2.DeadLetter) -> None:
        from aiokafka.errors import KafkaError

        try:
            fut = await self.producer.send(self.dlq_topic, value=letter.SerializeToString(), key=self.key,
                                           headers=make_headers(letter, SERVICE))
            await fut
        except (KafkaError, OSError, TimeoutError) as e:
            log.warning("dead letter not published", extra={"camera": self.camera.id, "error": repr(e)})

    # -- publish ---------------------------------------------------------------
    async def _publish_loop(self) -> None:
        from aiokafka.errors import KafkaError

        published = self.metrics.published.labels(self.camera.id)
        latency = self.metrics.stage_latency.labels("ingest")
        while True:
            item = await self.buffer.get()
            if item is None:
                return
            frame = item.frame
            frame.publish_unix_ns = time.time_ns()
            try:
                fut = await self.producer.send(self.options.frames_topic, value=frame.SerializeToString(),
                                               key=self.key, headers=self.headers)
                await fut
            except (KafkaError, OSError, TimeoutError) as e:
                self.stats.publish_errors += 1
                self.metrics.dropped.labels(self.camera.id, "error").inc()
                log.warning("frame not published", extra={"camera": self.camera.id, "seq": frame.seq,
                                                          "error": repr(e)})
                await asyncio.sleep(min(self.options.reconnect_initial_s, 1.0))
                continue
            self.stats.published += 1
            published.inc()
            latency.observe(time.perf_counter() - item.started)


async def stream_file(
    camera: Camera,
    producer: Any,
    seconds: float | None,
    *,
    options: IngestOptions | None = None,
    metrics: IngestMetrics | None = None,
    kafka: KafkaSettings | None = None,
    stop: asyncio.Event | None = None,
    gate: Gate = always_open,
    root: Path = REPO_ROOT,
    sealer: FrameSealer | None = None,
) -> StreamStats:
    """Stream one camera (the demo's video as ``demo-cam-1``) through a started
    producer for ``seconds`` (None: until ``stop`` or the end of a non-looping source).
    With ``sealer`` the frames are sealed as the ingest service seals them (a recognizer
    with ``require_sealed_frames``, the default, refuses them otherwise)."""
    options = options or IngestOptions()
    metrics = metrics or IngestMetrics.create(MetricsFactory(SERVICE))
    stream = CameraStream(camera, producer, options=options, metrics=metrics,
                          dlq_topic=(kafka or KafkaSettings()).dlq_topic, gate=gate, root=root, sealer=sealer)
    return await stream.run(stop, seconds)


class CameraIngestor(RedisUser, AuditUser, KafkaWorker):
    """Streams every camera of the registry, keyed by camera id (``record_key(camera_id)``),
    each only while its zone has enough available officers (``gate`` overrides that)."""

    def __init__(self, ctx: ServiceContext, settings: IngestSettings, gate: Gate | None = None) -> None:
        super().__init__(ctx)  # no input topic: ingest only produces
        self.options = settings.ingest
        self.redis_settings = settings.redis
        # read once: the streams are the cameras of the registry at start
        self.registry = CameraFile(resolve(self.options.cameras_file), "LFR_INGEST__CAMERAS_FILE").current()
        self.metrics = IngestMetrics.create(ctx.metrics, self.messages.dead_lettered)  # one lfr_dlq_messages_total
        self.metrics.cameras_configured.set(len(self.registry.cameras))
        for cam in self.registry.cameras:
            self.metrics.camera_active.labels(cam.id).set(0)
        self.monitor: GateMonitor | None = None
        if gate is None:
            self.monitor = GateMonitor(self.registry.cameras, self.options.gating,
                                       camera_active=self.metrics.camera_active, actor=ctx.name)
            gate = self.monitor.is_open
            ctx.add_dependency("redis", self.check_redis)
        self.gate = gate
        self.redis: Any = None
        self.audit: AuditWriter | None = None
        self.stats: dict[str, StreamStats] = {}
        self.sealer: FrameSealer | None = None

    async def connect(self) -> None:
        if self.monitor is not None:
            if self.redis is None:
                self.redis = await clients.connect_redis(self.redis_settings)
                self.monitor.redis = self.redis
            if self.audit is None and self.options.frame_keys.enabled and self.sealer is None:
                self.sealer = FrameSealer(self.redis, self.options.frame_keys)
            self.monitor.audit = await self.start_audit(self.options.audit_topic, self.redis)
        elif self.options.frame_keys.enabled and self.sealer is None:
            if self.redis is None:
                self.redis = await clients.connect_redis(self.redis_settings)
            self.sealer = FrameSealer(self.redis, self.options.frame_keys)
        await super().connect()

    async def close(self) -> None:
        await super().close()
        await self.close_audit()
        await self.close_redis()

    async def work(self) -> None:
        streams = [
            CameraStream(cam, self.producer, options=self.options, metrics=self.metrics,
                         dlq_topic=self.kafka.dlq_topic, instance=self.settings.instance, gate=self.gate,
                         sealer=self.sealer)
            for cam in self.registry.cameras
        ]
        log.info("streaming cameras", extra={"cameras": len(streams), "gated": self.monitor is not None})
        monitor = asyncio.create_task(self.monitor.run(self.ctx.stop)) if self.monitor is not None else None
        try:
            results = await asyncio.gather(*(s.run(self.ctx.stop) for s in streams))
            self.stats = {s.camera.id: r for s, r in zip(streams, results)}
            await self.ctx.stop.wait()  # sources that ended (non-looping files) leave the service up
        finally:
            if monitor is not None:
                if not self.ctx.stop.is_set():  # a stream crashed: the service is going down anyway
                    monitor.cancel()
                await asyncio.gather(monitor, return_exceptions=True)  # on stop: audits the cameras going off
