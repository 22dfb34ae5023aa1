"""The whole RPC x role matrix against the real services (watchlist + audit, alerts,
officers + devices as child processes on mTLS, ports +4200, topics of their own).

For every RPC of every lfr.v1 service and every identity of the dev PKI (one per
role, each service's own, the console itself and the console acting for users):
a call the roles table allows succeeds or fails with a status that is NOT a
permission one (the request's contents decide); every other call answers
PERMISSION_DENIED. The table names every RPC (default deny covers the rest), and
every refusal is in the audit chain (``api.refused``, one by one or counted in a per-peer aggregate).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from lfr.v1 import (
    alerts_pb2, alerts_pb2_grpc, audit_pb2, audit_pb2_grpc, officers_pb2, officers_pb2_grpc, watchlist_pb2,
    watchlist_pb2_grpc,
)
from topics_support import KafkaTopics, run_private

from services.cli.launch import Pipeline, PipelineLayout, Topics, ensure_certs, write_registry
from services.common import roles
from services.common.audit import read_records
from services.common.cameras import Camera
from services.common.grpc_client import ClientTls, aio_channel
from services.common.pki import DEV_CLIENTS
from services.common.settings import KafkaSettings
from services.common.topics import ALERTS, AUDIT, DLQ, MATCHES

pytestmark = [pytest.mark.timeout(300)]

BOOTSTRAP = "127.0.0.1:9092"
SERVICES = {"lfr.v1.WatchlistService": "watchlist", "lfr.v1.AuditService": "watchlist",
            "lfr.v1.AlertService": "alerts", "lfr.v1.OfficerService": "officers", "lfr.v1.DeviceService": "officers"}
STUBS = {"lfr.v1.WatchlistService": watchlist_pb2_grpc.WatchlistServiceStub,
         "lfr.v1.AuditService": audit_pb2_grpc.AuditServiceStub,
         "lfr.v1.AlertService": alerts_pb2_grpc.AlertServiceStub,
         "lfr.v1.OfficerService": officers_pb2_grpc.OfficerServiceStub,
         "lfr.v1.DeviceService": officers_pb2_grpc.DeviceServiceStub}
MODULES = (watchlist_pb2, audit_pb2, alerts_pb2, officers_pb2)
PERMISSION_CODES = {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED}


def all_methods() -> list[tuple[str, Any]]:
    out = []
    for mod in MODULES:
        for svc in mod.DESCRIPTOR.services_by_name.values():
            out.extend((f"/{svc.full_name}/{m.name}", m) for m in svc.methods)
    return out


def request_for(method: str, principal: str, tag: str) -> Any:
    """A request a caller would send: about themselves (officer/device ids), their deployment."""
    name = method.rsplit("/", 1)[1]
    now = time.time_ns()
    me, dev = principal, f"{principal}-device"
    zone = f"itest-roles-{tag}"
    return {
        "CreateWatchlist": watchlist_pb2.CreateWatchlistRequest(
            name="roles matrix", deployment_id=f"itest-roles-{tag}", authorisation_ref=f"ROLES-{tag}",
            authorising_officer="itest", purpose="test", criteria="test",
            valid_from_unix_ns=now - 1_000_000_000, valid_until_unix_ns=now + 60_000_000_000),
        "EnrolSubject": watchlist_pb2.EnrolSubjectRequest(watchlist_id=f"wl-missing-{tag}", subject_id="s"),
        "RemoveSubject": watchlist_pb2.RemoveSubjectRequest(watchlist_id=f"wl-missing-{tag}", subject_id="s"),
        "ReembedWatchlist": watchlist_pb2.ReembedWatchlistRequest(watchlist_id=f"wl-missing-{tag}", reason="test"),
        "ListWatchlists": watchlist_pb2.ListWatchlistsRequest(page_size=1),
        "GetWatchlist": watchlist_pb2.GetWatchlistRequest(watchlist_id=f"wl-missing-{tag}"),
        "CloseWatchlist": watchlist_pb2.CloseWatchlistRequest(watchlist_id=f"wl-missing-{tag}", reason="test"),
        "BulkImport": watchlist_pb2.BulkImportRequest(),
        "Tail": audit_pb2.TailAuditRequest(limit=1),
        "Verify": audit_pb2.VerifyAuditRequest(),
        "StreamAlerts": alerts_pb2.StreamAlertsRequest(deployment_id="demo"),
        "GoOnDuty": officers_pb2.GoOnDutyRequest(officer_id=me, zones=[zone], device_id=dev),
        "Heartbeat": officers_pb2.HeartbeatRequest(officer_id=me),
        "SetStatus": officers_pb2.SetStatusRequest(officer_id=me, status=officers_pb2.OFFICER_STATUS_BUSY),
        "GoOffDuty": officers_pb2.GoOffDutyRequest(officer_id=me),
        "ListOfficers": officers_pb2.ListOfficersRequest(zone=zone),
        "Subscribe": officers_pb2.SubscribeRequest(device_id=dev, officer_id=me),
        "Acknowledge": officers_pb2.AcknowledgeRequest(alert_id=f"missing-{tag}", officer_id=me, device_id=dev),
        "Adjudicate": officers_pb2.AdjudicateRequest(alert_id=f"missing-{tag}", officer_id=me,
                                                     outcome=officers_pb2.ADJUDICATION_OUTCOME_REJECTED),
        "GetAlert": officers_pb2.GetAlertRequest(alert_id=f"missing-{tag}"),
        "AssignZones": officers_pb2.AssignZonesRequest(officer_id=me, zones=[zone], duration_s=600),
        "ListAssignments": officers_pb2.ListAssignmentsRequest(officer_id=me),
        "RevokeAssignment": officers_pb2.RevokeAssignmentRequest(officer_id=me, zones=[f"{zone}-none"]),
        "RegisterDevice": officers_pb2.RegisterDeviceRequest(device_id=f"{dev}-spare-{tag}", officer_id=me),
        "UnregisterDevice": officers_pb2.UnregisterDeviceRequest(device_id=f"{dev}-spare-{tag}"),
    }[name]


async def roster(layout: PipelineLayout, officer_id: str, zones: list[str], device_id: str,
                 duration_s: int = 600) -> None:
    """What a supervisor does before an officer may go on duty (as dev: supervisor and operator)."""
    async with as_identity(layout, "dev") as channel:
        await officers_pb2_grpc.OfficerServiceStub(channel).AssignZones(officers_pb2.AssignZonesRequest(
            officer_id=officer_id, zones=zones, duration_s=duration_s), timeout=10)
        await officers_pb2_grpc.DeviceServiceStub(channel).RegisterDevice(officers_pb2.RegisterDeviceRequest(
            device_id=device_id, officer_id=officer_id), timeout=10)


def as_identity(layout: PipelineLayout, who: str) -> grpc.aio.Channel:
    return aio_channel(f"127.0.0.1:{layout.grpc_port('officers')}", tls=ClientTls.for_identity(who))


async def call(channel: grpc.aio.Channel, method: str, desc: Any, request: Any,
               metadata: tuple[tuple[str, str], ...]) -> grpc.StatusCode:
    """The call's status; a server stream that stays open for 3 s counts as OK (a refusal comes at once,
    after its audit append: the first one of a service starts its audit writer)."""
    service = method.split("/")[1]
    fn = getattr(STUBS[service](channel), desc.name)
    try:
        if desc.client_streaming:
            await fn(iter([request]), metadata=metadata, timeout=20)
        elif desc.server_streaming:
            stream = fn(request, metadata=metadata, timeout=20)
            try:
                await asyncio.wait_for(stream.read(), timeout=3.0)
            except asyncio.TimeoutError:
                pass
            finally:
                stream.cancel()
        else:
            await fn(request, metadata=metadata, timeout=30)
    except grpc.aio.AioRpcError as e:
        return e.code()
    return grpc.StatusCode.OK


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tag = uuid.uuid4().hex[:8]
    work = tmp_path_factory.mktemp("roles")
    names = {"alerts": f"lfr.itest.roles{tag}.alerts.v1", "matches": f"lfr.itest.roles{tag}.matches.v1",
             "dlq": f"lfr.itest.roles{tag}.dlq.v1", "audit": f"lfr.itest.roles{tag}.audit.v1"}
    specs = (ALERTS.model_copy(update={"name": names["alerts"]}), MATCHES.model_copy(update={"name": names["matches"]}),
             DLQ.model_copy(update={"name": names["dlq"]}), AUDIT.model_copy(update={"name": names["audit"]}))
    topics = KafkaTopics(BOOTSTRAP)
    run_private(topics.ensure(specs))
    camera = Camera(id=f"itest-roles-{tag}", zone=f"itest-roles-{tag}", deployment_id=f"itest-roles-{tag}",
                    source="/dev/null", fps=1.0)
    layout = PipelineLayout(port_offset=4200, topics=Topics(**names), group_prefix=f"itest-roles-{tag}",
                            cameras_file=write_registry(work / "cameras.yaml", [camera]), log_dir=work,
                            log_prefix="roles-")
    ensure_certs()
    pipeline = Pipeline(layout)
    try:
        asyncio.run(pipeline.start(("watchlist", "alerts", "officers"), timeout_s=120))
        yield tag, layout, names
    finally:
        codes = pipeline.stop()
        run_private(topics.delete())
    assert all(c == 0 for c in codes.values()), codes


def test_the_table_names_every_rpc() -> None:
    assert {m for m, _ in all_methods()} == set(roles.TABLE), "an RPC without roles (or a stale entry)"
    for method, rule in roles.TABLE.items():
        assert rule and set(rule) <= roles.ALL_ROLES, method


async def test_rpc_role_matrix_over_the_real_services(stack: Any) -> None:
    tag, layout, names = stack
    # (label, client cert, metadata, principal the server sees, its roles, deployments)
    callers = [(c.principal, c.principal, (), c.principal, frozenset(c.roles), frozenset(c.deployments))
               for c in DEV_CLIENTS if c.principal not in ("dev", "officer-2", "demo-officer")]
    for role in sorted(roles.HUMAN_ROLES):  # the console acting for a user of each role
        user = f"user-{role}"
        callers.append((f"console/{role}", "console", (("lfr-on-behalf-of", user), ("lfr-roles", role)), user,
                        frozenset({role}), frozenset()))
    # an officer asking about someone else: the binding refuses
    callers.append(("officer-1 as officer-2", "officer-1", (), "officer-2", frozenset({"officer"}), frozenset()))
    # the roster and the registry a real deployment has: each caller's zone and device (the service's own rules)
    for principal in {c[3] for c in callers}:
        await roster(layout, principal, [f"itest-roles-{tag}"], f"{principal}-device")
    results: list[tuple[str, str, bool, grpc.StatusCode]] = []
    denied = 0
    for label, cert, md, principal, held, deps in callers:
        channels: dict[str, grpc.aio.Channel] = {}
        try:
            for method, desc in all_methods():
                svc = SERVICES[method.split("/")[1]]
                if svc not in channels:
                    channels[svc] = aio_channel(f"127.0.0.1:{layout.grpc_port(svc)}", tls=ClientTls.for_identity(cert))
                    await asyncio.wait_for(channels[svc].channel_ready(), 10)
                request = request_for(method, principal, tag)
                expect = roles.decide(method, cert if label.endswith("officer-2") else principal, held, deps,
                                      request).allowed
                code = await call(channels[svc], method, desc, request, md)
                results.append((label, method, expect, code))
                denied += not expect
        finally:
            for ch in channels.values():
                await ch.close()
    wrong = [(label, m, "allowed" if e else "denied", c.name) for label, m, e, c in results
             if (e and c in PERMISSION_CODES) or (not e and c != grpc.StatusCode.PERMISSION_DENIED)]
    assert not wrong, "\n".join(map(str, wrong))
    allowed = sum(1 for r in results if r[2])
    assert allowed >= 30 and denied >= 100, (allowed, denied)
    # every refusal is in the audit chain
    deadline = time.monotonic() + 30
    while True:
        records = [audit_pb2.AuditRecord.FromString(v) async for _, v in
                   read_records(KafkaSettings(bootstrap=BOOTSTRAP), names["audit"]) if v]
        refused = [r for r in records if r.action == "api.refused"]
        # past a few per caller and window, refusals are aggregated: one record carrying their count
        counted = sum(int(r.details.get("count", "1")) for r in refused)
        if counted >= denied or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert counted == denied, (counted, denied)
    assert {r.details["code"] for r in refused} == {"PERMISSION_DENIED"}


# --- an officer's credential does only what an officer may do ------------------------------
# (after the matrix: it counts every api.refused record of the audit topic)

REDIS_URL = "redis://127.0.0.1:6379/0"


async def denied(call: Any) -> str:
    """The details of a PERMISSION_DENIED answer (anything else fails the test)."""
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, (err.value.code(), err.value.details())
    return err.value.details() or ""


async def denied_stream(call: Any) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await asyncio.wait_for(call.read(), timeout=20)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, (err.value.code(), err.value.details())
    return err.value.details() or ""


async def audited(names: dict[str, str], want: Any, timeout_s: float = 30) -> list[audit_pb2.AuditRecord]:
    """The audit records ``want(record)`` picks, once there is one."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = [audit_pb2.AuditRecord.FromString(v) async for _, v in
                   read_records(KafkaSettings(bootstrap=BOOTSTRAP), names["audit"]) if v]
        picked = [r for r in records if want(r)]
        if picked or time.monotonic() > deadline:
            return picked
        await asyncio.sleep(1)


