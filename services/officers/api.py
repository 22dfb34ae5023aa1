"""The officers service's API: ``OfficerService`` (availability, zone assignments) and ``DeviceService``
(device streams, acknowledgement, adjudication, the device registry), served over the state and connections
of the worker (:class:`services.officers.worker.Officers`).

- Adjudication: Acknowledge stops escalation; Adjudicate records the outcome,
  with the optional two-person rule (a confirmation needs a second, different
  officer: state AWAITING_SECOND until then). Final outcomes count
  ``lfr_alert_outcomes_total{outcome}`` (live precision is the recording rule
  ``lfr:alert_precision:ratio24h``).
- Scope (:mod:`.roster`; rules the roles table cannot decide alone, refused
  PERMISSION_DENIED and audited as ``api.refused`` like the interceptor's):
  an officer goes on duty (or heartbeats into) only zones assigned to them
  (``AssignZones``, by a supervisor or an operator, with an expiry; supervisors
  need an assignment too and may assign themselves), with a device registered
  to them (``RegisterDevice``); only the supervisor role sets the supervisor
  flag; a caller streams and acknowledges only on a device registered to them
  (exact match); an officer without the supervisor, operator or console role
  acknowledges, adjudicates and reads only alerts routed to them or raised in
  a zone assigned to them. The per-caller rules follow ``grpc.auth.enforce_roles``;
  the roster and device rules hold whoever calls.

Every decision is audited (hash-chained ``lfr.audit.v1``); logs carry ids only.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from lfr.v1 import officers_pb2, officers_pb2_grpc

from services.common.availability import AVAILABLE, BUSY, OFF_DUTY, Location, Officer, now_ms, on_duty_officers
from services.common.grpc_server import current_identity
from services.common.service import ServiceContext
from services.officers.alert_store import (
    ACKNOWLEDGED, ADJUDICATED, AWAITING_SECOND, CONFIRMED, NO_ACTION, OUTCOME_NAMES, PENDING, REJECTED, UNREACHABLE,
    AlertRecord, AlertStore, TransitionError, Writes,
)
from services.officers.audit_actions import (
    ALERT_ACKNOWLEDGE, ALERT_ADJUDICATE, ALERT_KEEP, DEVICE_REGISTER, DEVICE_UNREGISTER, OFFICER_ASSIGN,
    OFFICER_OFF_DUTY, OFFICER_ON_DUTY, OFFICER_STATUS, OFFICER_UNASSIGN,
)
from services.officers.devices import stream_device
from services.officers.roster import Assignment, Device, assignments_for, unassigned
from services.officers.state import StateError, check_id, go_on_duty, heartbeat, set_status
from services.officers.worker import NotReady, Officers

log = logging.getLogger(__name__)
T = TypeVar("T")

STATUS_TO_PB = {AVAILABLE: officers_pb2.OFFICER_STATUS_AVAILABLE, BUSY: officers_pb2.OFFICER_STATUS_BUSY,
                OFF_DUTY: officers_pb2.OFFICER_STATUS_OFF_DUTY}
PB_TO_STATUS = {v: k for k, v in STATUS_TO_PB.items()}

OFFICER_SERVICE = "/lfr.v1.OfficerService/"
DEVICE_SERVICE = "/lfr.v1.DeviceService/"
# callers not kept to the alerts routed to them or their zones
UNSCOPED_ROLES = frozenset({"supervisor", "operator", "console"})
ASSIGN_FIX = "ask a supervisor or an operator to assign it: lfr officer assign {officer} --zones {zones} --hours 8"
REGISTER_FIX = ("ask a supervisor or an operator to register it: "
                "lfr officer devices register {device} --officer {officer}")


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



class NotRegistered(LookupError):
    """No such device in the registry (NOT_FOUND)."""


class Invalid(ValueError):
    """A request that cannot be served as sent (INVALID_ARGUMENT; the message says what to fix)."""


class Refused(Exception):
    """A call the caller may not make (PERMISSION_DENIED, audited): ``reason`` for the audit, ``message``
    for the caller (what was refused and what to do)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason)
        self.reason, self.message = reason, message


def assignment_pb(a: Assignment) -> officers_pb2.ZoneAssignment:
    return officers_pb2.ZoneAssignment(officer_id=a.officer_id, zone=a.zone, expires_unix_ns=a.expires_ms * 1_000_000,
                                       assigned_unix_ns=a.assigned_ms * 1_000_000, assigned_by=a.assigned_by)


