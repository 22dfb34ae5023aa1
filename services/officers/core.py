"""The officers service: availability (OfficerService), alert routing and
escalation, device delivery and adjudication (DeviceService), retention purge.

- Availability: :mod:`services.officers.state` (Redis, atomic per officer).
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
- Adjudication: Acknowledge stops escalation; Adjudicate records the outcome,
  with the optional two-person rule (a confirmation needs a second, different
  officer: state AWAITING_SECOND until then). Final outcomes count
  ``lfr_alert_outcomes_total{outcome}`` (live precision is the recording rule
  ``lfr:alert_precision:ratio24h``).
- Retention: an alert (and its crops, and the pass record's crop) is deleted
  ``alert_retention_s`` after it was raised, unless confirmed into a case
  (``case_ref``): then it is kept and marked. Audited (``alert.purge``).

Every decision is audited (hash-chained ``lfr.audit.v1``); logs carry ids only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from lfr.v1 import alerts_pb2, officers_pb2, officers_pb2_grpc

from services.alerts.passes import pass_key
from services.common import clients
from services.common.audit import AuditWriter
from services.common.cameras import CameraRegistry
from services.common.kafka import Outbox, RecordLike, decode
from services.common.retry import retry_until_up
from services.common.service import ServiceContext
from services.common.worker import KafkaWorker, RedisUser
from services.officers import routing
from services.officers.alert_store import (
    ACKNOWLEDGED, ADJUDICATED, AWAITING_SECOND, CONFIRMED, DEADLINES, NO_ACTION, OUTCOME_NAMES, PENDING, REJECTED,
    RETENTION, UNREACHABLE, AlertRecord, AlertStore, TransitionError, Writes,
)
from services.officers.config import OfficersSettings
from services.officers.devices import DeviceHub, stream_device
from services.officers.state import (
    AVAILABLE, BUSY, OFF_DUTY, Location, Officer, OfficerStore, StateError, available_officers, check_id,
    available_supervisors, go_on_duty, heartbeat, known_zones, now_ms, on_duty_officers, set_status, zone_counts,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

STATUS_TO_PB = {AVAILABLE: officers_pb2.OFFICER_STATUS_AVAILABLE, BUSY: officers_pb2.OFFICER_STATUS_BUSY,
                OFF_DUTY: officers_pb2.OFFICER_STATUS_OFF_DUTY}
PB_TO_STATUS = {v: k for k, v in STATUS_TO_PB.items()}

# audit actions of this service
OFFICER_ON_DUTY = "officer.on_duty"
OFFICER_OFF_DUTY = "officer.off_duty"
OFFICER_STATUS = "officer.status"
ALERT_ROUTE = "alert.route"
ALERT_ESCALATE = "alert.escalate"
ALERT_UNREACHABLE = "alert.unreachable"
ALERT_ACKNOWLEDGE = "alert.acknowledge"
ALERT_KEEP = "alert.keep"
ALERT_PURGE = "alert.purge"
METRICS_EVERY_S = 1.0


def officer_pb(o: Officer) -> officers_pb2.OfficerState:
    msg = officers_pb2.OfficerState(
        officer_id=o.officer_id, zones=list(o.zones), device_id=o.device_id, status=STATUS_TO_PB[o.status],
        last_heartbeat_unix_ns=o.heartbeat_ms * 1_000_000, expires_unix_ns=o.expires_ms * 1_000_000,
        supervisor=o.supervisor,
    )
    if o.location is not None:
        msg.location.CopyFrom(officers_pb2.GeoLocation(latitude=o.location.lat, longitude=o.location.lon,
                                                       accuracy_m=o.location.accuracy_m))
    return msg


def location_of(msg: Any, has: bool) -> Location | None:
    if not has:
        return None
    return Location(msg.latitude, msg.longitude, msg.accuracy_m)


class NotReady(ConnectionError):
    pass


class Officers(RedisUser, KafkaWorker):
    """The service's state, connections and loops (servicers below call into it)."""

    input_type = alerts_pb2.Alert

    def __init__(self, ctx: ServiceContext, settings: OfficersSettings) -> None:
        super().__init__(ctx)
        self.options = settings.officers
        self.redis_settings = settings.redis
        self.input_topic = settings.officers.alerts_topic  # type: ignore[misc]  # per instance (tests)
        self.cameras = self._load_cameras()
        self.redis: Any = None
        self.officers: OfficerStore | None = None
        self.alerts: AlertStore | None = None
        self.audit: AuditWriter | None = None
        self.hub = DeviceHub()
        self.ttl_ms = int(self.options.heartbeat_ttl_s * 1000)
        m = ctx.metrics
        self.officers_available = m.gauge("officers_available", "available officers on duty per zone", ("zone",))
        self.outcomes = m.counter("alert_outcomes_total", "final adjudication outcomes", ("outcome",))
        self.escalated = m.counter("alerts_escalated_total", "alert escalations (next officers or supervisor)", ("zone",))
        self.unreachable = m.counter("alerts_unreachable_total", "alerts nobody could be reached for", ("zone",))
        self.audit_records = m.counter("audit_records_total", "audit records appended", ("action",))
        ctx.add_dependency("redis", self.check_redis)
        ctx.grpc.add(officers_pb2_grpc.add_OfficerServiceServicer_to_server, OfficerServicer(self),
                     officers_pb2.DESCRIPTOR.services_by_name["OfficerService"].full_name)
        ctx.grpc.add(officers_pb2_grpc.add_DeviceServiceServicer_to_server, DeviceServicer(self),
                     officers_pb2.DESCRIPTOR.services_by_name["DeviceService"].full_name)

    def _load_cameras(self) -> CameraRegistry:
        try:
            return CameraRegistry.load(self.options.cameras_file)
        except FileNotFoundError:
            log.warning("no camera registry: routing without camera locations",
                        extra={"cameras_file": str(self.options.cameras_file)})
            return CameraRegistry()

    @property
    def group_id(self) -> str:
        return self.options.group_id

    # --- connections -----------------------------------------------------------------

    async def connect(self) -> None:
        if self.redis is None:
            self.redis = await clients.connect_redis(self.redis_settings)
            self.officers = OfficerStore(self.redis, self.options.heartbeat_ttl_s)
            self.alerts = AlertStore(self.redis)
        if self.audit is None:
            audit = AuditWriter.from_settings(self.kafka, self.ctx.name, self.ctx.settings.audit,
                                              topic=self.options.audit_topic, redis=self.redis,
                                              on_record=lambda action: self.audit_records.labels(action).inc())
            try:
                await audit.start()
            except BaseException:
                await audit.close()
                raise
            self.audit = audit
        await super().connect()

    async def close(self) -> None:
        await super().close()
        if self.audit is not None:
            await self.audit.close()
            self.audit = None
        await self.close_redis()

    def ready(self) -> tuple[OfficerStore, AlertStore, AuditWriter]:
        if self.officers is None or self.alerts is None or self.audit is None:
            raise NotReady("officers service is still connecting")
        return self.officers, self.alerts, self.audit

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

    # --- adjudication --------------------------------------------------------------

    async def acknowledge(self, alert_id: str, officer_id: str, device_id: str) -> bool:
        _, store, audit = self.ready()

        def change(rec: AlertRecord) -> tuple[AlertRecord, Writes]:
            if rec.acked_by or rec.state == ADJUDICATED:
                return rec, Writes()
            rec.acked_by = officer_id
            if rec.state in (PENDING, UNREACHABLE):
                rec.state = ACKNOWLEDGED
            rec.deadline_ms = 0
            return rec, Writes(deadline_ms=0)

        old, new = await store.update(alert_id, change)
        first = not old.acked_by and new.acked_by == officer_id
        if first:
            await audit.record(ALERT_ACKNOWLEDGE, actor=officer_id, deployment_id=new.deployment_id,
                               subject_ids=[alert_id], details={"device": device_id[:200], "level": str(new.level)})
        return first

    async def adjudicate(self, req: officers_pb2.AdjudicateRequest) -> AlertRecord:
        _, store, audit = self.ready()
        outcome = req.outcome
        if outcome not in (CONFIRMED, REJECTED, NO_ACTION):
            raise TransitionError("outcome must be confirmed, rejected or no_action")
        if not req.officer_id:
            raise TransitionError("officer_id is required")

        def change(rec: AlertRecord) -> tuple[AlertRecord, Writes]:
            if rec.state == ADJUDICATED:
                raise TransitionError(f"alert already adjudicated ({OUTCOME_NAMES.get(rec.outcome, '?')})")
            rec.acked_by = rec.acked_by or req.officer_id
            if req.case_ref:
                rec.case_ref = req.case_ref
            if outcome == CONFIRMED:
                if req.officer_id in rec.confirmed:
                    raise TransitionError("two-person rule: the second confirmation must come from a different officer")
                rec.confirmed.append(req.officer_id)
                if rec.two_person and len(rec.confirmed) < 2:
                    rec.state = AWAITING_SECOND
                    return rec, Writes(deadline_ms=0)
            rec.state = ADJUDICATED
            rec.outcome = outcome
            rec.adjudicated_by = req.officer_id
            rec.kept = outcome == CONFIRMED and bool(rec.case_ref)
            return rec, Writes(deadline_ms=0, keep=rec.kept)

        _, new = await store.update(req.alert_id, change)
        name = OUTCOME_NAMES[outcome]
        details = {"outcome": name, "state": officers_pb2.AlertState.Name(new.state),
                   "two_person": "1" if new.two_person else "0"}
        if req.note:
            details["note"] = req.note[:500]
        if new.case_ref:
            details["case_ref"] = new.case_ref[:200]
        await audit.record("alert.adjudicate", actor=req.officer_id, deployment_id=new.deployment_id,
                           subject_ids=[req.alert_id], details=details)
        if new.state == ADJUDICATED:
            self.outcomes.labels(name).inc()
            if new.kept:
                await audit.record(ALERT_KEEP, actor=req.officer_id, deployment_id=new.deployment_id,
                                   subject_ids=[req.alert_id], details={"case_ref": new.case_ref[:200]})
        log.info("alert adjudicated", extra={"alert_id": req.alert_id, "officer_id": req.officer_id,
                                             "outcome": name, "state": int(new.state)})
        return new


