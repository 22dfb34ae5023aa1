"""Matcher: sealed FaceObservation -> Milvus search (deployment-scoped) -> threshold
-> MatchCandidate on lfr.matches.v1, or crypto-shred.

Per polled batch (one partition's records, see ``ConsumerLoop``):

1. decode each record (bad protobuf -> DLQ DECODE_ERROR), look its camera up in
   the registry (unknown -> DLQ UNKNOWN_CAMERA), require a sealed payload;
1b. gating, checked again (ingest enforces it): a face from a camera whose zone
   has fewer than ``gating.min_officers`` available officers on duty is never
   opened nor searched: its key is deleted with the non-matches and it is
   counted in ``lfr_faces_gated_total{camera}``;
2. fetch every observation's data key ``lfr:obs:<key_id>`` from Redis in one
   MGET; a missing key means the payload was shredded (expired, or already
   decided by an earlier delivery) -> DLQ KEY_EXPIRED, payload never kept;
3. open each FaceSecret in memory (associated data = observation_id);
4. search Milvus once per (deployment, capture second) group of faces with the
   filter of the watchlists active there and then
   (``services.common.faces_search.search_active``: one hit per subject, best first);
5. :func:`decide` -- THE threshold decision, the only place it is made;
6. non-matches: ``DEL`` their keys at once (one call), count
   ``lfr_nonmatches_discarded_total``, keep and log nothing else;
   matches: publish a MatchCandidate (live crop in clear, the enrolled aligned
   face fetched for side by side; never the probe embedding), wait for the broker's ack, then ``DEL``
   their keys. The loop commits the offsets after that.

Dead-lettered observations have their keys deleted too: nobody will ever
decide on them, so nobody may read them. That holds when the handler itself
fails (the loop then dead-letters the whole batch as INTERNAL): every key the
batch names is deleted first (:meth:`Matcher._shred_batch`), so a poison batch
leaves no readable payload behind until its TTL.

Redis or Milvus down: health goes NOT_SERVING (dependency checks) and the batch
is retried in place with backoff until the server answers; good records are
never dead-lettered because a dependency is down. If the service is stopped
meanwhile, the batch is abandoned uncommitted (redelivered after restart).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from google.protobuf.message import DecodeError
from lfr.v1 import common_pb2, dlq_pb2, faces_pb2, matches_pb2

from services.common import clients, faces_search
from services.common.availability import may_run, zone_counts
from services.common.cameras import Camera, CameraFile
from services.common.faces_schema import EMBEDDING_DIM, ensure_collection
from services.common.faces_search import Hit
from services.common.kafka import Outbox, PoisonMessage, RecordLike, decode, make_headers, record_key
from services.common.milvus_collections import faces_collection
from services.common.retry import retry_until_up
from services.common.sealing import open_sealed, redis_key
from services.common.service import ServiceContext
from services.common.worker import KafkaWorker, RedisUser
from services.matcher.config import MatcherSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
SearchFn = Callable[..., list[list[Hit]]]  # services.common.faces_search.search_active
FetchImageFn = Callable[..., bytes | None]  # services.common.faces_search.fetch_image

CATEGORIES = {
    "wanted": common_pb2.SUBJECT_CATEGORY_WANTED,
    "missing": common_pb2.SUBJECT_CATEGORY_MISSING,
    "at_risk": common_pb2.SUBJECT_CATEGORY_AT_RISK,
}


def decide(hits: Sequence[Hit], threshold: float) -> Hit | None:
    """THE match decision. ``hits`` are one face's watchlist hits, one per subject,
    best first. A match is the best hit with ``score >= threshold``; anything
    else (no hit, or the best below the threshold) is a non-match: ``None``."""
    if hits and hits[0].score >= threshold:
        return hits[0]
    return None


@dataclasses.dataclass
class Pending:
    """One decodable, sealed observation of a known camera, on its way to a decision."""

    record: RecordLike
    obs: faces_pb2.FaceObservation
    camera: Camera
    secret: faces_pb2.FaceSecret | None = None
    hits: list[Hit] = dataclasses.field(default_factory=list)

    @property
    def key(self) -> str:
        return redis_key(self.obs.secret.key_id)


class Matcher(RedisUser, KafkaWorker):
    input_type = faces_pb2.FaceObservation

    def __init__(self, ctx: ServiceContext, settings: MatcherSettings, search: SearchFn | None = None,
                 fetch_image: FetchImageFn | None = None) -> None:
        super().__init__(ctx, input_topic=settings.matcher.faces_topic, group_id=settings.matcher.group_id)
        self.milvus_settings = settings.milvus
        self.redis_settings = settings.redis
        self.options = settings.matcher
        self.threshold, self.threshold_source = settings.threshold_choice()
        self.embedder = settings.face.embedder
        self.collection = faces_collection(self.embedder)
        log.info("match threshold", extra={"threshold": self.threshold, "source": self.threshold_source,
                                           "embedder": self.embedder, "collection": self.collection})
        self.cameras = CameraFile(settings.matcher.cameras_file, "LFR_MATCHER__CAMERAS_FILE")
        self.cameras.current()  # a missing or invalid registry stops the start
        self.search: SearchFn = search or faces_search.search_active
        self.fetch_image: FetchImageFn = fetch_image or faces_search.fetch_image
        self.milvus: Any = None
        self.redis: Any = None
        m = ctx.metrics
        self.matches_total = m.counter("matches_total", "faces matched to a watchlist subject", ("watchlist",))
        self.nonmatches_discarded = m.counter(
            "nonmatches_discarded_total", "faces that matched no one: data key deleted at once, nothing kept"
        )
        self.stage_latency = m.histogram("stage_latency_seconds", "time spent in a pipeline stage", ("stage",))
        self.faces_gated = m.counter(
            "faces_gated_total", "faces from a camera whose zone had no available officer: key deleted, not searched",
            ("camera",))
        ctx.add_dependency("milvus", self.check_milvus)
        ctx.add_dependency("redis", self.check_redis)

    # --- connections ---------------------------------------------------------

    async def connect(self) -> None:
        if self.redis is None:
            self.redis = await clients.connect_redis(self.redis_settings)
        if self.milvus is None:
            client = await clients.connect_milvus(self.milvus_settings)
            try:
                # idempotent; the watchlist service's schema
                await asyncio.to_thread(ensure_collection, client, self.embedder)
            except BaseException:
                client.close()
                raise
            self.milvus = client
        await super().connect()

    async def check_milvus(self) -> None:
        if self.milvus is None:
            raise ConnectionError("not connected")
        await clients.check_milvus(self.milvus, self.milvus_settings.timeout_s)

    async def close(self) -> None:
        await super().close()
        await self.close_redis()
        if self.milvus is not None:
            self.milvus.close()
            self.milvus = None

    async def _reconnect_milvus(self) -> None:
        if self.milvus is not None:
            try:
                self.milvus.close()
            except Exception as e:  # a broken client may fail to close; it is dropped anyway
                log.debug("closing milvus client failed", extra={"error": f"{type(e).__name__}: {e}"})
            self.milvus = None
        try:
            self.milvus = await clients.connect_milvus(self.milvus_settings)
        except Exception as e:  # still down: the caller backs off and retries
            log.debug("milvus reconnect failed", extra={"error": f"{type(e).__name__}: {e}"})

    async def _retry(self, dependency: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` until it succeeds; backs off while the dependency is down."""

        async def guarded() -> T:
            if dependency == "milvus" and self.milvus is None:
                raise ConnectionError("milvus not connected")
            return await call()

        return await retry_until_up(
            dependency, guarded, self.ctx.stop,
            on_down=self.ctx.refresh_health,
            before_retry=self._reconnect_milvus if dependency == "milvus" else None,
            max_backoff_s=self.options.retry_max_backoff_s,
        )

    # --- the consumer loop ---------------------------------------------------------

    async def work(self) -> None:
        await self.consumer_loop(batch_handler=self.handle_batch).run(self.ctx.stop)

    async def handle_batch(self, records: list[RecordLike], out: Outbox) -> None:
        try:
            await self._decide_batch(records, out)
        except Exception:  # the loop dead-letters the batch (INTERNAL): its keys go first
            await self._shred_batch(records)
            raise

    async def _shred_batch(self, records: list[RecordLike]) -> None:
        """Delete the data key of every observation in ``records`` (those that decode and are sealed).

        A Redis outage is waited out like any other call (stop -> the batch stays uncommitted);
        any other Redis error is logged and the keys are left to their TTL."""
        keys: list[str] = []
        for record in records:
            try:
                obs = decode(record, faces_pb2.FaceObservation, max_bytes=self.kafka.max_request_bytes)
            except PoisonMessage:
                continue
            if obs.HasField("secret") and obs.secret.key_id:
                keys.append(redis_key(obs.secret.key_id))
        if not keys or self.redis is None:
            return
        try:
            await self._retry("redis", lambda: self.redis.delete(*keys))
        except Exception as e:  # never hide the handler's own error behind this one
            log.error("keys of a failed batch not deleted; they expire with their TTL",
                      extra={"keys": len(keys), "error": type(e).__name__})
            return
        log.warning("batch failed: its keys were deleted before it is dead-lettered", extra={"keys": len(keys)})

    async def _decide_batch(self, records: list[RecordLike], out: Outbox) -> None:
        started = time.perf_counter()
        shred: list[str] = []  # keys of observations nobody will decide on: deleted with the non-matches
        pending = self._admit(records, out, shred)
        if pending and self.options.gating.min_officers > 0:
            pending = await self._gate(pending, shred)
        if pending:
            values = await self._retry("redis", lambda: self.redis.mget([p.key for p in pending]))
            pending = self._open(pending, values, out, shred)
        if pending:
            await self._search(pending)
        matched: list[tuple[Pending, Hit]] = []
        for p in pending:
            hit = decide(p.hits, self.threshold)
            if hit is None:
                shred.append(p.key)
                p.secret = None  # a non-match's plaintext goes now; nothing of it is kept
            else:
                matched.append((p, hit))
        nonmatches = len(pending) - len(matched)
        if shred:  # non-matches (and dead letters): crypto-shredded before anything is published
            await self._retry("redis", lambda: self.redis.delete(*shred))
        if nonmatches:
            self.nonmatches_discarded.inc(nonmatches)
        if matched:
            await self._publish(matched, out)
            for p, _ in matched:
                p.secret = None
        elapsed = time.perf_counter() - started
        for _ in range(len(pending)):
            self.stage_latency.labels("match").observe(elapsed)

    def _admit(self, records: list[RecordLike], out: Outbox, shred: list[str]) -> list[Pending]:
        pending: list[Pending] = []
        for record in records:
            try:
                obs = decode(record, faces_pb2.FaceObservation, max_bytes=self.kafka.max_request_bytes)
            except PoisonMessage as e:
                out.dead_letter(record, e)
                continue
            key_id = obs.secret.key_id if obs.HasField("secret") else ""
            try:
                camera = self._validate(obs)
            except PoisonMessage as e:
                out.dead_letter(record, e)
                if key_id:
                    shred.append(redis_key(key_id))
                continue
            pending.append(Pending(record, obs, camera))
        return pending

    async def _gate(self, pending: list[Pending], shred: list[str]) -> list[Pending]:
        """Drop (shred) the faces of cameras whose zone has too few available officers."""
        counts = await self._retry("redis", lambda: zone_counts(self.redis, {p.camera.zone for p in pending}))
        kept: list[Pending] = []
        for p in pending:
            if may_run(counts.get(p.camera.zone, 0), self.options.gating.min_officers):
                kept.append(p)
            else:
                shred.append(p.key)
                self.faces_gated.labels(p.camera.id).inc()
        if len(kept) < len(pending):
            log.info("faces from gated cameras shredded", extra={"faces": len(pending) - len(kept)})
        return kept

    def _validate(self, obs: faces_pb2.FaceObservation) -> Camera:
        invalid = dlq_pb2.DEAD_LETTER_REASON_INVALID_FIELD
        camera = self.cameras.get(obs.frame.camera_id)
        if camera is None:
            raise PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_UNKNOWN_CAMERA,
                                f"camera {obs.frame.camera_id!r} is not registered")
        if not obs.observation_id:
            raise PoisonMessage(invalid, "observation_id is empty")
        if not obs.HasField("secret") or not obs.secret.key_id or not obs.secret.ciphertext:
            raise PoisonMessage(invalid, "observation is not sealed (secret missing); plaintext biometrics are refused")
        if obs.frame.capture_unix_ns <= 0:
            raise PoisonMessage(invalid, "frame.capture_unix_ns is not set")
        return camera

    def _open(self, pending: list[Pending], values: Sequence[bytes | None], out: Outbox,
              shred: list[str]) -> list[Pending]:
        opened: list[Pending] = []
        for p, key in zip(pending, values, strict=True):
            if key is None:
                out.dead_letter(p.record, PoisonMessage(
                    dlq_pb2.DEAD_LETTER_REASON_KEY_EXPIRED,
                    f"data key of observation {p.obs.observation_id} is gone (expired or already decided): "
                    "payload unreadable"))
                continue
            try:
                secret = faces_pb2.FaceSecret.FromString(open_sealed(p.obs.secret, key, p.obs.observation_id))
            except (InvalidTag, ValueError, DecodeError) as e:
                out.dead_letter(p.record, PoisonMessage(
                    dlq_pb2.DEAD_LETTER_REASON_INVALID_FIELD, f"sealed payload does not open: {type(e).__name__}"))
                shred.append(p.key)
                continue
            made_by = p.obs.model.embedder
            if made_by != self.embedder:  # never compare two embedders' vectors; an unnamed one fails closed
                out.dead_letter(p.record, PoisonMessage(
                    dlq_pb2.DEAD_LETTER_REASON_INVALID_FIELD,
                    f"face embedded by {made_by or 'an unnamed embedder (model.embedder empty)'}; this matcher "
                    f"searches {self.embedder}'s watchlists: run every service with the same face.embedder "
                    "(LFR_FACE__EMBEDDER)"))
                shred.append(p.key)
                continue
            if len(secret.embedding) != EMBEDDING_DIM:
                out.dead_letter(p.record, PoisonMessage(
                    dlq_pb2.DEAD_LETTER_REASON_INVALID_FIELD,
                    f"embedding has {len(secret.embedding)} dims, expected {EMBEDDING_DIM}"))
                shred.append(p.key)
                continue
            p.secret = secret
            opened.append(p)
        return opened

    async def _search(self, pending: list[Pending]) -> None:
        """One Milvus search per (deployment, capture second) group."""
        groups: dict[tuple[str, int], list[Pending]] = defaultdict(list)
        for p in pending:
            groups[(p.camera.deployment_id, p.obs.frame.capture_unix_ns // 1_000_000_000)].append(p)
        for (deployment_id, at_s), members in groups.items():
            embeddings = [list(p.secret.embedding) for p in members if p.secret is not None]

            async def call(embeddings: list[list[float]] = embeddings, deployment_id: str = deployment_id,
                           at_s: int = at_s) -> list[list[Hit]]:
                return await asyncio.to_thread(self.search, self.milvus, embeddings, deployment_id, at_s,
                                               self.options.top_k, self.milvus_settings.timeout_s,
                                               min_score=self.threshold, collection=self.collection)

            results = await self._retry("milvus", call)
            for p, hits in zip(members, results, strict=True):
                p.hits = hits

    async def _publish(self, matched: list[tuple[Pending, Hit]], out: Outbox) -> None:
        decided = time.time_ns()
        for p, hit in matched:
            async def fetch(row_id: int = hit.row_id) -> bytes | None:
                return await asyncio.to_thread(self.fetch_image, self.milvus, row_id, self.milvus_settings.timeout_s,
                                               collection=self.collection)

            enrolled = await self._retry("milvus", fetch)  # the enrolled aligned face, for side by side
            candidate = self._candidate(p, hit, decided, enrolled or b"")
            await out.send(
                self.options.matches_topic,
                candidate.SerializeToString(),
                key=record_key(p.camera.id),
                headers=make_headers(candidate, self.ctx.name),
            )
        await out.flush()  # the broker has every match: now the keys can go
        await self._retry("redis", lambda: self.redis.delete(*[p.key for p, _ in matched]))
        for p, hit in matched:
            self.matches_total.labels(hit.watchlist_id).inc()
            log.info("match", extra={"observation_id": p.obs.observation_id, "subject_id": hit.subject_id,
                                     "watchlist_id": hit.watchlist_id, "camera_id": p.camera.id,
                                     "score": round(hit.score, 4), "threshold": self.threshold})

    def _candidate(self, p: Pending, hit: Hit, decided_ns: int, enrolled: bytes) -> matches_pb2.MatchCandidate:
        obs = p.obs
        secret = p.secret
        assert secret is not None
        return matches_pb2.MatchCandidate(
            observation_id=obs.observation_id,
            frame=common_pb2.FrameRef(
                camera_id=p.camera.id, zone=p.camera.zone, deployment_id=p.camera.deployment_id,
                seq=obs.frame.seq, capture_unix_ns=obs.frame.capture_unix_ns),
            box=obs.box,
            det_score=obs.det_score,
            quality=obs.quality,
            track_id=obs.track_id,
            model=obs.model,
            subject_id=hit.subject_id,
            subject_category=CATEGORIES.get(hit.category, common_pb2.SUBJECT_CATEGORY_UNSPECIFIED),
            watchlist_id=hit.watchlist_id,
            score=hit.score,
            rank=1,
            threshold=self.threshold,
            watchlist_image=common_pb2.ImageRef(
                watchlist_id=hit.watchlist_id, subject_id=hit.subject_id, image_id=str(hit.row_id),
                source_ref=hit.image_ref, jpeg=enrolled),
            crop=common_pb2.Crop(
                jpeg=secret.crop_jpeg, protection=common_pb2.PAYLOAD_PROTECTION_PLAINTEXT,
                width=secret.crop_width, height=secret.crop_height),
            match_unix_ns=decided_ns,
        )