def refusal(method: str, *words: str) -> Any:
    """An api.refused record of ``method`` whose reason has ``words``: one of its own, or the aggregate of a
    peer past its immediate records (services/common/refusals.py: written at the window's end)."""
    def match(r: audit_pb2.AuditRecord) -> bool:
        if r.action != "api.refused" or "PERMISSION_DENIED" not in r.details["code"]:
            return False
        if r.details.get("aggregated") == "true":
            return method in r.details["methods"] and all(w in r.details["reasons"] for w in words)
        return r.details["method"] == method and all(w in r.details["reason"] for w in words)

    return match


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_an_officer_goes_on_duty_only_in_assigned_zones_never_as_supervisor(stack: Any, redis: Any) -> None:
    from services.common.availability import camera_may_run, zone_supervisors_key

    tag, layout, names = stack
    za, zb = f"itest-roles-{tag}-a", f"itest-roles-{tag}-b"
    device = f"officer-1-{tag}-phone"
    await roster(layout, "officer-1", [za], device)
    async with as_identity(layout, "officer-1") as ch, as_identity(layout, "dev") as dev:
        duty = officers_pb2_grpc.OfficerServiceStub(ch)
        go = officers_pb2.GoOnDutyRequest(officer_id="officer-1", zones=[za, zb], device_id=device)
        # a zone not assigned: refused with what to do; no camera of either zone switched on
        why = await denied(duty.GoOnDuty(go, timeout=10))
        assert f"zone {zb}" in why and "lfr officer assign officer-1" in why, why
        assert not await camera_may_run(redis, zb, 1) and not await camera_may_run(redis, za, 1)
        # self-promotion to supervisor: refused, not among the zone's supervisors
        why = await denied(duty.GoOnDuty(officers_pb2.GoOnDutyRequest(
            officer_id="officer-1", zones=[za], device_id=device, supervisor=True), timeout=10))
        assert "supervisor role" in why, why
        assert await redis.zcard(zone_supervisors_key(za)) == 0 and not await camera_may_run(redis, za, 1)
        # the assigned zone: on duty, its cameras may run
        state = (await duty.GoOnDuty(officers_pb2.GoOnDutyRequest(
            officer_id="officer-1", zones=[za], device_id=device), timeout=10)).state
        assert list(state.zones) == [za] and not state.supervisor
        assert await camera_may_run(redis, za, 1)
        # widening the zones by heartbeat: refused, the other zone stays off
        why = await denied(duty.Heartbeat(officers_pb2.HeartbeatRequest(officer_id="officer-1", zones=[za, zb]),
                                          timeout=10))
        assert f"zone {zb}" in why, why
        assert not await camera_may_run(redis, zb, 1)
        # the supervisor revokes the zone: off duty there at once
        revoked = await officers_pb2_grpc.OfficerServiceStub(dev).RevokeAssignment(
            officers_pb2.RevokeAssignmentRequest(officer_id="officer-1", zones=[za]), timeout=10)
        assert list(revoked.zones) == [za]
        assert not await camera_may_run(redis, za, 1)
        assert await redis.exists("lfr:officer:officer-1") == 0
    on_duty = "/lfr.v1.OfficerService/GoOnDuty"
    assert await audited(names, refusal(on_duty, f"zone {zb}", "not assigned to officer-1"))
    assert await audited(names, refusal(on_duty, "supervisor flag needs the supervisor role"))
    assert await audited(names, refusal("/lfr.v1.OfficerService/Heartbeat", f"zone {zb}"))
    assert await audited(names, lambda r: r.action == "officer.assign" and r.actor == "dev"
                         and r.subject_ids == ["officer-1"] and za in r.details["zones"])
    assert await audited(names, lambda r: r.action == "officer.unassign" and r.actor == "dev"
                         and r.details["left_duty_in"] == za)


