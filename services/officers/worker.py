"""The officers service's worker: the alert router (a consumer of ``lfr.alerts.v1``), the escalation
ticker, the retention purge, and the connections and state the API (:mod:`.api`) calls into.

- Availability: :mod:`services.officers.state` (Redis, atomic per officer; read with
  :mod:`services.common.availability`); ``lfr_officers_available{zone}`` is exported every second.
- Routing: a consumer group on ``lfr.alerts.v1`` (the alerts service's output,
  keyed by alert id). Each alert is stored once (``lfr:alert:<id>``, created by
  one atomic script: a redelivered alert is recognised) and routed to the
  nearest available officers of the camera's zone (:mod:`.routing`); the
  offset is committed after that, so a crash re-routes at most an alert whose
  routing did not complete (and routing is guarded by the alert's level).
- Escalation: every ``tick_s`` the due ack deadlines (``lfr:alerts:deadlines``)
  are escalated: next officers, then the zone's supervisors, then UNREACHABLE
  (``lfr_alerts_unreachable_total{zone}`` + audit). Each step is a WATCH/MULTI
  transaction on the alert, guarded by its deadline, so replicas and restarts
  never escalate twice.
- Retention: an alert (and its crops, and the pass record's crop) is deleted
  ``alert_retention_s`` after it was raised, unless confirmed into a case
  (``case_ref``): then it is kept and marked. Audited (``alert.purge``).
- Notification relay: the devices' streams (:mod:`.devices`) wake on Redis notifications this worker listens to.

Every decision is audited (hash-chained ``lfr.audit.v1``); logs carry ids only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from lfr.v1 import alerts_pb2, officers_pb2

from services.common import clients
from services.common.audit import AuditWriter
from services.common.availability import available_officers, available_supervisors, known_zones, now_ms, zone_counts
from services.common.cameras import CameraFile
from services.common.kafka import Outbox, RecordLike, decode
from services.common.pass_keys import pass_key
from services.common.retry import retry_until_up
from services.common.service import ServiceContext
from services.common.worker import AuditUser, KafkaWorker, RedisUser
from services.officers import routing
from services.officers.alert_store import (
    DEADLINES, PENDING, RETENTION, UNREACHABLE, AlertRecord, AlertStore, Writes,
)
from services.officers.audit_actions import ALERT_ESCALATE, ALERT_PURGE, ALERT_ROUTE, ALERT_UNREACHABLE
from services.officers.config import OfficersSettings
from services.officers.devices import DeviceHub
from services.officers.roster import Roster
from services.officers.state import OfficerStore

log = logging.getLogger(__name__)
T = TypeVar("T")

METRICS_EVERY_S = 1.0


class NotReady(ConnectionError):
    pass


class Officers(RedisUser, AuditUser, KafkaWorker):
    """The service's state, connections and loops (the API's servicers, :mod:`.api`, call into it)."""

    input_type = alerts_pb2.Alert

    def __init__(self, ctx: ServiceContext, settings: OfficersSettings) -> None:
        super().__init__(ctx, input_topic=settings.officers.alerts_topic, group_id=settings.officers.group_id)
        self.options = settings.officers
        self.redis_settings = settings.redis
        # camera locations for nearest-first routing; without the file: routing without camera locations
        self.cameras = CameraFile(settings.officers.cameras_file, "LFR_OFFICERS__CAMERAS_FILE", missing_ok=True)
        self.cameras.current()  # an invalid registry stops the start
        self.redis: Any = None
        self.officers: OfficerStore | None = None
        self.alerts: AlertStore | None = None
        self.roster_store: Roster | None = None
        self.audit: AuditWriter | None = None
        self.hub = DeviceHub()
        self.ttl_ms = int(self.options.heartbeat_ttl_s * 1000)
        m = ctx.metrics
        self.officers_available = m.gauge("officers_available", "available officers on duty per zone", ("zone",))
        self.escalated = m.counter("alerts_escalated_total", "alert escalations (next officers or supervisor)",
                                   ("zone",))
        self.unreachable = m.counter("alerts_unreachable_total", "alerts nobody could be reached for", ("zone",))
        self.audit_records = m.counter("audit_records_total", "audit records appended", ("action",))
        ctx.add_dependency("redis", self.check_redis)

    # --- connections -----------------------------------------------------------------

    async def connect(self) -> None:
        if self.redis is None:
            self.redis = await clients.connect_redis(self.redis_settings)
            self.officers = OfficerStore(self.redis, self.options.heartbeat_ttl_s)
            self.alerts = AlertStore(self.redis)
            self.roster_store = Roster(self.redis)
        await self.start_audit(self.options.audit_topic, self.redis,
                               on_record=lambda action: self.audit_records.labels(action).inc())
        await super().connect()

    async def close(self) -> None:
        await super().close()
        await self.close_audit()
        await self.close_redis()

    def ready(self) -> tuple[OfficerStore, AlertStore, AuditWriter]:
        if self.officers is None or self.alerts is None or self.audit is None:
            raise NotReady("officers service is still connecting")
        return self.officers, self.alerts, self.audit

    def roster(self) -> Roster:
        if self.roster_store is None:
            raise NotReady("officers service is still connecting")
        return self.roster_store

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        return await retry_until_up("redis", call, self.ctx.stop, on_down=self.ctx.refresh_health,
                                    max_backoff_s=self.options.retry_max_backoff_s)

    # --- work: the router (consumer loop), the ticker, the notification relay ---------------

    async def work(self) -> None:
        await asyncio.gather(super().work(), self._ticker(), self.hub.listen(self.redis, self.ctx.stop))

    async def handle(self, record: RecordLike, out: Outbox) -> None:
        alert = decode(record, alerts_pb2.Alert, max_bytes=self.kafka.max_request_bytes)
        if not alert.alert_id or not alert.zone:
            from lfr.v1 import dlq_pb2

            from services.common.kafka import PoisonMessage

            raise PoisonMessage(dlq_pb2.DEAD_LETTER_REASON_INVALID_FIELD, "alert_id and zone are required")
        await self._retry(lambda: self.admit(alert, bytes(record.value or b"")))

    async def admit(self, alert: alerts_pb2.Alert, data: bytes) -> None:
        """Store a new alert and route it; a redelivered one is routed only if it never was."""
        _, store, _ = self.ready()
        at = now_ms()
        raised_ms = alert.alert_unix_ns // 1_000_000 or at
        rec = AlertRecord(
            alert_id=alert.alert_id, zone=alert.zone, camera_id=alert.camera_id, deployment_id=alert.deployment_id,
            subject_id=alert.subject_id, state=PENDING, level=-1,
            two_person=self.options.two_person(alert.deployment_id), created_ms=at,
            retention_ms=raised_ms + int(self.options.alert_retention_s * 1000),
        )
        if not await store.create(data, rec):
            existing = await store.get(alert.alert_id)
            if existing is None or existing.level >= 0:
                log.info("duplicate alert ignored", extra={"alert_id": alert.alert_id})
                return
        await self.route(alert.alert_id, first=True)

    async def route(self, alert_id: str, *, first: bool) -> None:
        """Send the alert to its next wave (first: level 0; else an escalation due now)."""
        _, store, audit = self.ready()
        wave_box: list[routing.Wave] = []

        async def change(rec: AlertRecord) -> tuple[AlertRecord, Writes]:
            wave_box.clear()
            at = now_ms()
            if first and rec.level != -1:
                return rec, Writes()
            if not first and (rec.state != PENDING or rec.deadline_ms > at or rec.level < 0):
                return rec, Writes(deadline_ms=0 if rec.state != PENDING else None)
            cam = self.cameras.get(rec.camera_id)
            ranked = routing.rank(await available_officers(self.redis, rec.zone, at),
                                  cam.lat if cam else None, cam.lon if cam else None)
            supervisors = await available_supervisors(self.redis, rec.zone, at)
            wave = routing.next_wave(ranked, supervisors, self.options.supervisor_devices.get(rec.zone),
                                     set(rec.notified), level=rec.level + 1, first_wave=self.options.first_wave,
                                     escalation_wave=self.options.escalation_wave,
                                     supervisor_notified=rec.supervisor_notified)
            wave_box.append(wave)
            rec.level += 1
            if wave.kind == routing.UNREACHABLE:
                rec.state = UNREACHABLE
                rec.deadline_ms = 0
                return rec, Writes(deadline_ms=0)
            rec.notified += [t.officer_id for t in wave.targets]
            rec.devices += [t.device_id for t in wave.targets if t.device_id not in rec.devices]
            rec.supervisor_notified = rec.supervisor_notified or wave.kind == routing.SUPERVISOR
            rec.deadline_ms = at + int(self.options.ack_timeout_s * 1000)
            return rec, Writes(deadline_ms=rec.deadline_ms, inbox=tuple(t.device_id for t in wave.targets))

        try:
            _, new = await store.update(alert_id, change)
        except KeyError:
            await self.redis.zrem(DEADLINES, alert_id)
            return
        if not wave_box:
            return
        wave = wave_box[0]
        for t in wave.targets:
            self.hub.notify(t.device_id)
        officers = [t.officer_id for t in wave.targets]
        details = {"level": str(new.level), "kind": wave.kind, "zone": new.zone,
                   "officers": ",".join(officers)[:500]}
        if wave.kind == routing.UNREACHABLE:
            self.unreachable.labels(new.zone).inc()
            log.warning("alert unreachable", extra={"alert_id": alert_id, "zone": new.zone, "level": new.level})
            await audit.record(ALERT_UNREACHABLE, actor=self.ctx.name, deployment_id=new.deployment_id,
                               subject_ids=[alert_id, new.camera_id], details=details)
            return
        if new.level > 0:
            self.escalated.labels(new.zone).inc()
        log.info("alert routed", extra={"alert_id": alert_id, "zone": new.zone, "level": new.level,
                                        "kind": wave.kind, "officers": officers})
        await audit.record(ALERT_ROUTE if new.level == 0 else ALERT_ESCALATE, actor=self.ctx.name,
                           deployment_id=new.deployment_id, subject_ids=[alert_id, new.camera_id], details=details)

    async def _ticker(self) -> None:
        last_metrics = 0.0
        while not self.ctx.stop.is_set():
            try:
                await self.tick()
                if time.monotonic() - last_metrics >= METRICS_EVERY_S:
                    await self.export_availability()
                    last_metrics = time.monotonic()
            except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                log.warning("officers tick failed; retrying", extra={"error": repr(e)})
                self.ctx.refresh_health()
            except Exception as e:  # redis-py errors (ConnectionError, TimeoutError) are their own types
                log.warning("officers tick failed; retrying", extra={"error": f"{type(e).__name__}: {e}"})
                self.ctx.refresh_health()
            try:
                await asyncio.wait_for(self.ctx.stop.wait(), timeout=self.options.tick_s)
            except asyncio.TimeoutError:
                pass

    async def tick(self) -> None:
        """Escalate due alerts, purge expired ones."""
        _, store, _ = self.ready()
        due = await self.redis.zrangebyscore(DEADLINES, "-inf", now_ms(), start=0, num=100)
        for member in due:
            await self.route(member.decode() if isinstance(member, bytes) else str(member), first=False)
        for alert_id in await store.claim_due(RETENTION):
            await self.purge(alert_id)

    async def purge(self, alert_id: str) -> None:
        _, store, audit = self.ready()
        rec = await store.get(alert_id)
        if rec is None:
            return
        if rec.kept:
            return  # confirmed into a case after it was claimed: kept
        await store.purge(rec, pass_key(rec.camera_id, rec.subject_id) if rec.camera_id and rec.subject_id else None)
        log.info("alert purged", extra={"alert_id": alert_id, "state": rec.state})
        await audit.record(ALERT_PURGE, actor=self.ctx.name, deployment_id=rec.deployment_id,
                           subject_ids=[alert_id], details={"state": officers_pb2.AlertState.Name(rec.state),
                                                            "reason": "retention"})

    async def export_availability(self) -> None:
        zones = await known_zones(self.redis) | {c.zone for c in self.cameras.cameras}
        for zone, count in (await zone_counts(self.redis, zones)).items():
            self.officers_available.labels(zone).set(count)
