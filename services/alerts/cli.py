"""`lfr alerts tail|ack|adjudicate|status`.

``tail`` follows AlertService.StreamAlerts on the alerts service (50054);
``ack``, ``adjudicate`` and ``status`` call DeviceService on the officers
service (50056), where alert delivery and adjudication state live."""

from __future__ import annotations

import argparse
import json
from typing import Any

from services.cli.grpc_cli import CALL_TIMEOUT_S, Target, add_service_options, call, run
from services.common.ids import cli_id
from services.common.ports import local_address

ALERTS_ADDR = local_address("alerts")
OFFICERS_ADDR = local_address("officers")
OUTCOMES = ("confirmed", "rejected", "no_action")
TARGET = Target("service", "start it or pass --addr", "check the alert id and the officer")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("alerts", help="follow, acknowledge and adjudicate alerts")
    asub = p.add_subparsers(dest="alerts_command", required=True)

    t = asub.add_parser("tail", help="print alerts as they are raised until Ctrl-C")
    t.add_argument("--zone", action="append", default=[], help="only these zones (repeat)")
    t.add_argument("--camera", action="append", default=[], help="only these cameras (repeat)")
    t.add_argument("--deployment", default="", help="only this deployment")
    add_service_options(t, ALERTS_ADDR, "alerts service", json_help="one JSON object per alert (no image bytes)")
    t.set_defaults(func=_tail)

    a = asub.add_parser("ack", help="acknowledge an alert (stops its escalation)")
    a.add_argument("alert_id")
    a.add_argument("--officer", required=True, type=cli_id("officer id"))
    a.add_argument("--device", default="")
    add_service_options(a, OFFICERS_ADDR, "officers service")
    a.set_defaults(func=_ack)

    j = asub.add_parser("adjudicate", help="record an officer's decision on an alert")
    j.add_argument("alert_id")
    j.add_argument("--officer", required=True, type=cli_id("officer id"))
    j.add_argument("--outcome", required=True, choices=OUTCOMES)
    j.add_argument("--note", default="", help="free text, no biometric content")
    j.add_argument("--case-ref", default="", help="confirmed into this case: kept past retention")
    add_service_options(j, OFFICERS_ADDR, "officers service")
    j.set_defaults(func=_adjudicate)

    s = asub.add_parser("status", help="an alert's delivery and adjudication state")
    s.add_argument("alert_id")
    add_service_options(s, OFFICERS_ADDR, "officers service")
    s.set_defaults(func=_status)


def _tail(args: argparse.Namespace) -> int:
    from lfr.v1 import alerts_pb2, alerts_pb2_grpc

    from services.common.grpc_client import aio_channel

    async def go() -> None:
        async with aio_channel(args.addr) as channel:
            stream = alerts_pb2_grpc.AlertServiceStub(channel).StreamAlerts(alerts_pb2.StreamAlertsRequest(
                zones=args.zone, camera_ids=args.camera, deployment_id=args.deployment))
            async for a in stream:
                d = {"alert_id": a.alert_id, "subject_id": a.subject_id, "watchlist_id": a.watchlist_id,
                     "camera_id": a.camera_id, "zone": a.zone, "score": round(a.best_score, 4),
                     "frame_to_alert_ms": round(max(0, a.alert_unix_ns - a.capture_unix_ns) / 1e6, 1)}
                print(json.dumps(d) if args.json else
                      f"ALERT {d['alert_id']} subject={d['subject_id']} score={d['score']} camera={d['camera_id']} "
                      f"zone={d['zone']} latency={d['frame_to_alert_ms']} ms", flush=True)

    try:
        run(go(), args.addr, TARGET)
    except KeyboardInterrupt:
        pass
    return 0


def _device_call(args: argparse.Namespace, rpc: Any, identity: str | None = None) -> Any:
    """``rpc(DeviceServiceStub)`` on the officers service at --addr."""
    from lfr.v1 import officers_pb2_grpc

    return call(args.addr, TARGET, officers_pb2_grpc.DeviceServiceStub, rpc, identity=identity)


def _ack(args: argparse.Namespace) -> int:
    from lfr.v1 import officers_pb2

    request = officers_pb2.AcknowledgeRequest(alert_id=args.alert_id, officer_id=args.officer, device_id=args.device)
    reply = _device_call(args, lambda stub: stub.Acknowledge(request, timeout=CALL_TIMEOUT_S), args.officer)
    print(f"{args.alert_id} acknowledged by {args.officer}" + ("" if reply.first else " (already acknowledged)"))
    return 0


def _adjudicate(args: argparse.Namespace) -> int:
    from lfr.v1 import officers_pb2

    outcome = {"confirmed": officers_pb2.ADJUDICATION_OUTCOME_CONFIRMED,
               "rejected": officers_pb2.ADJUDICATION_OUTCOME_REJECTED,
               "no_action": officers_pb2.ADJUDICATION_OUTCOME_NO_ACTION}[args.outcome]
    request = officers_pb2.AdjudicateRequest(alert_id=args.alert_id, officer_id=args.officer, outcome=outcome,
                                             note=args.note, case_ref=args.case_ref)
    r = _device_call(args, lambda stub: stub.Adjudicate(request, timeout=CALL_TIMEOUT_S), args.officer)
    state = officers_pb2.AlertState.Name(r.state).removeprefix("ALERT_STATE_").lower()
    extra = " (needs a second officer's confirmation)" if r.state == officers_pb2.ALERT_STATE_AWAITING_SECOND else ""
    print(f"{args.alert_id} {state}{extra}; confirmed by {','.join(r.confirmed_by) or '-'}"
          + ("; kept for the case" if r.kept else ""))
    return 0


def _status(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict
    from lfr.v1 import officers_pb2

    request = officers_pb2.GetAlertRequest(alert_id=args.alert_id)
    reply = _device_call(args, lambda stub: stub.GetAlert(request, timeout=CALL_TIMEOUT_S))
    print(json.dumps(MessageToDict(reply)))
    return 0
