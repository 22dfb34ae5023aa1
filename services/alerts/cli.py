"""`lfr alerts tail|ack|adjudicate|status`.

``tail`` follows AlertService.StreamAlerts on the alerts service (50054);
``ack``, ``adjudicate`` and ``status`` call DeviceService on the officers
service (50056), where alert delivery and adjudication state live."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from services.common.grpc_client import aio_channel, unreachable
from services.common.ids import cli_id
from services.common.ports import local_address

ALERTS_ADDR = local_address("alerts")
OFFICERS_ADDR = local_address("officers")
OUTCOMES = ("confirmed", "rejected", "no_action")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("alerts", help="follow, acknowledge and adjudicate alerts")
    asub = p.add_subparsers(dest="alerts_command", required=True)

    t = asub.add_parser("tail", help="print alerts as they are raised until Ctrl-C")
    t.add_argument("--zone", action="append", default=[], help="only these zones (repeat)")
    t.add_argument("--camera", action="append", default=[], help="only these cameras (repeat)")
    t.add_argument("--deployment", default="", help="only this deployment")
    t.add_argument("--json", action="store_true", help="one JSON object per alert (no image bytes)")
    t.add_argument("--addr", default=ALERTS_ADDR, help="alerts service (default %(default)s)")
    t.set_defaults(func=_tail)

    a = asub.add_parser("ack", help="acknowledge an alert (stops its escalation)")
    a.add_argument("alert_id")
    a.add_argument("--officer", required=True, type=cli_id("officer id"))
    a.add_argument("--device", default="")
    a.add_argument("--addr", default=OFFICERS_ADDR, help="officers service (default %(default)s)")
    a.set_defaults(func=_ack)

    j = asub.add_parser("adjudicate", help="record an officer's decision on an alert")
    j.add_argument("alert_id")
    j.add_argument("--officer", required=True, type=cli_id("officer id"))
    j.add_argument("--outcome", required=True, choices=OUTCOMES)
    j.add_argument("--note", default="", help="free text, no biometric content")
    j.add_argument("--case-ref", default="", help="confirmed into this case: kept past retention")
    j.add_argument("--addr", default=OFFICERS_ADDR)
    j.set_defaults(func=_adjudicate)

    s = asub.add_parser("status", help="an alert's delivery and adjudication state")
    s.add_argument("alert_id")
    s.add_argument("--addr", default=OFFICERS_ADDR)
    s.set_defaults(func=_status)


def _run(coro: Any, addr: str) -> Any:
    import grpc

    from services.common.errors import SetupError

    try:
        return asyncio.run(coro)
    except grpc.aio.AioRpcError as e:
        if (why := unreachable(e, "service", addr, "start it or pass --addr")) is not None:
            raise why from e
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            raise SetupError(f"service at {addr} unavailable: {e.details()}", "retry later") from e
        raise SetupError(f"{e.code().name}: {e.details()}", "check the alert id and the officer") from e


def _tail(args: argparse.Namespace) -> int:
    import grpc
    from lfr.v1 import alerts_pb2, alerts_pb2_grpc

    async def go() -> None:
        async with aio_channel(args.addr) as channel:
            call = alerts_pb2_grpc.AlertServiceStub(channel).StreamAlerts(alerts_pb2.StreamAlertsRequest(
                zones=args.zone, camera_ids=args.camera, deployment_id=args.deployment))
            async for a in call:
                d = {"alert_id": a.alert_id, "subject_id": a.subject_id, "watchlist_id": a.watchlist_id,
                     "camera_id": a.camera_id, "zone": a.zone, "score": round(a.best_score, 4),
                     "frame_to_alert_ms": round(max(0, a.alert_unix_ns - a.capture_unix_ns) / 1e6, 1)}
                print(json.dumps(d) if args.json else
                      f"ALERT {d['alert_id']} subject={d['subject_id']} score={d['score']} camera={d['camera_id']} "
                      f"zone={d['zone']} latency={d['frame_to_alert_ms']} ms", flush=True)

    try:
        _run(go(), args.addr)
    except KeyboardInterrupt:
        pass
    return 0


def _stub(channel: Any) -> Any:
    from lfr.v1 import officers_pb2_grpc

    return officers_pb2_grpc.DeviceServiceStub(channel)


def _ack(args: argparse.Namespace) -> int:
    import grpc
    from lfr.v1 import officers_pb2

    async def go() -> Any:
        async with aio_channel(args.addr, identity=args.officer) as channel:
            return await _stub(channel).Acknowledge(officers_pb2.AcknowledgeRequest(
                alert_id=args.alert_id, officer_id=args.officer, device_id=args.device), timeout=10)

    reply = _run(go(), args.addr)
    print(f"{args.alert_id} acknowledged by {args.officer}" + ("" if reply.first else " (already acknowledged)"))
    return 0


def _adjudicate(args: argparse.Namespace) -> int:
    import grpc
    from lfr.v1 import officers_pb2

    outcome = {"confirmed": officers_pb2.ADJUDICATION_OUTCOME_CONFIRMED,
               "rejected": officers_pb2.ADJUDICATION_OUTCOME_REJECTED,
               "no_action": officers_pb2.ADJUDICATION_OUTCOME_NO_ACTION}[args.outcome]

    async def go() -> Any:
        async with aio_channel(args.addr, identity=args.officer) as channel:
            return await _stub(channel).Adjudicate(officers_pb2.AdjudicateRequest(
                alert_id=args.alert_id, officer_id=args.officer, outcome=outcome, note=args.note,
                case_ref=args.case_ref), timeout=10)

    r = _run(go(), args.addr)
    state = officers_pb2.AlertState.Name(r.state).removeprefix("ALERT_STATE_").lower()
    extra = " (needs a second officer's confirmation)" if r.state == officers_pb2.ALERT_STATE_AWAITING_SECOND else ""
    print(f"{args.alert_id} {state}{extra}; confirmed by {','.join(r.confirmed_by) or '-'}"
          + ("; kept for the case" if r.kept else ""))
    return 0


def _status(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf.json_format import MessageToDict
    from lfr.v1 import officers_pb2

    async def go() -> Any:
        async with aio_channel(args.addr) as channel:
            return await _stub(channel).GetAlert(officers_pb2.GetAlertRequest(alert_id=args.alert_id), timeout=10)

    print(json.dumps(MessageToDict(_run(go(), args.addr))))
    return 0
