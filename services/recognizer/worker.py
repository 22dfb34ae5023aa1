"""Recognizer: frames -> Triton detector + embedder -> sealed FaceObservation on lfr.faces.v1.

Per fetched partition batch (the ConsumerLoop commits its offsets only after
every publish of the batch is acknowledged):

1. each record is checked: a valid Frame (else DLQ DECODE_ERROR), not too big
   (OVERSIZED), from a registered camera (UNKNOWN_CAMERA), sealed when
   ``require_sealed_frames`` (default; else UNSEALED: a plaintext frame is never
   analysed, and like every frame dead letter it keeps no payload), not stale (dropped
   and counted, no DLQ: a late live frame is not bad input), a JPEG that
   decodes (CORRUPT_IMAGE) and not too large once decoded (OVERSIZED);
2. the good frames go to FacePipeline.analyse in chunks of ``batch_frames``,
   up to ``analyse_concurrency`` chunks at once (Triton serves each model in its
   own process: one chunk's detection overlaps another's embedding), but each
   chunk publishes only after the one before it has finished, so observations
   leave in chunk order and every camera's stay in capture order;
   Triton down -> health NOT_SERVING, retry with backoff, frames that went stale
   meanwhile are dropped; good frames are never dead-lettered for it;
3. faces refused by the quality gate are counted by reason and forgotten;
   each accepted face is sealed (embedding + crop, fresh key, associated data =
   observation id), the key is SET in Redis with the faces retention as TTL,
   and only then the observation is published, keyed by camera id.

Overload: when the head of a fetched batch is older than ``max_age_s`` the loop
skips every partition ahead to the last ``max_age_s`` unread (counted as stale
drops with camera label ``*``), so the lag stays bounded.

Logs carry ids and counts only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

import cv2
import numpy as np
from lfr.v1 import common_pb2, dlq_pb2, frames_pb2

from services.common import clients, frame_keys
from services.common.cameras import CameraFile
from services.common.kafka import Outbox, PoisonMessage, RecordLike, decode, make_headers, record_key
from services.common.paths import resolve
from services.common.service import ServiceContext
from services.common.triton_client import TritonClient, TritonClientSettings, TritonInferenceError, TritonUnavailable
from services.common.worker import KafkaWorker, RedisUser
from services.face.pipeline import Face, FacePipeline, face_models
from services.recognizer.config import RecognizerOptions, RecognizerSettings
from services.recognizer.metrics import RecognizerMetrics
from services.recognizer.observations import SealedObservation, build_observation
from services.recognizer.runners import CappedRunner, StageClock

log = logging.getLogger(__name__)
SERVICE = "recognizer"
OBSERVATION_TYPE = "lfr.v1.FaceObservation"
SKIPPED_CAMERA = "*"  # camera label of stale frames skipped unread (several cameras share a partition)


@dataclasses.dataclass
class Item:
    record: RecordLike
    frame: frames_pb2.Frame
    bgr: np.ndarray | None = None


def decode_jpeg(data: bytes) -> np.ndarray | None:
    """BGR image, or None when the bytes are not a decodable image."""
    if not data:
        return None
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


class Recognizer(RedisUser, KafkaWorker):
    input_type = frames_pb2.Frame

    def __init__(self, ctx: ServiceContext, settings: RecognizerSettings) -> None:
        super().__init__(ctx, input_topic=settings.recognizer.frames_topic, group_id=settings.recognizer.group_id)
        self.triton_settings = settings.triton
        self.redis_settings = settings.redis
        self.options: RecognizerOptions = settings.recognizer
        # read again when it changes: frames of a camera added while running are analysed
        self.registry = CameraFile(resolve(self.options.cameras_file), "LFR_RECOGNIZER__CAMERAS_FILE")
        self.registry.current()  # a missing or invalid registry stops the start
        self.metrics = RecognizerMetrics.create(ctx.metrics)
        self.runner: CappedRunner | None = None
        self.redis: Any = None
        self.opener: frame_keys.FrameOpener | None = None
        self.pipeline_config = settings.face
        self.models = face_models(settings.face)
        ctx.add_dependency("triton", self.check_triton)
        ctx.add_dependency("redis", self.check_redis)

    # -- connections -------------------------------------------------------------
    async def connect(self) -> None:
        if self.runner is None:
            base = TritonClientSettings.from_section(self.triton_settings, max_delay_ms=self.options.batch_delay_ms)
            runner = CappedRunner(
                TritonClient(base.model_copy(update={"max_batch": self.options.detector_max_batch})),
                TritonClient(base.model_copy(update={"max_batch": self.options.model_max_batch})),
            )
            try:
                if not await runner.detector.server_ready():
                    raise ConnectionError("triton is not ready")
            except BaseException:
                await runner.close()
                raise
            self.runner = runner
        if self.redis is None:
            self.redis = await clients.connect_redis(self.redis_settings)
            self.opener = None
        await super().connect()

    async def check_triton(self) -> None:
        if self.runner is None:
            raise ConnectionError("not connected")
        for model in self.models:
            if not await self.runner.detector.model_ready(model):
                raise ConnectionError(f"model {model} is not ready")

    async def close(self) -> None:
        await super().close()
        if self.runner is not None:
            await self.runner.close()
            self.runner = None
        await self.close_redis()

    # -- the loop ------------------------------------------------------------------
    async def work(self) -> None:
        loop = self.consumer_loop(batch_handler=self.handle_batch, max_age_s=self.options.max_age_s,
                                  on_skipped=self._skipped, lag_interval_s=self.options.lag_interval_s)
        await loop.run(self.ctx.stop)

    def _skipped(self, tp: Any, count: int) -> None:
        """Stale records skipped unread by the loop: dropped as stale; the camera is not known
        without reading them, hence the label SKIPPED_CAMERA."""
        self.metrics.dropped.labels(SKIPPED_CAMERA, "stale").inc(count)

    async def _wait(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.ctx.stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    # -- one partition batch ---------------------------------------------------------
    async def handle_batch(self, records: list[RecordLike], out: Outbox) -> None:
        self.metrics.consumed.labels(SERVICE).inc(len(records))
        items: list[Item] = []
        for record in records:
            try:
                item = self.check(record)
            except PoisonMessage as e:
                out.dead_letter(record, e)
                continue
            if item is not None:
                items.append(item)
        items = await self._open(items, out)
        if not items:
            return
        images = await asyncio.to_thread(lambda: [decode_jpeg(i.frame.image) for i in items])
        good: list[Item] = []
        for item, bgr in zip(items, images):
            try:
                self.check_image(item.frame, bgr)
            except PoisonMessage as e:
                out.dead_letter(item.record, e)
                continue
            item.bgr = bgr
            good.append(item)
        step = self.options.batch_frames
        await self.process_chunks([good[i:i + step] for i in range(0, len(good), step)], out)

    def check(self, record: RecordLike) -> Item | None:
        """A Frame worth analysing, None for a stale one; PoisonMessage for bad input."""
        frame = decode(record, frames_pb2.Frame, max_bytes=self.options.max_frame_bytes)
        if self.registry.get(frame.camera_id) is None:
            raise PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_UNKNOWN_CAMERA,
                                f"camera {frame.camera_id[:128]!r} is not in the registry")
        if frame.capture_unix_ns <= 0:
            raise PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_INVALID_FIELD, "capture_unix_ns is not set")
        if frame.encoding not in (frames_pb2.FRAME_ENCODING_JPEG, frames_pb2.FRAME_ENCODING_UNSPECIFIED):
            raise PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_INVALID_FIELD, f"unsupported encoding {frame.encoding}")
        if frame.protection not in (common_pb2.PAYLOAD_PROTECTION_UNSPECIFIED, common_pb2.PAYLOAD_PROTECTION_PLAINTEXT,
                                    frame_keys.PROTECTION):
            raise PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_INVALID_FIELD,
                                f"payload protection {frame.protection} is not supported")
        if frame.protection == frame_keys.PROTECTION and (not frame.key_id or len(frame.nonce) != 12):
            raise PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_INVALID_FIELD, "sealed frame without key_id/nonce")
        if frame.protection != frame_keys.PROTECTION and self.options.require_sealed_frames:
            raise PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_UNSEALED,
                                f"camera {frame.camera_id} seq {frame.seq}: frame is not sealed (protection "
                                f"{common_pb2.PayloadProtection.Name(frame.protection)}) and sealing is required: "
                                "publish frames through ingest (frame_keys.enabled), or set "
                                "recognizer.require_sealed_frames=false where sealing is off")
        if self.stale(frame):
            self._drop(frame, "stale")
            return None
        return Item(record=record, frame=frame)

    async def _open(self, items: list[Item], out: Outbox) -> list[Item]:
        """Decrypt sealed frames in memory; a frame whose key is gone is a KEY_EXPIRED dead letter
        (without its payload: frames are a biometric topic)."""
        from cryptography.exceptions import InvalidTag

        if self.opener is None:
            self.opener = frame_keys.FrameOpener(self.redis, max_cache_s=self.options.frame_key_cache_s)
        opened: list[Item] = []
        for item in items:
            if item.frame.protection != frame_keys.PROTECTION:
                opened.append(item)
                continue
            try:
                image = await self.opener.open(item.frame)
            except frame_keys.KeyGone:
                out.dead_letter(item.record, PoisonMessage(
                    dlq_pb2.DEAD_LETTER_REASON_KEY_EXPIRED,
                    f"camera {item.frame.camera_id} seq {item.frame.seq}: frame key expired (crypto-shredded)"))
                continue
            except InvalidTag:
                out.dead_letter(item.record, PoisonMessage(
                    dlq_pb2.DEAD_LETTER_REASON_CORRUPT_IMAGE,
                    f"camera {item.frame.camera_id} seq {item.frame.seq}: sealed image does not authenticate"))
                continue
            item.frame.image = image
            item.frame.protection = common_pb2.PAYLOAD_PROTECTION_PLAINTEXT
            opened.append(item)
        return opened

    def check_image(self, frame: frames_pb2.Frame, bgr: np.ndarray | None) -> None:
        if bgr is None:
            raise PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_CORRUPT_IMAGE,
                                f"camera {frame.camera_id} seq {frame.seq}: image does not decode "
                                f"({len(frame.image)} bytes)")
        h, w = bgr.shape[:2]
        if max(h, w) > self.options.max_frame_side:
            raise PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_OVERSIZED,
                                f"camera {frame.camera_id} seq {frame.seq}: {w}x{h} > {self.options.max_frame_side} px")

    def stale(self, frame: frames_pb2.Frame) -> bool:
        return time.time_ns() - frame.capture_unix_ns > self.options.max_age_s * 1e9

    def _drop(self, frame: frames_pb2.Frame, reason: str) -> None:
        self.metrics.dropped.labels(frame.camera_id, reason).inc()

    # -- chunks: analysed concurrently, published in order -----------------------------
    async def process_chunks(self, chunks: list[list[Item]], out: Outbox) -> None:
        """Process every chunk of a batch; returns once each one is published (or dropped or
        dead-lettered), so the loop commits only what was published.

        Up to ``analyse_concurrency`` chunks are in flight: chunk n starts once
        chunk n - analyse_concurrency has finished, and publishes only after chunk
        n - 1 has finished (see :meth:`process`). With 1, or a single chunk, the
        chunks run one after the other in this task. The first unexpected
        exception of a chunk cancels (and awaits) every other one and is raised:
        the loop dead-letters the batch, as it did without the overlap."""
        window = self.options.analyse_concurrency
        if window == 1 or len(chunks) < 2:
            for chunk in chunks:
                await self.process(chunk, out)
            return
        tasks: list[asyncio.Task[None]] = []
        try:
            for n, chunk in enumerate(chunks):
                if n >= window:
                    await _join(tasks, upto=n - window + 1)
                after = tasks[-1] if tasks else None
                tasks.append(asyncio.create_task(self._chunk(chunk, out, after), name=f"recognizer:chunk-{n}"))
            await _join(tasks, upto=len(tasks))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _chunk(self, items: list[Item], out: Outbox, after: asyncio.Task[None] | None) -> None:
        """One chunk task: finished only once the chunk before is, even when this one had nothing
        to publish, so 'chunk n finished' means 'chunks 0..n finished'."""
        await self.process(items, out, after=after)
        await _turn(after)

    # -- analysis, with Triton retries ----------------------------------------------
    async def process(self, items: list[Item], out: Outbox, after: asyncio.Task[None] | None = None) -> None:
        """Analyse one chunk and publish its observations.

        Stale frames are dropped before each attempt; Triton unavailable (or its
        models not ready) and Redis down are retried with backoff until ``stop``
        (then the frames are dropped as ``error``); a multi-frame chunk the models
        refuse is retried frame by frame, and the one frame they refuse is
        dead-lettered INTERNAL. ``after`` is the task of the chunk before when
        chunks run concurrently: the observations are published only once it has
        finished (None: at once); frames that went stale while waiting for it are
        dropped, as they would have been before their analysis without the overlap."""
        delay = self.options.retry_initial_s
        while True:
            items = self._fresh(items)
            if not items:
                return
            try:
                sealed = await self._analyse(items)
                if await _turn(after):  # waited for the chunk before
                    items = self._fresh(items)
                    kept = {id(it) for it in items}
                    sealed = [(it, s) for it, s in sealed if id(it) in kept]
                await self._publish(items, sealed, out)
                return
            except TritonUnavailable as e:
                log.warning("triton unavailable; retrying", extra={"frames": len(items), "retry_in_s": delay,
                                                                   "error": e.reason[:200]})
            except TritonInferenceError as e:
                if not await self._models_ready():
                    log.warning("triton models not ready; retrying", extra={"frames": len(items), "retry_in_s": delay})
                elif len(items) > 1:  # find the frame the models refuse (in order, still after the chunk before)
                    for it in items:
                        await self.process([it], out, after=after)
                    return
                else:
                    out.dead_letter(items[0].record, PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_INTERNAL,
                                                                   f"inference failed: {e.reason[:300]}"))
                    return
            except RedisDown as e:
                log.warning("redis unavailable; retrying", extra={"frames": len(items), "retry_in_s": delay,
                                                                  "error": str(e)[:200]})
            self.ctx.refresh_health()
            if self.ctx.stop.is_set():
                for it in items:
                    self._drop(it.frame, "error")
                return
            await self._wait(delay)
            delay = min(delay * 2, self.options.retry_max_s)

    def _fresh(self, items: list[Item]) -> list[Item]:
        """The items that are not stale; the stale ones are dropped (counted)."""
        fresh = []
        for it in items:
            if self.stale(it.frame):
                self._drop(it.frame, "stale")
            else:
                fresh.append(it)
        return fresh

    async def _models_ready(self) -> bool:
        assert self.runner is not None
        try:
            for model in self.models:
                if not await self.runner.detector.model_ready(model):
                    return False
        except TritonUnavailable:
            return False
        return True

    async def _analyse(self, items: list[Item]) -> list[tuple[Item, SealedObservation]]:
        """FacePipeline.analyse on one chunk, then each accepted face sealed; nothing is stored or
        published yet. Records the chunk's detect and embed latencies (its own stage clock, so
        they hold with concurrent chunks: wall time of this chunk's stages, queueing included)
        and the detected / rejected face counts."""
        assert self.runner is not None
        clock = StageClock(self.runner, self.pipeline_config.embedder)
        pipeline = FacePipeline(clock, self.pipeline_config)
        rgb = [cv2.cvtColor(it.bgr, cv2.COLOR_BGR2RGB) for it in items if it.bgr is not None]
        started = time.perf_counter()
        results = await pipeline.analyse(rgb)
        ended = time.perf_counter()
        detect_s = (clock.embed_start or ended) - started
        detect_ns = clock.embed_start_ns or time.time_ns()
        embed_ns = time.time_ns()
        latency = self.metrics.stage_latency
        sealed: list[tuple[Item, SealedObservation]] = []
        for it, faces in zip(items, results):
            latency.labels("detect").observe(detect_s)
            accepted = self._gate(faces)
            if accepted and clock.embed_start is not None:
                latency.labels("embed").observe((clock.embed_end or ended) - clock.embed_start)
            for index, face in accepted:
                assert it.bgr is not None
                sealed.append((it, build_observation(
                    it.frame, it.bgr, face, index, len(faces),
                    margin=self.options.crop_margin, max_px=self.options.crop_max_px,
                    quality=self.options.crop_jpeg_quality, detect_unix_ns=detect_ns, embed_unix_ns=embed_ns,
                    embedder=self.pipeline_config.embedder)))
        return sealed

    async def _publish(self, items: list[Item], sealed: list[tuple[Item, SealedObservation]], out: Outbox) -> None:
        """Store the data keys in Redis, then send the observations, in order (RedisDown: nothing sent)."""
        if not sealed:
            return
        await self._store_keys([s for _, s in sealed])  # key in Redis FIRST ...
        headers = make_headers(OBSERVATION_TYPE, SERVICE)
        for it, s in sealed:  # ... then the observation (acks awaited by the loop before the commit)
            await out.send(self.options.faces_topic, s.observation.SerializeToString(),
                           key=record_key(it.frame.camera_id), headers=headers)
        self.metrics.embedded.inc(len(sealed))
        log.debug("faces published", extra={"frames": len(items), "faces": len(sealed)})

    def _gate(self, faces: list[Face]) -> list[tuple[int, Face]]:
        self.metrics.detected.inc(len(faces))
        accepted = []
        for index, face in enumerate(faces):
            reason = face.quality.reason
            if reason is not None:
                self.metrics.rejected.labels(reason.value.lower()).inc()
            elif face.embedding is not None:
                accepted.append((index, face))
        return accepted

    async def _store_keys(self, sealed: list[SealedObservation]) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for s in sealed:
                    pipe.set(s.redis_key, s.key, ex=self.options.key_ttl_s)
                await pipe.execute()
        except (RedisConnectionError, RedisTimeoutError, OSError) as e:
            raise RedisDown(type(e).__name__) from e


class RedisDown(Exception):
    """Redis did not take the data keys (nothing was published)."""


class ChunkAbandoned(Exception):
    """An earlier chunk of the batch failed: this one publishes nothing (the batch fails)."""


async def _turn(after: asyncio.Task[None] | None) -> bool:
    """Wait until the chunk task before has finished; True when that meant waiting.

    Never cancels ``after`` (a cancelled waiter leaves it to its owner);
    raises ChunkAbandoned when it failed or was cancelled."""
    if after is None:
        return False
    waited = not after.done()
    if waited:
        await asyncio.wait([after])
    if after.cancelled() or after.exception() is not None:
        raise ChunkAbandoned("an earlier chunk of the batch failed")
    return waited


async def _join(tasks: list[asyncio.Task[None]], upto: int) -> None:
    """Wait until ``tasks[:upto]`` have finished; raises at once the first failure (in chunk
    order) of any of ``tasks``."""
    while True:
        for task in tasks:
            if task.done() and not task.cancelled():
                error = task.exception()
                if error is not None:
                    raise error
        if all(task.done() for task in tasks[:upto]):
            return
        await asyncio.wait([task for task in tasks if not task.done()], return_when=asyncio.FIRST_COMPLETED)