async def test_an_expired_assignment_ends_the_duty(stack: Any, redis: Any) -> None:
    from services.common.availability import camera_may_run

    tag, layout, names = stack
    zone, device = f"itest-roles-{tag}-expiry", f"officer-2-{tag}-phone"
    await roster(layout, "officer-2", [zone], device, duration_s=2)
    async with as_identity(layout, "officer-2") as ch, as_identity(layout, "dev") as dev:
        duty = officers_pb2_grpc.OfficerServiceStub(ch)
        go = officers_pb2.GoOnDutyRequest(officer_id="officer-2", zones=[zone], device_id=device)
        await duty.GoOnDuty(go, timeout=10)
        assert await camera_may_run(redis, zone, 1)
        listed = await officers_pb2_grpc.OfficerServiceStub(dev).ListAssignments(
            officers_pb2.ListAssignmentsRequest(officer_id="officer-2"), timeout=10)
        assert zone in {a.zone for a in listed.assignments}
        await asyncio.sleep(2.3)
        # the next heartbeat is refused and takes the officer off duty there: the camera stops
        why = await denied(duty.Heartbeat(officers_pb2.HeartbeatRequest(officer_id="officer-2"), timeout=10))
        assert f"zone {zone}" in why and "expired" in why, why
        assert not await camera_may_run(redis, zone, 1)
        why = await denied(duty.GoOnDuty(go, timeout=10))
        assert f"zone {zone}" in why, why
        assert not await camera_may_run(redis, zone, 1)
        listed = await officers_pb2_grpc.OfficerServiceStub(dev).ListAssignments(
            officers_pb2.ListAssignmentsRequest(officer_id="officer-2"), timeout=10)
        assert zone not in {a.zone for a in listed.assignments}
    assert await audited(names, refusal("/lfr.v1.OfficerService/Heartbeat", f"zone {zone}"))
    assert await audited(names, lambda r: r.action == "officer.off_duty" and r.subject_ids == ["officer-2"]
                         and r.details.get("zones") == zone)


