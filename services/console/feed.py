"""The live alert feed: one ``AlertService.StreamAlerts`` subscription, fanned out
to the browsers over server-sent events.

Held in memory only (never on disk), at most ``max_alerts``: each alert with its
live crop and the matched watchlist image, so that the page can show them side
by side. An alert's images are dropped, and an ``expire`` event removes them
from every page, when its retention ends (the officers service's
``retention_until`` from ``GetAlert``; the configured retention until it
answers) or when the officers service no longer knows the alert (purged).
Only alerts exist here: nothing of a non-match ever reaches the console.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import time
from typing import Any

import grpc

from lfr.v1 import alerts_pb2, common_pb2, officers_pb2

from services.console.config import ConsoleOptions
from services.console.platform import Platform
from services.console.roles import may_view
from services.console.sessions import Session

log = logging.getLogger(__name__)
QUEUE_SIZE = 256
ENRICH_FOR_S = 5.0  # the officers service stores an alert a moment after the stream delivers it


def _state_name(state: int) -> str:
    return officers_pb2.AlertState.Name(state).removeprefix("ALERT_STATE_").lower() if state else "new"


def _outcome_name(outcome: int) -> str:
    return officers_pb2.AdjudicationOutcome.Name(outcome).removeprefix("ADJUDICATION_OUTCOME_").lower() \
        if outcome else ""


@dataclasses.dataclass
class LiveAlert:
    alert_id: str
    subject_id: str
    category: str
    watchlist_id: str
    deployment_id: str
    camera_id: str
    zone: str
    score: float
    threshold: float
    match_count: int
    capture_ms: int
    alert_ms: int
    received_ms: int
    retention_until_ms: int
    crop: bytes | None
    watchlist_jpeg: bytes | None
    state: str = "new"
    outcome: str = ""
    two_person: bool = False
    confirmed_by: tuple[str, ...] = ()
    acknowledged_by: str = ""

    @classmethod
    def of(cls, a: alerts_pb2.Alert, retention_s: float) -> "LiveAlert":
        plain = a.live_crop.protection in (common_pb2.PAYLOAD_PROTECTION_UNSPECIFIED,
                                            common_pb2.PAYLOAD_PROTECTION_PLAINTEXT)
        raised_ms = (a.alert_unix_ns or time.time_ns()) // 1_000_000
        return cls(
            alert_id=a.alert_id, subject_id=a.subject_id,
            category=common_pb2.SubjectCategory.Name(a.subject_category).removeprefix("SUBJECT_CATEGORY_").lower(),
            watchlist_id=a.watchlist_id, deployment_id=a.deployment_id, camera_id=a.camera_id, zone=a.zone,
            score=round(float(a.best_score), 4), threshold=round(float(a.threshold), 4),
            match_count=int(a.match_count), capture_ms=a.capture_unix_ns // 1_000_000, alert_ms=raised_ms,
            received_ms=int(time.time() * 1000), retention_until_ms=raised_ms + int(retention_s * 1000),
            crop=bytes(a.live_crop.jpeg) if plain and a.live_crop.jpeg else None,
            watchlist_jpeg=bytes(a.watchlist_image.jpeg) if a.watchlist_image.jpeg else None,
        )

    def apply_status(self, st: officers_pb2.AlertStatus) -> None:
        self.state = _state_name(st.state)
        self.outcome = _outcome_name(st.outcome)
        self.two_person = st.two_person_confirmation
        self.confirmed_by = tuple(st.confirmed_by)
        self.acknowledged_by = st.acknowledged_by
        if st.retention_until_unix_ns and not st.kept:
            self.retention_until_ms = st.retention_until_unix_ns // 1_000_000
        if st.kept:
            self.retention_until_ms = 0  # confirmed into a case: kept (0 = no end)

    def public(self) -> dict[str, Any]:
        """What the page gets (no bytes: images are fetched with Cache-Control: no-store)."""
        d = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("crop", "watchlist_jpeg")}
        d["confirmed_by"] = list(self.confirmed_by)
        d["has_crop"] = self.crop is not None
        d["has_watchlist_image"] = self.watchlist_jpeg is not None
        return d

    @property
    def open(self) -> bool:
        return self.state not in ("adjudicated",)


def visible(session: Session, alert: LiveAlert) -> bool:
    return may_view(session.roles, "alerts") and (not session.deployments or alert.deployment_id in session.deployments)


@dataclasses.dataclass(eq=False)
class Subscriber:
    session: Session
    queue: asyncio.Queue[tuple[str, str]] = dataclasses.field(
        default_factory=lambda: asyncio.Queue(maxsize=QUEUE_SIZE))

    def put(self, event: str, data: str) -> None:
        if self.queue.full():  # a stalled page loses its oldest events, never blocks the feed
            self.queue.get_nowait()
        self.queue.put_nowait((event, data))


class AlertFeed:
    def __init__(self, platform: Platform, options: ConsoleOptions, metrics: Any = None) -> None:
        self.platform = platform
        self.options = options
        self.alerts: collections.OrderedDict[str, LiveAlert] = collections.OrderedDict()
        self.subscribers: set[Subscriber] = set()
        self.connected = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._received = metrics.counter("console_alerts_received_total", "alerts received from StreamAlerts") \
            if metrics else None
        self._clients = metrics.gauge("console_sse_clients", "browsers on the live alert stream") if metrics else None

    # --- subscribers -----------------------------------------------------------------

    def subscribe(self, session: Session) -> Subscriber:
        sub = Subscriber(session)
        self.subscribers.add(sub)
        if self._clients is not None:
            self._clients.set(len(self.subscribers))
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)
        if self._clients is not None:
            self._clients.set(len(self.subscribers))

    def snapshot(self, session: Session) -> list[LiveAlert]:
        return [a for a in self.alerts.values() if visible(session, a)]

    def _publish(self, event: str, alert: LiveAlert | None, data: dict[str, Any]) -> None:
        text = json.dumps(data, separators=(",", ":"))
        for sub in list(self.subscribers):
            if alert is None or visible(sub.session, alert):
                sub.put(event, text)

    def _set_connected(self, up: bool) -> None:
        if up != self.connected:
            self.connected = up
            self._publish("status", None, {"connected": up})

    # --- the stream --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Subscribe, reconnect with backoff; plus the retention/state refresher."""
        refresher = asyncio.create_task(self._refresher(stop), name="console-refresher")
        delay = 0.25
        try:
            while not stop.is_set():
                call = self.platform.stream_alerts()
                reader = asyncio.create_task(self._read(call), name="console-stream")
                stopper = asyncio.create_task(stop.wait())
                done, _ = await asyncio.wait([reader, stopper], return_when=asyncio.FIRST_COMPLETED)
                stopper.cancel()
                if reader not in done:
                    call.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
                    break
                err = reader.exception()
                self._set_connected(False)
                if err is not None and not (isinstance(err, grpc.aio.AioRpcError)
                                            and err.code() in (grpc.StatusCode.UNAVAILABLE,
                                                               grpc.StatusCode.CANCELLED)):
                    log.warning("alert stream failed", extra={"error": f"{type(err).__name__}: {err}"})
                if reader.result() if err is None else False:
                    delay = 0.25  # it ran a while: reconnect quickly
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except asyncio.TimeoutError:
                    pass
                delay = min(delay * 2, 5.0)
        finally:
            refresher.cancel()
            for t in list(self._tasks):
                t.cancel()
            await asyncio.gather(refresher, *self._tasks, return_exceptions=True)

    async def _read(self, call: Any) -> bool:
        async def mark() -> None:  # the server sends no metadata before the first alert: alive after 1 s is up
            await asyncio.sleep(1.0)
            if not call.done():
                self._set_connected(True)

        marker = asyncio.create_task(mark())
        got = False
        try:
            async for alert in call:
                got = True
                self._set_connected(True)
                self.add(alert)
        finally:
            marker.cancel()
        return got

    def add(self, alert: alerts_pb2.Alert) -> LiveAlert:
        live = LiveAlert.of(alert, self.options.alert_retention_s)
        known = self.alerts.pop(alert.alert_id, None)
        if known is not None:  # re-emitted (e.g. after a restart): keep what we learned
            live.state, live.outcome, live.two_person = known.state, known.outcome, known.two_person
            live.confirmed_by, live.retention_until_ms = known.confirmed_by, known.retention_until_ms
        self.alerts[alert.alert_id] = live
        while len(self.alerts) > self.options.max_alerts:
            _, old = self.alerts.popitem(last=False)
            self._publish("expire", old, {"alert_id": old.alert_id, "reason": "evicted"})
        if self._received is not None:
            self._received.inc()
        log.info("alert received", extra={"alert_id": live.alert_id, "camera_id": live.camera_id,
                                          "score": live.score})
        self._publish("alert", live, live.public())
        self._spawn(self._enrich(live.alert_id))
        return live

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _enrich(self, alert_id: str) -> None:
        deadline = time.monotonic() + ENRICH_FOR_S
        while time.monotonic() < deadline:
            if await self.refresh(alert_id, purge_missing=False):
                return
            await asyncio.sleep(0.3)

    async def refresh(self, alert_id: str, purge_missing: bool = True) -> bool:
        """Re-read one alert's adjudication state; True when the officers service answered."""
        live = self.alerts.get(alert_id)
        if live is None:
            return True
        try:
            st = await self.platform.get_alert(alert_id)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND and purge_missing:
                self.expire(alert_id, "purged")
                return True
            return False
        self.update(alert_id, st)
        return True

    def update(self, alert_id: str, st: officers_pb2.AlertStatus) -> None:
        live = self.alerts.get(alert_id)
        if live is None:
            return
        before = live.public()
        live.apply_status(st)
        if live.public() != before:
            self._publish("update", live, live.public())

    def expire(self, alert_id: str, reason: str) -> None:
        live = self.alerts.pop(alert_id, None)
        if live is None:
            return
        live.crop = live.watchlist_jpeg = None
        log.info("alert left the console", extra={"alert_id": alert_id, "reason": reason})
        self._publish("expire", live, {"alert_id": alert_id, "reason": reason})

    async def _refresher(self, stop: asyncio.Event) -> None:
        last_refresh = 0.0
        while not stop.is_set():
            now_ms = time.time() * 1000
            for a in list(self.alerts.values()):
                if a.retention_until_ms and a.retention_until_ms <= now_ms:
                    self.expire(a.alert_id, "retention")
            if time.monotonic() - last_refresh >= self.options.refresh_s:
                last_refresh = time.monotonic()
                for a in [a for a in self.alerts.values() if a.open][-50:]:
                    await self.refresh(a.alert_id, purge_missing=a.state != "new")
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.5)
            except asyncio.TimeoutError:
                pass
