"""Alerts (first cut): MatchCandidate -> per-pass aggregation -> Alert on
lfr.alerts.v1 and on the ``AlertService.StreamAlerts`` server-stream.

One alert per subject per camera per pass (see :mod:`services.alerts.passes`):
the first match of a pass is published AT ONCE (keyed by alert id, the
idempotency key), and only after the broker's ack is it marked emitted in Redis
and fanned out to the StreamAlerts clients. Later matches of the same pass only
update the pass record in Redis (best score/crop/box, count, last seen); they
are not re-emitted, so a device or stream sees one alert per pass.

Delivery is at least once: a crash between the broker's ack and the "emitted"
mark makes the redelivered match publish the same alert (same alert id) again;
consumers deduplicate by alert id (the officers issue does, for devices).

Retention: an Alert on lfr.alerts.v1 (and the MatchCandidate on
lfr.matches.v1) is kept 24 h by topic retention; the pass record in Redis
(with its best crop) expires ``pass_ttl_s`` after the last sighting. Routing
to officers' devices, adjudication and the retention purge of the alert and its
crops (the pass record's crop included) live in the officers service, which
consumes lfr.alerts.v1 (:mod:`services.officers.worker`).

Logs carry ids and scores only, never crops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
from lfr.v1 import alerts_pb2, alerts_pb2_grpc, common_pb2, dlq_pb2, matches_pb2

from services.alerts.config import AlertsOptions, AlertsSettings
from services.alerts.passes import PassState, PassStore, RedisPassStore, Sighting
from services.common import clients
from services.common.kafka import Outbox, PoisonMessage, RecordLike, decode, make_headers, record_key
from services.common.pass_keys import pass_key
from services.common.retry import retry_until_up
from services.common.service import ServiceContext
from services.common.worker import KafkaWorker, RedisUser

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclasses.dataclass(eq=False)
class _Subscriber:
    request: alerts_pb2.StreamAlertsRequest
    queue: asyncio.Queue[alerts_pb2.Alert]

    def wants(self, alert: alerts_pb2.Alert) -> bool:
        r = self.request
        return (
            (not r.zones or alert.zone in r.zones)
            and (not r.camera_ids or alert.camera_id in r.camera_ids)
            and (not r.deployment_id or alert.deployment_id == r.deployment_id)
        )


class AlertHub:
    """Fans alerts out to live StreamAlerts calls; a slow client loses its oldest alerts."""

    def __init__(self, queue_size: int) -> None:
        self._queue_size = queue_size
        self._subscribers: set[_Subscriber] = set()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def publish(self, alert: alerts_pb2.Alert) -> int:
        delivered = 0
        for sub in self._subscribers:
            if not sub.wants(alert):
                continue
            if sub.queue.full():
                sub.queue.get_nowait()
            sub.queue.put_nowait(alert)
            delivered += 1
        return delivered

    async def stream(self, request: alerts_pb2.StreamAlertsRequest,
                     stop: asyncio.Event) -> AsyncIterator[alerts_pb2.Alert]:
        sub = _Subscriber(request, asyncio.Queue(self._queue_size))
        self._subscribers.add(sub)
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(sub.queue.get())
                stopper = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if getter in done:
                    yield getter.result()
                else:
                    getter.cancel()
        finally:
            self._subscribers.discard(sub)


class AlertStreamServicer(alerts_pb2_grpc.AlertServiceServicer):
    def __init__(self, hub: AlertHub, stop: asyncio.Event) -> None:
        self._hub = hub
        self._stop = stop

    async def StreamAlerts(  # noqa: N802 (gRPC method name)
        self, request: alerts_pb2.StreamAlertsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[alerts_pb2.Alert]:
        async for alert in self._hub.stream(request, self._stop):
            yield alert


def sighting_of(candidate: matches_pb2.MatchCandidate) -> Sighting:
    """The pass-relevant part of a match; bad input -> PoisonMessage (DLQ)."""
    invalid = dlq_pb2.DEAD_LETTER_REASON_INVALID_FIELD
    if not candidate.subject_id or not candidate.frame.camera_id or not candidate.observation_id:
        raise PoisonMessage(invalid, "subject_id, frame.camera_id and observation_id are required")
    if candidate.frame.capture_unix_ns <= 0:
        raise PoisonMessage(invalid, "frame.capture_unix_ns is not set")
    b = candidate.box
    return Sighting(
        camera_id=candidate.frame.camera_id,
        subject_id=candidate.subject_id,
        observation_id=candidate.observation_id,
        capture_ns=candidate.frame.capture_unix_ns,
        score=float(candidate.score),
        box=(b.x1, b.y1, b.x2, b.y2),
    )


class PassAggregator:
    """Matches -> at most one Alert per pass. Storage-agnostic (Redis in the
    service, an in-memory fake in unit tests)."""

    def __init__(self, store: PassStore, options: AlertsOptions) -> None:
        self.store = store
        self.window_ns = int(options.pass_window_s * 1e9)
        self.ttl_ms = int(options.pass_ttl_s * 1000)

    async def on_match(self, candidate: matches_pb2.MatchCandidate) -> alerts_pb2.Alert | None:
        """Record the sighting; the Alert to publish when it opens a pass (or when the
        pass's alert was never confirmed published), else None."""
        sighting = sighting_of(candidate)
        key = pass_key(sighting.camera_id, sighting.subject_id)
        update = await self.store.apply(key, sighting, self.window_ns, self.ttl_ms, candidate.crop.jpeg)
        if update.state.emitted:
            return None
        if update.state.best_observation_id == candidate.observation_id:
            crop = candidate.crop
        else:  # re-emitting an unconfirmed alert: its best crop is in the pass record
            crop = common_pb2.Crop(jpeg=await self.store.best_crop(key),
                                   protection=common_pb2.PAYLOAD_PROTECTION_PLAINTEXT)
        return build_alert(candidate, update.state, crop)

    async def confirm(self, alert: alerts_pb2.Alert) -> None:
        """The broker has the alert: later sightings of the pass will not emit it again."""
        await self.store.mark_emitted(pass_key(alert.camera_id, alert.subject_id), alert.alert_id, self.ttl_ms)


def build_alert(candidate: matches_pb2.MatchCandidate, state: PassState, crop: common_pb2.Crop) -> alerts_pb2.Alert:
    x1, y1, x2, y2 = state.best_box
    return alerts_pb2.Alert(
        alert_id=state.alert_id,
        subject_id=candidate.subject_id,
        subject_category=candidate.subject_category,
        watchlist_id=candidate.watchlist_id,
        deployment_id=candidate.frame.deployment_id,
        camera_id=candidate.frame.camera_id,
        zone=candidate.frame.zone,
        best_score=state.best_score,
        threshold=candidate.threshold,
        match_count=state.match_count,
        best_observation_id=state.best_observation_id,
        best_box=common_pb2.BoundingBox(x1=x1, y1=y1, x2=x2, y2=y2),
        first_seen_unix_ns=state.first_seen_ns,
        last_seen_unix_ns=state.last_seen_ns,
        capture_unix_ns=candidate.frame.capture_unix_ns,
        alert_unix_ns=time.time_ns(),
        live_crop=crop,
        watchlist_image=candidate.watchlist_image,
    )


class AlertWorker(RedisUser, KafkaWorker):
    input_type = matches_pb2.MatchCandidate

    def __init__(self, ctx: ServiceContext, settings: AlertsSettings) -> None:
        super().__init__(ctx, input_topic=settings.alerts.matches_topic, group_id=settings.alerts.group_id)
        self.redis_settings = settings.redis
        self.options = settings.alerts
        self.hub = AlertHub(settings.alerts.stream_queue)
        self.redis: Any = None
        self.aggregator: PassAggregator | None = None
        m = ctx.metrics
        self.alerts_total = m.counter("alerts_total", "alerts raised (one per subject per camera per pass)", ("zone",))
        self.frame_to_alert = m.histogram("frame_to_alert_seconds", "from the frame's capture to the alert's emission")
        self.stage_latency = m.histogram("stage_latency_seconds", "time spent in a pipeline stage", ("stage",))
        ctx.add_dependency("redis", self.check_redis)
        ctx.grpc.add(
            alerts_pb2_grpc.add_AlertServiceServicer_to_server,
            AlertStreamServicer(self.hub, ctx.stop),
            alerts_pb2.DESCRIPTOR.services_by_name["AlertService"].full_name,
        )

    async def connect(self) -> None:
        if self.redis is None:
            self.redis = await clients.connect_redis(self.redis_settings)
            self.aggregator = PassAggregator(RedisPassStore(self.redis), self.options)
        await super().connect()

    async def close(self) -> None:
        await super().close()
        await self.close_redis()

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        return await retry_until_up("redis", call, self.ctx.stop, on_down=self.ctx.refresh_health,
                                    max_backoff_s=self.options.retry_max_backoff_s)

    async def handle(self, record: RecordLike, out: Outbox) -> None:
        started = time.perf_counter()
        candidate = decode(record, matches_pb2.MatchCandidate, max_bytes=self.kafka.max_request_bytes)
        aggregator = self.aggregator
        assert aggregator is not None
        alert = await self._retry(lambda: aggregator.on_match(candidate))
        if alert is not None:
            await out.send(self.options.alerts_topic, alert.SerializeToString(), key=record_key(alert.alert_id),
                           headers=make_headers(alert, self.ctx.name))
            await out.flush()  # acknowledged by the broker before anyone is told
            await self._retry(lambda: aggregator.confirm(alert))
            self.hub.publish(alert)
            self.alerts_total.labels(alert.zone).inc()
            self.frame_to_alert.observe(max(0.0, (alert.alert_unix_ns - alert.capture_unix_ns) / 1e9))
            log.info("alert", extra={"alert_id": alert.alert_id, "subject_id": alert.subject_id,
                                     "camera_id": alert.camera_id, "zone": alert.zone,
                                     "score": round(alert.best_score, 4), "observation_id": alert.best_observation_id})
        self.stage_latency.labels("alert").observe(time.perf_counter() - started)
