"""kill -9 each service in turn during a run of the Hamilton clip, restart it (as a
supervisor would) and count, AT THE DEVICE, the alerts expected (Lin-Manuel
Miranda, enrolled: one alert for the pass), delivered and duplicated; the seconds
to SERVING again and until the alert flow resumed (every consumer group drained).
The kill is timed to land while the service is busy with the run (its input
counter moved), i.e. mid-stream and, for alerts/officers, around the alert itself.

Also the crash window of the alerts service between the broker's ack of an alert
and its "emitted" mark, made deterministic: the same alert (same id, rebuilt, so a
different alert time) published again on the alerts topic, as the restarted
service would; the device must still see it once (the officers' idempotency).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from chaos_support import LMM_ID, Device, FaultResult, Rig
from services.cli.launch import DutyOfficer, metric, scrape

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

# the service whose counter says "busy with the run now", the counter, how far it must move
TRIGGERS: dict[str, tuple[str, str, float, dict[str, str]]] = {
    "ingest": ("ingest", "lfr_frames_published_total", 10, {}),
    "recognizer": ("recognizer", "lfr_frames_consumed_total", 5, {}),
    "matcher": ("matcher", "lfr_messages_in_total", 2, {}),
    "alerts": ("alerts", "lfr_messages_in_total", 1, {}),
    "officers": ("alerts", "lfr_alerts_total", 1, {}),
    "watchlist": ("ingest", "lfr_frames_published_total", 5, {}),
}


async def on_duty(rig: Rig, zone: str) -> tuple[DutyOfficer, Device]:
    officer = DutyOfficer(rig.officer_id, [zone], ttl_s=60)
    await officer.start()
    device = Device(rig.officers.grpc_port, rig.device_id, rig.officer_id)
    await device.start()
    rig.device = device
    await asyncio.sleep(0.5)
    return officer, device


async def off_duty(officer: DutyOfficer, device: Device) -> None:
    await device.stop()
    await officer.stop()


def _value(port: int, name: str, labels: dict[str, str]) -> float:
    try:
        return metric(scrape(port), name, **labels)
    except OSError:
        return 0.0


@pytest.mark.parametrize("target", list(TRIGGERS))
async def test_kill_9_and_restart(rig: Rig, target: str) -> None:
    camera = rig.cameras[f"kill-{target}"]
    officer, device = await on_duty(rig, camera.zone)
    watcher, counter, step, labels = TRIGGERS[target]
    base = {n: _value(s.metrics_port, counter, labels) for n, s in rig.services().items() if n == watcher}
    timing: dict[str, float] = {}
    others_before: dict[str, int] = {}

    async def fault() -> None:
        svc = rig.services()[watcher]
        await rig.wait_metric(svc.metrics_port, counter, base.get(watcher, 0.0) + step, timeout_s=120, **labels)
        others_before.update({n: p for n, p in rig.pids().items() if n not in (target, "ingest")})
        timing["killed"] = time.monotonic()
        restart_s, serving_s = await rig.kill_and_restart(target)
        timing["restart_s"], timing["serving_s"] = restart_s, serving_s

    try:
        await rig.stream(camera, during=fault)
        await rig.wait_drained()
        flow_s = time.monotonic() - timing["killed"]
        await rig.settle_device(camera.id, 1)
        delivered, duplicated, unexpected = rig.tally(camera.id, {LMM_ID})
        others_after = {n: p for n, p in rig.pids().items() if n in others_before}
        result = rig.record(FaultResult(
            fault=f"kill -9 {target}", kind="kill -9 + restart", expected=1, delivered=delivered,
            duplicated=duplicated, unexpected=unexpected, recover_s=round(timing["serving_s"], 1),
            flow_s=round(flow_s, 1), pid_stable=others_after == others_before,
            note=f"killed after {counter}+{step:g}; restarted in {timing['restart_s']:.1f} s"))
    finally:
        await off_duty(officer, device)
    print(f"\n{result}")
    assert result.pid_stable, f"another service restarted meanwhile: {others_before} -> {others_after}"
    assert (result.lost, result.duplicated, result.unexpected) == (0, 0, 0), \
        f"kill -9 {target}: {[(a.alert_id, a.subject_id) for a in device.alerts_for(camera.id)]}"


async def test_alert_published_twice_reaches_the_device_once(rig: Rig) -> None:
    """The alerts service's crash window, made deterministic: the alert re-published
    (same id, rebuilt) as a restarted alerts service would, twice."""
    from aiokafka import AIOKafkaProducer

    from lfr.v1 import alerts_pb2
    from services.common.kafka import make_headers, record_key

    camera = rig.cameras["redelivery"]
    officer, device = await on_duty(rig, camera.zone)
    try:
        await rig.stream(camera)
        await rig.wait_drained()
        await rig.settle_device(camera.id, 1)
        first = device.alerts_for(camera.id)
        assert len(first) == 1, f"the run itself must alert once: {len(first)}"
        producer = AIOKafkaProducer(bootstrap_servers=rig.layout.bootstrap, acks="all", enable_idempotence=True,
                                    max_request_size=8 * 1024 * 1024)
        await producer.start()
        started = time.monotonic()
        try:
            for _ in range(2):
                again = alerts_pb2.Alert()
                again.CopyFrom(first[0])
                again.alert_unix_ns = time.time_ns()
                await producer.send_and_wait(rig.layout.topics.alerts, again.SerializeToString(),
                                             key=record_key(again.alert_id), headers=make_headers(again, "alerts"))
        finally:
            await producer.stop()
        await rig.wait_drained()
        await asyncio.sleep(3.0)  # a duplicate would reach the device within the stream's poll
        delivered, duplicated, unexpected = rig.tally(camera.id, {LMM_ID})
        result = rig.record(FaultResult(
            fault="alert re-published x2", kind="alerts crash window", expected=1, delivered=delivered,
            duplicated=duplicated, unexpected=unexpected, recover_s=None,
            flow_s=round(time.monotonic() - started, 1), note="same alert id on lfr.alerts twice more"))
    finally:
        await off_duty(officer, device)
    print(f"\n{result}")
    assert (result.lost, result.duplicated, result.unexpected) == (0, 0, 0)
