"""`lfr officer on-duty|off-duty|status` and `lfr device listen DEVICE` (plays the
officer app), over the officers service's gRPC API (default 127.0.0.1:50056)."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from services.common.grpc_client import aio_channel
from services.common.ids import cli_id
from services.officers.demo import OFFICERS_ADDR


def add_parser(sub: Any) -> None:
    p = sub.add_parser("officer", help="officer availability (cameras run only while officers are on duty)")
    osub = p.add_subparsers(dest="officer_command", required=True)

    on = osub.add_parser("on-duty", help="go on duty in one or more zones")
    on.add_argument("officer", type=cli_id("officer id"), help="officer id")
    on.add_argument("--zone", action="append", required=True, help="zone (repeat for several)")
    on.add_argument("--device", required=True, type=cli_id("device id"), help="the officer's device id (alerts go there)")
    on.add_argument("--lat", type=float, help="latitude (nearest officers get alerts first)")
    on.add_argument("--lon", type=float, help="longitude")
    on.add_argument("--supervisor", action="store_true", help="the zone's supervisor (gets escalations)")
    on.add_argument("--stay", action="store_true",
                    help="keep heartbeating until Ctrl-C, then go off duty (without it availability lapses after the TTL)")
    on.add_argument("--addr", default=OFFICERS_ADDR, help="officers service (default %(default)s)")
    on.set_defaults(func=_on_duty)

    off = osub.add_parser("off-duty", help="go off duty")
    off.add_argument("officer", type=cli_id("officer id"))
    off.add_argument("--addr", default=OFFICERS_ADDR)
    off.set_defaults(func=_off_duty)

    st = osub.add_parser("status", help="officers on duty")
    st.add_argument("--zone", default="", help="only this zone")
    st.add_argument("--json", action="store_true")
    st.add_argument("--addr", default=OFFICERS_ADDR)
    st.set_defaults(func=_status)

    d = sub.add_parser("device", help="play an officer's device")
    dsub = d.add_subparsers(dest="device_command", required=True)
    li = dsub.add_parser("listen", help="print the alerts delivered to a device until Ctrl-C")
    li.add_argument("device", help="device id")
    li.add_argument("--officer", default="", help="officer id (for --ack)")
    li.add_argument("--ack", action="store_true", help="acknowledge each alert as it arrives (needs --officer)")
    li.add_argument("--json", action="store_true", help="one JSON object per alert")
    li.add_argument("--addr", default=OFFICERS_ADDR)
    li.set_defaults(func=_listen)


def _run(coro: Any, addr: str) -> Any:
    import grpc

    from services.common.errors import SetupError

    try:
        return asyncio.run(coro)
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            raise SetupError(f"officers service at {addr} unavailable: {e.details()}",
                             "start it (python -m services.officers) or pass --addr") from e
        raise SetupError(f"{e.code().name}: {e.details()}", "check the ids and the officer's state") from e


def _state_line(s: Any) -> str:
    from lfr.v1 import officers_pb2

    loc = f" at {s.location.latitude:.5f},{s.location.longitude:.5f}" if s.HasField("location") else ""
    left = max(0.0, (s.expires_unix_ns - time.time_ns()) / 1e9)
    role = " supervisor" if s.supervisor else ""
    return (f"{s.officer_id}{role} {officers_pb2.OfficerStatus.Name(s.status).removeprefix('OFFICER_STATUS_').lower()}"
            f" zones={','.join(s.zones)} device={s.device_id}{loc} expires in {left:.0f} s")


def _on_duty(args: argparse.Namespace) -> int:
    import grpc
    from lfr.v1 import officers_pb2, officers_pb2_grpc

    async def go() -> int:
        async with aio_channel(args.addr, identity=args.officer) as channel:
            stub = officers_pb2_grpc.OfficerServiceStub(channel)
            req = officers_pb2.GoOnDutyRequest(officer_id=args.officer, zones=args.zone, device_id=args.device,
                                               supervisor=args.supervisor)
            if args.lat is not None and args.lon is not None:
                req.location.CopyFrom(officers_pb2.GeoLocation(latitude=args.lat, longitude=args.lon))
            reply = await stub.GoOnDuty(req, timeout=10)
            print(_state_line(reply.state))
            if not args.stay:
                print(f"availability lapses in {reply.heartbeat_ttl_s} s without a heartbeat (use --stay)")
                return 0
            try:
                while True:
                    await asyncio.sleep(max(1.0, reply.heartbeat_ttl_s / 3))
                    await stub.Heartbeat(officers_pb2.HeartbeatRequest(officer_id=args.officer), timeout=10)
            finally:
                await asyncio.shield(stub.GoOffDuty(officers_pb2.GoOffDutyRequest(officer_id=args.officer), timeout=10))
                print(f"{args.officer} off duty")

    try:
        return int(_run(go(), args.addr))
    except KeyboardInterrupt:
        return 0


def _off_duty(args: argparse.Namespace) -> int:
    import grpc
    from lfr.v1 import officers_pb2, officers_pb2_grpc

    async def go() -> None:
        async with aio_channel(args.addr, identity=args.officer) as channel:
            await officers_pb2_grpc.OfficerServiceStub(channel).GoOffDuty(
                officers_pb2.GoOffDutyRequest(officer_id=args.officer), timeout=10)

    _run(go(), args.addr)
    print(f"{args.officer} off duty")
    return 0


def _status(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf.json_format import MessageToDict
    from lfr.v1 import officers_pb2, officers_pb2_grpc

    async def go() -> Any:
        async with aio_channel(args.addr) as channel:
            return await officers_pb2_grpc.OfficerServiceStub(channel).ListOfficers(
                officers_pb2.ListOfficersRequest(zone=args.zone), timeout=10)

    reply = _run(go(), args.addr)
    for s in reply.officers:
        print(json.dumps(MessageToDict(s)) if args.json else _state_line(s))
    if not args.json and not reply.officers:
        print("no officer on duty" + (f" in {args.zone}" if args.zone else ""))
    return 0


def _listen(args: argparse.Namespace) -> int:
    import grpc
    from lfr.v1 import officers_pb2, officers_pb2_grpc

    from services.officers.demo import describe, listen_device

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
                        alert_id=msg.alert.alert_id, officer_id=args.officer, device_id=args.device), timeout=10)

            if not args.json:
                print(f"device {args.device} listening on {args.addr} (Ctrl-C to stop)", flush=True)
            await listen_device(args.addr, args.device, on_alert, stop, officer_id=args.officer)

    try:
        _run(go(), args.addr)
    except KeyboardInterrupt:
        pass
    return 0
