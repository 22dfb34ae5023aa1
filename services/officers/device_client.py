"""The officer app's side for demos and the CLI: a ``DeviceService.Subscribe``
stream that hands each DeviceAlert to a callback, reconnecting when the
officers service restarts (the server never sends an alert twice to one device,
so reconnecting is safe).

For `make up` / `lfr demo`: run the officers service (it needs
``LFR_OFFICERS__ALERTS_TOPIC`` = the alerts topic, ``LFR_OFFICERS__AUDIT_TOPIC``,
``LFR_OFFICERS__GROUP_ID``, ``LFR_OFFICERS__CAMERAS_FILE``), put an officer on
duty (``services.cli.launch.DutyOfficer``: device ``<officer>-device``), and
``await listen_device(addr, "demo-officer-device", on_alert, stop)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from lfr.v1 import officers_pb2
from services.common.ports import local_address

log = logging.getLogger(__name__)

OFFICERS_ADDR = local_address("officers")


async def listen_device(addr: str, device_id: str, on_alert: Callable[[officers_pb2.DeviceAlert], Any],
                        stop: asyncio.Event, *, officer_id: str = "", reconnect_s: float = 1.0) -> int:
    """Deliver the device's alerts to ``on_alert`` (sync or async) until ``stop``; returns how many."""
    import grpc
    from lfr.v1 import officers_pb2_grpc

    from services.common.grpc_client import aio_channel

    count = 0
    while not stop.is_set():
        async with aio_channel(addr, identity=officer_id or None) as channel:
            call = officers_pb2_grpc.DeviceServiceStub(channel).Subscribe(
                officers_pb2.SubscribeRequest(device_id=device_id, officer_id=officer_id))
            stopper = asyncio.ensure_future(stop.wait())
            try:
                while not stop.is_set():
                    reader = asyncio.ensure_future(call.read())
                    done, _ = await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    if reader not in done:
                        reader.cancel()
                        break
                    msg = reader.result()
                    if msg is grpc.aio.EOF:
                        break
                    count += 1
                    result = on_alert(msg)
                    if asyncio.iscoroutine(result):
                        await result
            except grpc.aio.AioRpcError as e:
                log.info("device stream interrupted; reconnecting", extra={"device_id": device_id,
                                                                          "code": e.code().name})
            finally:
                stopper.cancel()
                call.cancel()
        try:
            await asyncio.wait_for(stop.wait(), timeout=reconnect_s)
        except asyncio.TimeoutError:
            pass
    return count


def describe(msg: officers_pb2.DeviceAlert) -> dict[str, Any]:
    """One DeviceAlert as a JSON-able dict (sizes of the images, never their bytes)."""
    a = msg.alert
    return {
        "alert_id": a.alert_id, "subject_id": a.subject_id, "watchlist_id": a.watchlist_id, "camera_id": a.camera_id,
        "zone": a.zone, "score": round(a.best_score, 4), "escalation_level": msg.escalation_level,
        "two_person": msg.two_person_confirmation, "state": officers_pb2.AlertState.Name(msg.state),
        "ack_deadline_unix_ns": msg.ack_deadline_unix_ns, "live_crop_bytes": len(a.live_crop.jpeg),
        "watchlist_image_bytes": len(a.watchlist_image.jpeg),
        "frame_to_alert_ms": round(max(0, a.alert_unix_ns - a.capture_unix_ns) / 1e6, 1),
    }