def device_pb(d: Device) -> officers_pb2.DeviceRegistration:
    return officers_pb2.DeviceRegistration(device_id=d.device_id, officer_id=d.officer_id,
                                           registered_by=d.registered_by,
                                           registered_unix_ns=d.registered_ms * 1_000_000)


class Scope:
    """Who may act where: the roster (zones assigned to an officer), the device registry and the caller's
    alerts (Refused otherwise)."""

    def __init__(self, svc: Officers) -> None:
        self.svc = svc

    async def check_zones(self, officer_id: str, zones: list[str], verb: str) -> None:
        """Refused unless every zone is assigned to the officer (live assignment)."""
        for z in zones:
            check_id("zone", z)
        missing = unassigned(zones, await self.svc.roster().assigned(officer_id), now_ms())
        if missing:
            names = ",".join(missing)
            raise Refused(f"zone {names} not assigned to {officer_id}",
                          f"{officer_id} may not {verb} zone {names}: not assigned to them (or the assignment "
                          f"expired or was revoked); {ASSIGN_FIX.format(officer=officer_id, zones=names)}")

    async def leave_unassigned(self, officer_id: str) -> list[str]:
        """Take the officer off duty in the zones no live assignment covers any more (off duty when
        none is left); returns those zones. Audited (``officer.off_duty`` with the zones) when any."""
        store, _, audit = self.svc.ready()
        live = {a.zone for a in await self.svc.roster().assigned(officer_id)}

        def leave(old: Officer | None, at: int) -> Officer | None:
            if old is None:
                return None
            zones = tuple(z for z in old.zones if z in live)
            return dataclasses.replace(old, zones=zones) if zones else None

        old, new = await store.update(officer_id, leave)
        left = sorted(set(old.zones) - set(new.zones if new else ())) if old else []
        if left:
            await audit.record(OFFICER_OFF_DUTY, actor=self.svc.ctx.name, subject_ids=[officer_id],
                               details={"zones": ",".join(left)[:500], "reason": "assignment expired or revoked"})
            log.info("officer left unassigned zones", extra={"officer_id": officer_id, "zones": left})
        return left

    async def check_device(self, officer_id: str, device_id: str) -> None:
        """Refused unless the device is registered to the officer (exact match)."""
        owner = await self.svc.roster().owner(device_id)
        if owner != officer_id:
            why = "not registered" if owner is None else "registered to another officer"
            raise Refused(f"device {device_id} {why}, not to {officer_id}",
                          f"device {device_id} is not registered to {officer_id} ({why}); "
                          f"{REGISTER_FIX.format(device=device_id, officer=officer_id)}")

    async def check_alert_scope(self, rec: AlertRecord) -> None:
        """An officer (no supervisor/operator/console role) acts only on alerts routed to them or their zones."""
        identity = current_identity.get()
        if not self.svc.ctx.grpc.checks_callers or identity.roles & UNSCOPED_ROLES:
            return
        me = identity.principal
        if me in rec.notified:
            return
        if rec.zone in {a.zone for a in await self.svc.roster().assigned(me)}:
            return
        for entry in rec.notified:  # a configured supervisor device the caller owns
            if entry.startswith("device:") and await self.svc.roster().owner(entry.removeprefix("device:")) == me:
                return
        raise Refused(f"alert {rec.alert_id} not routed to {me} nor raised in a zone assigned to them",
                      f"{me} may not act on alert {rec.alert_id}: it was not routed to them and its zone is not "
                      f"assigned to them (a supervisor can act on it)")

    async def scoped(self, alert_id: str) -> AlertRecord:
        """The alert, if the caller may act on it (KeyError: no such alert; Refused: not theirs)."""
        _, store, _ = self.svc.ready()
        rec = await store.get(alert_id)
        if rec is None:
            raise KeyError(alert_id)
        await self.check_alert_scope(rec)
        return rec


async def _abort_on(context: grpc.aio.ServicerContext, svc: Officers, method: str,
                    call: Callable[[], Awaitable[T]]) -> T:
    """Map the service's errors to gRPC status codes (a refusal is audited)."""
    try:
        return await call()
    except Refused as e:
        await svc.ctx.grpc.refuse(context, method, e.reason, e.message)
    except Invalid as e:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
    except StateError as e:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
    except TransitionError as e:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(e))
    except KeyError as e:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no such alert {e} (never raised, or purged)")
    except NotRegistered as e:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"device {e} is not registered")
    except NotReady as e:
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
    raise AssertionError("unreachable")