async def _abort_on(context: grpc.aio.ServicerContext, call: Callable[[], Awaitable[T]]) -> T:
    """Map the service's errors to gRPC status codes."""
    try:
        return await call()
    except StateError as e:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
    except TransitionError as e:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
    except KeyError as e:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no such alert {e} (never raised, or purged)")
    except NotReady as e:
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
    raise AssertionError("unreachable")


class OfficerServicer(officers_pb2_grpc.OfficerServiceServicer):
    def __init__(self, svc: Officers) -> None:
        self.svc = svc

    async def GoOnDuty(self, request: officers_pb2.GoOnDutyRequest,  # noqa: N802
                       context: grpc.aio.ServicerContext) -> officers_pb2.GoOnDutyResponse:
        async def call() -> officers_pb2.GoOnDutyResponse:
            store, _, audit = self.svc.ready()
            loc = location_of(request.location, request.HasField("location"))
            _, new = await store.update(request.officer_id, lambda old, at: go_on_duty(
                request.officer_id, list(request.zones), request.device_id, at_ms=at, ttl_ms=self.svc.ttl_ms,
                location=loc, supervisor=request.supervisor))
            assert new is not None
            await audit.record(OFFICER_ON_DUTY, actor=request.officer_id, subject_ids=[request.officer_id],
                               details={"zones": ",".join(new.zones)[:500], "device": new.device_id[:200],
                                        "supervisor": "1" if new.supervisor else "0"})
            log.info("officer on duty", extra={"officer_id": new.officer_id, "zones": list(new.zones)})
            return officers_pb2.GoOnDutyResponse(state=officer_pb(new),
                                                 heartbeat_ttl_s=int(self.svc.options.heartbeat_ttl_s))

        return await _abort_on(context, call)

    async def Heartbeat(self, request: officers_pb2.HeartbeatRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> officers_pb2.HeartbeatResponse:
        async def call() -> officers_pb2.HeartbeatResponse:
            store, _, _ = self.svc.ready()
            loc = location_of(request.location, request.HasField("location"))
            _, new = await store.update(request.officer_id, lambda old, at: heartbeat(
                old, at_ms=at, ttl_ms=self.svc.ttl_ms, location=loc, zones=list(request.zones)))
            assert new is not None
            return officers_pb2.HeartbeatResponse(state=officer_pb(new),
                                                  heartbeat_ttl_s=int(self.svc.options.heartbeat_ttl_s))

        return await _abort_on(context, call)

    async def SetStatus(self, request: officers_pb2.SetStatusRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> officers_pb2.SetStatusResponse:
        async def call() -> officers_pb2.SetStatusResponse:
            store, _, audit = self.svc.ready()
            status = PB_TO_STATUS.get(request.status)
            if status is None:
                raise StateError("status must be AVAILABLE, BUSY or OFF_DUTY")
            _, new = await store.update(request.officer_id, lambda old, at: set_status(
                old, status, at_ms=at, ttl_ms=self.svc.ttl_ms))
            await audit.record(OFFICER_OFF_DUTY if new is None else OFFICER_STATUS, actor=request.officer_id,
                               subject_ids=[request.officer_id], details={"status": status})
            if new is None:
                return officers_pb2.SetStatusResponse(state=officers_pb2.OfficerState(
                    officer_id=request.officer_id, status=officers_pb2.OFFICER_STATUS_OFF_DUTY))
            return officers_pb2.SetStatusResponse(state=officer_pb(new))

        return await _abort_on(context, call)

    async def GoOffDuty(self, request: officers_pb2.GoOffDutyRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> officers_pb2.GoOffDutyResponse:
        async def call() -> officers_pb2.GoOffDutyResponse:
            store, _, audit = self.svc.ready()
            old, _ = await store.update(request.officer_id, lambda old, at: set_status(
                old, OFF_DUTY, at_ms=at, ttl_ms=self.svc.ttl_ms))
            if old is not None:
                await audit.record(OFFICER_OFF_DUTY, actor=request.officer_id, subject_ids=[request.officer_id])
                log.info("officer off duty", extra={"officer_id": request.officer_id})
            return officers_pb2.GoOffDutyResponse()

        return await _abort_on(context, call)

    async def ListOfficers(self, request: officers_pb2.ListOfficersRequest,  # noqa: N802
                           context: grpc.aio.ServicerContext) -> officers_pb2.ListOfficersResponse:
        async def call() -> officers_pb2.ListOfficersResponse:
            self.svc.ready()
            officers = await on_duty_officers(self.svc.redis, request.zone)
            return officers_pb2.ListOfficersResponse(officers=[officer_pb(o) for o in officers])

        return await _abort_on(context, call)


class DeviceServicer(officers_pb2_grpc.DeviceServiceServicer):
    def __init__(self, svc: Officers) -> None:
        self.svc = svc

    async def Subscribe(self, request: officers_pb2.SubscribeRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> None:
        if not request.device_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "device_id is required")
        try:
            check_id("device_id", request.device_id)
            if request.officer_id:
                check_id("officer_id", request.officer_id)
        except StateError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        try:
            _, store, _ = self.svc.ready()
        except NotReady as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
            return
        log.info("device subscribed", extra={"device_id": request.device_id, "officer_id": request.officer_id})
        ttl_ms = int(self.svc.options.alert_retention_s * 1000) + 60_000
        await stream_device(store, self.svc.hub, request.device_id, context, self.svc.ctx.stop,
                            poll_s=self.svc.options.stream_poll_s, delivery_ttl_ms=ttl_ms)

    async def Acknowledge(self, request: officers_pb2.AcknowledgeRequest,  # noqa: N802
                          context: grpc.aio.ServicerContext) -> officers_pb2.AcknowledgeResponse:
        async def call() -> officers_pb2.AcknowledgeResponse:
            if not request.officer_id:
                raise TransitionError("officer_id is required")
            first = await self.svc.acknowledge(request.alert_id, request.officer_id, request.device_id)
            return officers_pb2.AcknowledgeResponse(first=first)

        return await _abort_on(context, call)

    async def Adjudicate(self, request: officers_pb2.AdjudicateRequest,  # noqa: N802
                         context: grpc.aio.ServicerContext) -> officers_pb2.AdjudicateResponse:
        async def call() -> officers_pb2.AdjudicateResponse:
            rec = await self.svc.adjudicate(request)
            return officers_pb2.AdjudicateResponse(state=rec.state, final_outcome=rec.outcome,
                                                   confirmed_by=rec.confirmed, kept=rec.kept)

        return await _abort_on(context, call)

    async def GetAlert(self, request: officers_pb2.GetAlertRequest,  # noqa: N802
                       context: grpc.aio.ServicerContext) -> officers_pb2.AlertStatus:
        async def call() -> officers_pb2.AlertStatus:
            _, store, _ = self.svc.ready()
            rec = await store.get(request.alert_id)
            if rec is None:
                raise KeyError(request.alert_id)
            return rec.status()

        return await _abort_on(context, call)