async def test_device_ownership_is_the_registry_exactly(stack: Any) -> None:
    tag, layout, names = stack
    phone = f"officer-1-{tag}-j-phone"  # officer-1 is a prefix of it: that is not ownership
    zone = f"itest-roles-{tag}-devices"
    async with as_identity(layout, "officer-1") as ch, as_identity(layout, "dev") as dev:
        devices = officers_pb2_grpc.DeviceServiceStub(ch)
        registry = officers_pb2_grpc.DeviceServiceStub(dev)
        subscribe = officers_pb2.SubscribeRequest(device_id=phone, officer_id="officer-1")
        why = await denied_stream(devices.Subscribe(subscribe))
        assert f"device {phone} is not registered to officer-1 (not registered)" in why, why
        assert "lfr officer devices register" in why
        # registered to someone else: still not officer-1's
        reg = await registry.RegisterDevice(officers_pb2.RegisterDeviceRequest(device_id=phone, officer_id="officer-2"),
                                            timeout=10)
        assert (reg.officer_id, reg.registered_by) == ("officer-2", "dev")
        why = await denied_stream(devices.Subscribe(subscribe))
        assert "registered to another officer" in why, why
        # nor may officer-1 go on duty with it (their alerts would go to officer-2's phone)
        await roster(layout, "officer-1", [zone], f"officer-1-{tag}-own")
        why = await denied(officers_pb2_grpc.OfficerServiceStub(ch).GoOnDuty(officers_pb2.GoOnDutyRequest(
            officer_id="officer-1", zones=[zone], device_id=phone), timeout=10))
        assert f"device {phone}" in why, why
        # registered to officer-1: the stream opens (and stays open)
        await registry.RegisterDevice(officers_pb2.RegisterDeviceRequest(device_id=phone, officer_id="officer-1"),
                                      timeout=10)
        stream = devices.Subscribe(subscribe)
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(stream.read(), timeout=2.0)
        finally:
            stream.cancel()
        gone = await registry.UnregisterDevice(officers_pb2.UnregisterDeviceRequest(device_id=phone), timeout=10)
        assert gone.removed.officer_id == "officer-1"
        await registry.UnregisterDevice(officers_pb2.UnregisterDeviceRequest(device_id=f"officer-1-{tag}-own"),
                                        timeout=10)
        why = await denied_stream(devices.Subscribe(subscribe))
        assert "not registered" in why, why
    assert await audited(names, refusal("/lfr.v1.DeviceService/Subscribe", f"device {phone} not registered"))
    assert await audited(names, refusal("/lfr.v1.DeviceService/Subscribe", "registered to another officer"))
    assert await audited(names, lambda r: r.action == "device.register" and r.actor == "dev"
                         and r.subject_ids == [phone, "officer-2"])
    assert await audited(names, lambda r: r.action == "device.unregister" and r.subject_ids == [phone, "officer-1"])