def _valid(kind: str, value: str) -> str:
    """``check_id`` as INVALID_ARGUMENT."""
    try:
        return check_id(kind, value)
    except StateError as e:
        raise Invalid(str(e)) from e


class OfficerServicer(officers_pb2_grpc.OfficerServiceServicer):
    def __init__(self, svc: Officers, scope: Scope) -> None:
        self.svc, self.scope = svc, scope

    async def _run(self, context: grpc.aio.ServicerContext, name: str, call: Callable[[], Awaitable[T]]) -> T:
        return await _abort_on(context, self.svc, OFFICER_SERVICE + name, call)

    async def GoOnDuty(self, request: officers_pb2.GoOnDutyRequest,  # noqa: N802
                       context: grpc.aio.ServicerContext) -> officers_pb2.GoOnDutyResponse:
        async def call() -> officers_pb2.GoOnDutyResponse:
            store, _, audit = self.svc.ready()
            identity = current_identity.get()
            if request.supervisor and self.svc.ctx.grpc.checks_callers and "supervisor" not in identity.roles:
                raise Refused("the supervisor flag needs the supervisor role",
                              f"{identity.principal} may not set supervisor: only a caller with the supervisor role "
                              f"may (go on duty without --supervisor)")
            if request.officer_id and request.device_id:
                check_id("officer_id", request.officer_id)
                check_id("device_id", request.device_id)
                await self.scope.check_device(request.officer_id, request.device_id)
                await self.scope.check_zones(request.officer_id, list(request.zones), "go on duty in")
            loc = location_of(request.location, request.HasField("location"))
            _, new = await store.update(request.officer_id, lambda old, at: go_on_duty(
                request.officer_id, list(request.zones), request.device_id, at_ms=at, ttl_ms=self.svc.ttl_ms,
                location=loc, supervisor=request.supervisor))
            assert new is not None
            await audit.record(OFFICER_ON_DUTY, actor=request.officer_id, subject_ids=[request.officer_id],
                               details={"zones": ",".join(new.zones)[:500], "device": new.device_id[:200],
                                        "supervisor": "1" if new.supervisor else "0",
                                        "by": identity.principal[:200]})
            log.info("officer on duty", extra={"officer_id": new.officer_id, "zones": list(new.zones)})
            return officers_pb2.GoOnDutyResponse(state=officer_pb(new),
                                                 heartbeat_ttl_s=int(self.svc.options.heartbeat_ttl_s))

        return await self._run(context, "GoOnDuty", call)

    async def Heartbeat(self, request: officers_pb2.HeartbeatRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> officers_pb2.HeartbeatResponse:
        async def call() -> officers_pb2.HeartbeatResponse:
            store, _, _ = self.svc.ready()
            if request.zones:
                await self.scope.check_zones(request.officer_id, list(request.zones), "go on duty in")
            else:  # the current zones: an expired or revoked assignment ends the duty there at once
                old = await store.get(request.officer_id) if request.officer_id else None
                try:
                    await self.scope.check_zones(request.officer_id, list(old.zones) if old else [], "stay on duty in")
                except Refused:
                    await self.scope.leave_unassigned(request.officer_id)
                    raise
            loc = location_of(request.location, request.HasField("location"))
            _, new = await store.update(request.officer_id, lambda old, at: heartbeat(
                old, at_ms=at, ttl_ms=self.svc.ttl_ms, location=loc, zones=list(request.zones)))
            assert new is not None
            return officers_pb2.HeartbeatResponse(state=officer_pb(new),
                                                  heartbeat_ttl_s=int(self.svc.options.heartbeat_ttl_s))

        return await self._run(context, "Heartbeat", call)

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

        return await self._run(context, "SetStatus", call)

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

        return await self._run(context, "GoOffDuty", call)

    async def ListOfficers(self, request: officers_pb2.ListOfficersRequest,  # noqa: N802
                           context: grpc.aio.ServicerContext) -> officers_pb2.ListOfficersResponse:
        async def call() -> officers_pb2.ListOfficersResponse:
            self.svc.ready()
            officers = await on_duty_officers(self.svc.redis, request.zone)
            return officers_pb2.ListOfficersResponse(officers=[officer_pb(o) for o in officers])

        return await self._run(context, "ListOfficers", call)

    async def AssignZones(self, request: officers_pb2.AssignZonesRequest,  # noqa: N802
                          context: grpc.aio.ServicerContext) -> officers_pb2.AssignZonesResponse:
        async def call() -> officers_pb2.AssignZonesResponse:
            _, _, audit = self.svc.ready()
            by = current_identity.get().principal
            try:
                entries = assignments_for(request.officer_id, list(request.zones), request.duration_s, by, now_ms())
            except StateError as e:
                raise Invalid(str(e)) from e
            await self.svc.roster().assign(entries)
            await audit.record(OFFICER_ASSIGN, actor=by, subject_ids=[request.officer_id],
                               details={"zones": ",".join(a.zone for a in entries)[:500],
                                        "expires_unix_ms": str(entries[0].expires_ms),
                                        "duration_s": str(request.duration_s)})
            log.info("zones assigned", extra={"officer_id": request.officer_id, "by": by,
                                              "zones": [a.zone for a in entries]})
            return officers_pb2.AssignZonesResponse(assignments=[assignment_pb(a) for a in entries])

        return await self._run(context, "AssignZones", call)

    async def ListAssignments(self, request: officers_pb2.ListAssignmentsRequest,  # noqa: N802
                              context: grpc.aio.ServicerContext) -> officers_pb2.ListAssignmentsResponse:
        async def call() -> officers_pb2.ListAssignmentsResponse:
            roster = self.svc.roster()
            ids = [_valid("officer_id", request.officer_id)] if request.officer_id else await roster.officers()
            at = now_ms()
            out = [assignment_pb(a) for oid in ids for a in await roster.assigned(oid, at)]
            return officers_pb2.ListAssignmentsResponse(assignments=out)

        return await self._run(context, "ListAssignments", call)

    async def RevokeAssignment(self, request: officers_pb2.RevokeAssignmentRequest,  # noqa: N802
                               context: grpc.aio.ServicerContext) -> officers_pb2.RevokeAssignmentResponse:
        async def call() -> officers_pb2.RevokeAssignmentResponse:
            store, _, audit = self.svc.ready()
            officer_id = _valid("officer_id", request.officer_id)
            gone = await self.svc.roster().revoke(officer_id, list(request.zones))
            left = await self.scope.leave_unassigned(officer_id) if gone else []
            by = current_identity.get().principal
            await audit.record(OFFICER_UNASSIGN, actor=by, subject_ids=[officer_id],
                               details={"zones": ",".join(gone)[:500], "left_duty_in": ",".join(left)[:500]})
            log.info("zones revoked", extra={"officer_id": officer_id, "by": by, "zones": gone})
            return officers_pb2.RevokeAssignmentResponse(zones=gone)

        return await self._run(context, "RevokeAssignment", call)


class DeviceServicer(officers_pb2_grpc.DeviceServiceServicer):
    def __init__(self, svc: Officers, scope: Scope) -> None:
        self.svc, self.scope = svc, scope
        self.outcomes = svc.ctx.metrics.counter("alert_outcomes_total", "final adjudication outcomes", ("outcome",))

    async def _run(self, context: grpc.aio.ServicerContext, name: str, call: Callable[[], Awaitable[T]]) -> T:
        return await _abort_on(context, self.svc, DEVICE_SERVICE + name, call)

    # --- adjudication --------------------------------------------------------------

    async def acknowledge(self, alert_id: str, officer_id: str, device_id: str) -> bool:
        _, store, audit = self.svc.ready()
        await self.scope.scoped(alert_id)
        if device_id and self.svc.ctx.grpc.checks_callers:
            await self.scope.check_device(current_identity.get().principal, device_id)

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
        _, store, audit = self.svc.ready()
        outcome = req.outcome
        if outcome not in (CONFIRMED, REJECTED, NO_ACTION):
            raise TransitionError("outcome must be confirmed, rejected or no_action")
        if not req.officer_id:
            raise TransitionError("officer_id is required")
        await self.scope.scoped(req.alert_id)

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
        await audit.record(ALERT_ADJUDICATE, actor=req.officer_id, deployment_id=new.deployment_id,
                           subject_ids=[req.alert_id], details=details)
        if new.state == ADJUDICATED:
            self.outcomes.labels(name).inc()
            if new.kept:
                await audit.record(ALERT_KEEP, actor=req.officer_id, deployment_id=new.deployment_id,
                                   subject_ids=[req.alert_id], details={"case_ref": new.case_ref[:200]})
        log.info("alert adjudicated", extra={"alert_id": req.alert_id, "officer_id": req.officer_id,
                                             "outcome": name, "state": int(new.state)})
        return new


    async def Subscribe(self, request: officers_pb2.SubscribeRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> None:
        async def check() -> AlertStore:
            if not request.device_id:
                raise Invalid("device_id is required")
            _valid("device_id", request.device_id)
            if request.officer_id:
                _valid("officer_id", request.officer_id)
            _, store, _ = self.svc.ready()
            if self.svc.ctx.grpc.checks_callers:
                await self.scope.check_device(current_identity.get().principal, request.device_id)
            return store

        store = await self._run(context, "Subscribe", check)
        log.info("device subscribed", extra={"device_id": request.device_id, "officer_id": request.officer_id})
        ttl_ms = int(self.svc.options.alert_retention_s * 1000) + 60_000
        await stream_device(store, self.svc.hub, request.device_id, context, self.svc.ctx.stop,
                            poll_s=self.svc.options.stream_poll_s, delivery_ttl_ms=ttl_ms)

    async def Acknowledge(self, request: officers_pb2.AcknowledgeRequest,  # noqa: N802
                          context: grpc.aio.ServicerContext) -> officers_pb2.AcknowledgeResponse:
        async def call() -> officers_pb2.AcknowledgeResponse:
            if not request.officer_id:
                raise TransitionError("officer_id is required")
            first = await self.acknowledge(request.alert_id, request.officer_id, request.device_id)
            return officers_pb2.AcknowledgeResponse(first=first)

        return await self._run(context, "Acknowledge", call)

    async def Adjudicate(self, request: officers_pb2.AdjudicateRequest,  # noqa: N802
                         context: grpc.aio.ServicerContext) -> officers_pb2.AdjudicateResponse:
        async def call() -> officers_pb2.AdjudicateResponse:
            rec = await self.adjudicate(request)
            return officers_pb2.AdjudicateResponse(state=rec.state, final_outcome=rec.outcome,
                                                   confirmed_by=rec.confirmed, kept=rec.kept)

        return await self._run(context, "Adjudicate", call)

    async def GetAlert(self, request: officers_pb2.GetAlertRequest,  # noqa: N802
                       context: grpc.aio.ServicerContext) -> officers_pb2.AlertStatus:
        async def call() -> officers_pb2.AlertStatus:
            return (await self.scope.scoped(request.alert_id)).status()

        return await self._run(context, "GetAlert", call)

    async def RegisterDevice(self, request: officers_pb2.RegisterDeviceRequest,  # noqa: N802
                             context: grpc.aio.ServicerContext) -> officers_pb2.DeviceRegistration:
        async def call() -> officers_pb2.DeviceRegistration:
            _, _, audit = self.svc.ready()
            _valid("device_id", request.device_id)
            _valid("officer_id", request.officer_id)
            by = current_identity.get().principal
            before = await self.svc.roster().owner(request.device_id)
            dev = await self.svc.roster().register(request.device_id, request.officer_id, by)
            await audit.record(DEVICE_REGISTER, actor=by, subject_ids=[request.device_id, request.officer_id],
                               details={"previous_officer": before or ""})
            log.info("device registered", extra={"device_id": request.device_id, "officer_id": request.officer_id,
                                                 "by": by})
            return device_pb(dev)

        return await self._run(context, "RegisterDevice", call)

    async def UnregisterDevice(self, request: officers_pb2.UnregisterDeviceRequest,  # noqa: N802
                               context: grpc.aio.ServicerContext) -> officers_pb2.UnregisterDeviceResponse:
        async def call() -> officers_pb2.UnregisterDeviceResponse:
            _, _, audit = self.svc.ready()
            _valid("device_id", request.device_id)
            dev = await self.svc.roster().unregister(request.device_id)
            if dev is None:
                raise NotRegistered(request.device_id)
            by = current_identity.get().principal
            await audit.record(DEVICE_UNREGISTER, actor=by, subject_ids=[request.device_id, dev.officer_id])
            log.info("device unregistered", extra={"device_id": request.device_id, "by": by})
            return officers_pb2.UnregisterDeviceResponse(removed=device_pb(dev))

        return await self._run(context, "UnregisterDevice", call)


def add_servicers(ctx: ServiceContext, svc: Officers) -> None:
    """Serve ``OfficerService`` and ``DeviceService`` on the service's gRPC server, over the worker's state."""
    scope = Scope(svc)
    ctx.grpc.add(officers_pb2_grpc.add_OfficerServiceServicer_to_server, OfficerServicer(svc, scope),
                 officers_pb2.DESCRIPTOR.services_by_name["OfficerService"].full_name)
    ctx.grpc.add(officers_pb2_grpc.add_DeviceServiceServicer_to_server, DeviceServicer(svc, scope),
                 officers_pb2.DESCRIPTOR.services_by_name["DeviceService"].full_name)
