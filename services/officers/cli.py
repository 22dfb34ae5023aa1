"""`lfr officer on-duty|off-duty|status`, the duty roster (`lfr officer assign|unassign|assignments`),
the device registry (`lfr officer devices register|unregister`) and `lfr device listen DEVICE` (plays
the officer app), over the officers service's gRPC API (default 127.0.0.1:50056). The roster and the
registry need a supervisor's or an operator's credential (the local `dev` identity has both)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from services.cli.grpc_cli import CALL_TIMEOUT_S, Target, add_service_options, call, run
from services.common.ids import cli_id
from services.officers.device_client import OFFICERS_ADDR

TARGET = Target("officers service", "start it (python -m services.officers) or pass --addr",
                "check the ids and the officer's state")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("officer", help="officer availability (cameras run only while officers are on duty)")
    osub = p.add_subparsers(dest="officer_command", required=True)

    on = osub.add_parser("on-duty", help="go on duty in one or more zones")
    on.add_argument("officer", type=cli_id("officer id"), help="officer id")
    on.add_argument("--zone", action="append", required=True, help="zone (repeat for several)")
    on.add_argument("--device", required=True, type=cli_id("device id"),
                    help="the officer's device id (alerts go there)")
    on.add_argument("--lat", type=float, help="latitude (nearest officers get alerts first)")
    on.add_argument("--lon", type=float, help="longitude")
    on.add_argument("--supervisor", action="store_true", help="the zone's supervisor (gets escalations)")
    on.add_argument("--stay", action="store_true",
                    help="keep heartbeating until Ctrl-C, then go off duty "
                         "(without it availability lapses after the TTL)")
    add_service_options(on, OFFICERS_ADDR, "officers service")
    on.set_defaults(func=_on_duty)

    off = osub.add_parser("off-duty", help="go off duty")
    off.add_argument("officer", type=cli_id("officer id"))
    add_service_options(off, OFFICERS_ADDR, "officers service")
    off.set_defaults(func=_off_duty)

    st = osub.add_parser("status", help="officers on duty")
    st.add_argument("--zone", default="", help="only this zone")
    add_service_options(st, OFFICERS_ADDR, "officers service", json_help="one JSON object per officer")
    st.set_defaults(func=_status)

    asg = osub.add_parser("assign", help="let an officer go on duty in zones, for a while (supervisor, operator)")
    asg.add_argument("officer", type=cli_id("officer id"), help="officer id")
    asg.add_argument("--zones", required=True, help="comma-separated zones")
    asg.add_argument("--hours", type=float, default=8.0, help="the assignment lapses after this (default %(default)s)")
    add_service_options(asg, OFFICERS_ADDR, "officers service")
    asg.set_defaults(func=_assign)

    una = osub.add_parser("unassign", help="revoke an officer's zones (they leave duty there at once)")
    una.add_argument("officer", type=cli_id("officer id"), help="officer id")
    una.add_argument("--zones", default="", help="comma-separated zones (default: every zone)")
    add_service_options(una, OFFICERS_ADDR, "officers service")
    una.set_defaults(func=_unassign)

    lsa = osub.add_parser("assignments", help="the live duty roster")
    lsa.add_argument("--officer", default=None, type=cli_id("officer id"), help="only this officer")
    add_service_options(lsa, OFFICERS_ADDR, "officers service")
    lsa.set_defaults(func=_assignments)

    dev = osub.add_parser("devices", help="the device registry (device id -> officer)")
    dsub_reg = dev.add_subparsers(dest="devices_command", required=True)
    reg = dsub_reg.add_parser("register", help="register a device to an officer (supervisor, operator)")
    reg.add_argument("device", type=cli_id("device id"), help="device id")
    reg.add_argument("--officer", required=True, type=cli_id("officer id"), help="the officer it belongs to")
    add_service_options(reg, OFFICERS_ADDR, "officers service")
    reg.set_defaults(func=_register)
    unr = dsub_reg.add_parser("unregister", help="remove a device from the registry")
    unr.add_argument("device", type=cli_id("device id"), help="device id")
    add_service_options(unr, OFFICERS_ADDR, "officers service")
    unr.set_defaults(func=_unregister)

    d = sub.add_parser("device", help="play an officer's device")
    dsub = d.add_subparsers(dest="device_command", required=True)
    li = dsub.add_parser("listen", help="print the alerts delivered to a device until Ctrl-C")
    li.add_argument("device", help="device id")
    li.add_argument("--officer", default="", help="officer id (for --ack)")
    li.add_argument("--ack", action="store_true", help="acknowledge each alert as it arrives (needs --officer)")
    add_service_options(li, OFFICERS_ADDR, "officers service", json_help="one JSON object per alert")
    li.set_defaults(func=_listen)


def _officers(args: argparse.Namespace, rpc: Any, identity: str | None = None) -> Any:
    """``rpc(OfficerServiceStub)`` on the officers service at --addr."""
    from lfr.v1 import officers_pb2_grpc

    return call(args.addr, TARGET, officers_pb2_grpc.OfficerServiceStub, rpc, identity=identity)


def _devices(args: argparse.Namespace, rpc: Any) -> Any:
    """``rpc(DeviceServiceStub)`` on the officers service at --addr."""
    from lfr.v1 import officers_pb2_grpc

    return call(args.addr, TARGET, officers_pb2_grpc.DeviceServiceStub, rpc)


def _state_line(s: Any) -> str:
    from lfr.v1 import officers_pb2

    loc = f" at {s.location.latitude:.5f},{s.location.longitude:.5f}" if s.HasField("location") else ""
    left = max(0.0, (s.expires_unix_ns - time.time_ns()) / 1e9)
    role = " supervisor" if s.supervisor else ""
    return (f"{s.officer_id}{role} {officers_pb2.OfficerStatus.Name(s.status).removeprefix('OFFICER_STATUS_').lower()}"
            f" zones={','.join(s.zones)} device={s.device_id}{loc} expires in {left:.0f} s")


def _on_duty(args: argparse.Namespace) -> int:
    from lfr.v1 import officers_pb2, officers_pb2_grpc

    from services.common.grpc_client import aio_channel

    async def go() -> int:
        async with aio_channel(args.addr, identity=args.officer) as channel:
            stub = officers_pb2_grpc.OfficerServiceStub(channel)
            req = officers_pb2.GoOnDutyRequest(officer_id=args.officer, zones=args.zone, device_id=args.device,
                                               supervisor=args.supervisor)
            if args.lat is not None and args.lon is not None:
                req.location.CopyFrom(officers_pb2.GeoLocation(latitude=args.lat, longitude=args.lon))
            reply = await stub.GoOnDuty(req, timeout=CALL_TIMEOUT_S)
            print(_state_line(reply.state))
            if not args.stay:
                print(f"availability lapses in {reply.heartbeat_ttl_s} s without a heartbeat (use --stay)")
                return 0
            try:
                while True:
                    await asyncio.sleep(max(1.0, reply.heartbeat_ttl_s / 3))
                    await stub.Heartbeat(officers_pb2.HeartbeatRequest(officer_id=args.officer),
                                         timeout=CALL_TIMEOUT_S)
            finally:
                await asyncio.shield(stub.GoOffDuty(officers_pb2.GoOffDutyRequest(officer_id=args.officer),
                                                    timeout=CALL_TIMEOUT_S))
                print(f"{args.officer} off duty")

    try:
        return int(run(go(), args.addr, TARGET))
    except KeyboardInterrupt:
        return 0


def _off_duty(args: argparse.Namespace) -> int:
    from lfr.v1 import officers_pb2

    request = officers_pb2.GoOffDutyRequest(officer_id=args.officer)
    _officers(args, lambda stub: stub.GoOffDuty(request, timeout=CALL_TIMEOUT_S), identity=args.officer)
    print(f"{args.officer} off duty")
    return 0


def _status(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict
    from lfr.v1 import officers_pb2

    request = officers_pb2.ListOfficersRequest(zone=args.zone)
    reply = _officers(args, lambda stub: stub.ListOfficers(request, timeout=CALL_TIMEOUT_S))
    for s in reply.officers:
        print(json.dumps(MessageToDict(s)) if args.json else _state_line(s))
    if not args.json and not reply.officers:
        print("no officer on duty" + (f" in {args.zone}" if args.zone else ""))
    return 0


def _zones(text: str) -> list[str]:
    return [z.strip() for z in text.split(",") if z.strip()]


def _assignment_line(a: Any) -> str:
    left_h = max(0.0, (a.expires_unix_ns - time.time_ns()) / 3.6e12)
    return f"{a.officer_id} zone={a.zone} expires in {left_h:.1f} h (assigned by {a.assigned_by})"


def _assign(args: argparse.Namespace) -> int:
    from lfr.v1 import officers_pb2

    request = officers_pb2.AssignZonesRequest(officer_id=args.officer, zones=_zones(args.zones),
                                              duration_s=round(args.hours * 3600))
    for a in _officers(args, lambda stub: stub.AssignZones(request, timeout=CALL_TIMEOUT_S)).assignments:
        print(_assignment_line(a))
    return 0


def _unassign(args: argparse.Namespace) -> int:
    from lfr.v1 import officers_pb2

    request = officers_pb2.RevokeAssignmentRequest(officer_id=args.officer, zones=_zones(args.zones))
    gone = _officers(args, lambda stub: stub.RevokeAssignment(request, timeout=CALL_TIMEOUT_S)).zones
    print(f"{args.officer}: revoked {','.join(gone)}" if gone else f"{args.officer}: no such assignment")
    return 0


def _assignments(args: argparse.Namespace) -> int:
    from lfr.v1 import officers_pb2

    request = officers_pb2.ListAssignmentsRequest(officer_id=args.officer or "")
    reply = _officers(args, lambda stub: stub.ListAssignments(request, timeout=CALL_TIMEOUT_S))
    for a in reply.assignments:
        print(_assignment_line(a))
    if not reply.assignments:
        print("no live assignment")
    return 0


def _register(args: argparse.Namespace) -> int:
    from lfr.v1 import officers_pb2

    request = officers_pb2.RegisterDeviceRequest(device_id=args.device, officer_id=args.officer)
    reg = _devices(args, lambda stub: stub.RegisterDevice(request, timeout=CALL_TIMEOUT_S))
    print(f"device {reg.device_id} registered to {reg.officer_id} (by {reg.registered_by})")
    return 0


def _unregister(args: argparse.Namespace) -> int:
    from lfr.v1 import officers_pb2

    request = officers_pb2.UnregisterDeviceRequest(device_id=args.device)
    gone = _devices(args, lambda stub: stub.UnregisterDevice(request, timeout=CALL_TIMEOUT_S)).removed
    print(f"device {gone.device_id} unregistered (was {gone.officer_id}'s)")
    return 0


def _listen(args: argparse.Namespace) -> int:
    from lfr.v1 import officers_pb2, officers_pb2_grpc

    from services.common.grpc_client import aio_channel
    from services.officers.device_client import describe, listen_device

    async def go() -> None:
        stop = asyncio.Event()
        async with aio_channel(args.addr, identity=args.officer or None) as channel:
            stub = officers_pb2_grpc.DeviceServiceStub(channel)

            async def on_alert(msg: officers_pb2.DeviceAlert) -> None:
                d = describe(msg)
                if args.json:
                    print(json.dumps(d), flush=True)
                else:
                    print(f"ALERT {d['alert_id']} subject={d['subject_id']} score={d['score']} camera={d['camera_id']} "
                          f"zone={d['zone']} level={d['escalation_level']} crop={d['live_crop_bytes']}B "
                          f"enrolled={d['watchlist_image_bytes']}B two_person={d['two_person']}", flush=True)
                if args.ack and args.officer:
                    await stub.Acknowledge(officers_pb2.AcknowledgeRequest(
                        alert_id=msg.alert.alert_id, officer_id=args.officer, device_id=args.device),
                        timeout=CALL_TIMEOUT_S)

            if not args.json:
                print(f"device {args.device} listening on {args.addr} (Ctrl-C to stop)", flush=True)
            await listen_device(args.addr, args.device, on_alert, stop, officer_id=args.officer)

    try:
        run(go(), args.addr, TARGET)
    except KeyboardInterrupt:
        pass
    return 0