async def test_an_officer_acts_only_on_alerts_routed_to_them_or_their_zones(stack: Any) -> None:
    from aiokafka import AIOKafkaProducer

    tag, layout, names = stack
    theirs, mine = f"itest-roles-{tag}-zone2", f"itest-roles-{tag}-zone1"
    phone2 = f"officer-2-{tag}-alerts"
    await roster(layout, "officer-2", [theirs], phone2)
    await roster(layout, "officer-1", [mine], f"officer-1-{tag}-alerts")
    alert_id = f"itest-roles-{tag}-alert"
    now = time.time_ns()
    alert = alerts_pb2.Alert(alert_id=alert_id, zone=theirs, camera_id=f"itest-roles-{tag}-cam2",
                             deployment_id=f"itest-roles-{tag}", subject_id="s1", alert_unix_ns=now,
                             capture_unix_ns=now, best_score=0.9, threshold=0.5)
    async with as_identity(layout, "officer-1") as o1, as_identity(layout, "officer-2") as o2, \
            as_identity(layout, "supervisor") as sup, as_identity(layout, "dev") as dev:
        await officers_pb2_grpc.OfficerServiceStub(o2).GoOnDuty(officers_pb2.GoOnDutyRequest(
            officer_id="officer-2", zones=[theirs], device_id=phone2), timeout=10)
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(names["alerts"], alert.SerializeToString(), key=alert_id.encode())
        finally:
            await producer.stop()
        operator = officers_pb2_grpc.DeviceServiceStub(dev)
        deadline = time.monotonic() + 20
        while True:
            try:
                status = await operator.GetAlert(officers_pb2.GetAlertRequest(alert_id=alert_id), timeout=10)
                if "officer-2" in status.notified_officers:
                    break
            except grpc.aio.AioRpcError as e:
                assert e.code() == grpc.StatusCode.NOT_FOUND, e
            assert time.monotonic() < deadline, "the alert was not routed to officer-2"
            await asyncio.sleep(0.2)

        # officer-1: neither routed to them nor in their zone: read, acknowledge, adjudicate (keep) refused
        one = officers_pb2_grpc.DeviceServiceStub(o1)
        for why in (
            await denied(one.GetAlert(officers_pb2.GetAlertRequest(alert_id=alert_id), timeout=10)),
            await denied(one.Acknowledge(officers_pb2.AcknowledgeRequest(alert_id=alert_id, officer_id="officer-1"),
                                         timeout=10)),
            await denied(one.Adjudicate(officers_pb2.AdjudicateRequest(
                alert_id=alert_id, officer_id="officer-1", outcome=officers_pb2.ADJUDICATION_OUTCOME_CONFIRMED,
                case_ref=f"CASE-{tag}"), timeout=10)),
        ):
            assert f"may not act on alert {alert_id}" in why, why
        status = await operator.GetAlert(officers_pb2.GetAlertRequest(alert_id=alert_id), timeout=10)
        assert status.state == officers_pb2.ALERT_STATE_PENDING and not status.kept and not status.case_ref
        assert not status.acknowledged_by
        # officer-2 (routed to them) acts, on their own device only; a supervisor reads any alert
        two = officers_pb2_grpc.DeviceServiceStub(o2)
        why = await denied(two.Acknowledge(officers_pb2.AcknowledgeRequest(
            alert_id=alert_id, officer_id="officer-2", device_id=f"officer-1-{tag}-alerts"), timeout=10))
        assert "registered to another officer" in why, why
        assert (await two.Acknowledge(officers_pb2.AcknowledgeRequest(alert_id=alert_id, officer_id="officer-2",
                                                                      device_id=phone2), timeout=10)).first
        assert (await two.GetAlert(officers_pb2.GetAlertRequest(alert_id=alert_id), timeout=10)).acknowledged_by \
            == "officer-2"
        await officers_pb2_grpc.DeviceServiceStub(sup).GetAlert(officers_pb2.GetAlertRequest(alert_id=alert_id),
                                                                timeout=10)
        await officers_pb2_grpc.OfficerServiceStub(o2).GoOffDuty(officers_pb2.GoOffDutyRequest(officer_id="officer-2"),
                                                                  timeout=10)
    for method in ("GetAlert", "Acknowledge", "Adjudicate"):
        assert await audited(names, refusal(f"/lfr.v1.DeviceService/{method}", f"alert {alert_id} not routed"))
    assert await audited(names, lambda r: r.action == "api.refused" and r.actor == "officer-1"
                         and r.details["roles"] == "officer")
