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
from pathlib import Path
from typing import Any

import grpc
import pytest
from lfr.v1 import (
    alerts_pb2, alerts_pb2_grpc, audit_pb2, audit_pb2_grpc, officers_pb2, officers_pb2_grpc, watchlist_pb2,
    watchlist_pb2_grpc,
)

from services.cli.launch import Pipeline, PipelineLayout, Topics, ensure_certs, write_registry
from services.common import roles
from services.common.audit import read_records
from services.common.cameras import Camera
from services.common.grpc_client import ClientTls, aio_channel
from services.common.pki import DEV_CLIENTS
from services.common.settings import KafkaSettings
from services.common.topics import ALERTS, AUDIT, DLQ, MATCHES, ensure_topics

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
    }[name]


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
    asyncio.run(ensure_topics(BOOTSTRAP, specs))
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
        from aiokafka.admin import AIOKafkaAdminClient

        async def drop() -> None:
            admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=10_000)
            await admin.start()
            try:
                await admin.delete_topics(list(names.values()))
            finally:
                await admin.close()

        asyncio.run(drop())
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
