"""The demo's device path ("a subscribed device stream shows the alert
arriving"): the officers service started as `lfr demo` starts it
(services.cli.launch: the layout's alerts/audit topics, group, cameras), an
officer on duty in the camera's zone (DutyOfficer, device ``<officer>-device``),
that device subscribed with the demo's own DeviceListener
(DeviceService.Subscribe via services.officers.device_client.listen_device), the
Hamilton clip streamed with Lin-Manuel Miranda enrolled: his one alert of the
pass arrives ON THE DEVICE, with the watchlist image and the live crop, and the
device's acknowledgement is recorded (GetAlert: ACKNOWLEDGED)."""

from __future__ import annotations

import pytest

from e2e_support import E2E, FACES_DIR
from lfr.v1 import officers_pb2, officers_pb2_grpc
from services.cli.demo import DeviceListener, Enrolment
from services.cli.launch import OFFICERS, ServiceProcess
from services.common.grpc_client import aio_channel

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

LMM = Enrolment(name="Lin-Manuel Miranda", subject_id="lin-manuel-miranda",
                image=FACES_DIR / "lin_manuel_miranda_1.png")


async def test_alert_arrives_on_the_demo_device(e2e: E2E, officers: ServiceProcess) -> None:
    await officers.wait_serving(60)
    camera = e2e.cameras["device"]
    officer_id = f"e2e-{e2e.tag}-officer"  # the officer E2E.run puts on duty (DutyOfficer: device <officer>-device)
    device = DeviceListener(e2e.layout.grpc_port(OFFICERS), officer_id, f"{officer_id}-device",
                            {LMM.subject_id: LMM.name})
    client = e2e.watchlists()
    wl = await e2e.new_watchlist(client, camera.deployment_id, "device")
    try:
        await client.enrol(wl, LMM)
        await device.start()
        result = await e2e.run("device")
        print(f"\n{result.summary()}")
        assert result.alerts_by_subject() == {LMM.subject_id: 1}, result.summary()
        await device.wait_for(1, timeout_s=15)
        assert device.failed() is None, device.failed()
        for v in device.views:
            print(v.line())
        assert [v.subject_id for v in device.views] == [LMM.subject_id], "one alert, on the device"
        view = device.views[0]
        assert view.alert_id == result.alerts[0].alert_id and view.camera == camera.id
        assert view.images_ok, "the device gets the watchlist image and the live crop side by side"
        assert view.acknowledged, "the device's Acknowledge was the first"
        assert view.frame_to_device_ms >= view.frame_to_alert_ms > 0
        async with aio_channel(f"127.0.0.1:{officers.grpc_port}", identity=officer_id) as ch:
            status = await officers_pb2_grpc.DeviceServiceStub(ch).GetAlert(
                officers_pb2.GetAlertRequest(alert_id=view.alert_id), timeout=10)
        assert status.state == officers_pb2.ALERT_STATE_ACKNOWLEDGED
    finally:
        await device.stop()
        await client.close(wl, "e2e test done")
        await client.close_channel()
