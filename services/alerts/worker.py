"""Alerts: MatchCandidate -> per-track aggregation -> Alert on lfr.alerts.v1 and
on the ``AlertService.StreamAlerts`` server-stream.

Foundation state: consumes lfr.matches.v1 in group ``lfr-alerts`` through the
commit-after-processing loop, dead-letters records that are not MatchCandidate
protobufs, serves StreamAlerts from :class:`AlertHub`, and keeps health SERVING
while Kafka and Redis answer. Aggregation into alerts is the pipeline issue's
work (``handle`` then calls ``hub.publish``)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import grpc
from lfr.v1 import alerts_pb2, alerts_pb2_grpc, matches_pb2

from services.alerts.config import AlertsSettings
from services.common import clients
from services.common.kafka import MATCHES_TOPIC
from services.common.service import ServiceContext
from services.common.worker import KafkaWorker


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

    async def stream(self, request: alerts_pb2.StreamAlertsRequest, stop: asyncio.Event) -> AsyncIterator[alerts_pb2.Alert]:
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


class AlertWorker(KafkaWorker):
    input_topic = MATCHES_TOPIC
    input_type = matches_pb2.MatchCandidate

    def __init__(self, ctx: ServiceContext, settings: AlertsSettings) -> None:
        super().__init__(ctx)
        self.redis_settings = settings.redis
        self.options = settings.alerts
        self.hub = AlertHub(settings.alerts.stream_queue)
        self.redis: Any = None
        ctx.add_dependency("redis", self.check_redis)
        ctx.grpc.add(
            alerts_pb2_grpc.add_AlertServiceServicer_to_server,
            AlertStreamServicer(self.hub, ctx.stop),
            alerts_pb2.DESCRIPTOR.services_by_name["AlertService"].full_name,
        )

    async def connect(self) -> None:
        if self.redis is None:
            self.redis = await clients.connect_redis(self.redis_settings)
        await super().connect()

    async def check_redis(self) -> None:
        if self.redis is None:
            raise ConnectionError("not connected")
        await clients.check_redis(self.redis)

    async def close(self) -> None:
        await super().close()
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
