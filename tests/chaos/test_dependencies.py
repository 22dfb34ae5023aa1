"""Dependency restarts: Redis, Kafka, Milvus and Triton of the SHARED local
stack are stopped and started again in turn (``services.stack.manager``), each one
restored before the next. While one is down, every service that needs it (it exports
``lfr_dependency_up{dependency=...}``) must turn NOT_SERVING (gRPC health, polled during
the outage), and SERVING after; no service may crash or be restarted (PIDs unchanged:
they reconnect with backoff). Then a Hamilton pass on a camera of its own must give
exactly one alert at the device (the alert flow resumed)."""

from __future__ import annotations

import asyncio
import time

import pytest

from chaos_support import LMM_ID, FaultResult, Rig, health_of
from services.cli.launch import metric, scrape
from test_kill import off_duty, on_duty

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(420)]

DOWN_TIMEOUT_S = 30.0  # the services see the outage within the 5 s health re-check (+ its 5 s timeout)


def _needs(rig: Rig, dependency: str) -> list[str]:
    out = []
    for name, svc in rig.services().items():
        if name == "ingest":
            continue
        page = scrape(svc.metrics_port)
        if any(n == "lfr_dependency_up" and dict(ls).get("dependency") == dependency for (n, ls) in page):
            out.append(name)
    return out


@pytest.mark.parametrize("dependency", ["redis", "kafka", "milvus", "triton"])
async def test_dependency_restart(rig: Rig, dependency: str) -> None:
    from services.stack import manager

    comp = manager.load_components(only=[dependency])[0]
    needs = await asyncio.to_thread(_needs, rig, dependency)
    assert needs, f"no service declares {dependency}"
    pids = rig.pids()
    statuses: dict[str, set[str]] = {n: set() for n in rig.services() if n != "ingest"}
    stopped = time.monotonic()
    await asyncio.to_thread(comp.stop)
    try:
        deadline = time.monotonic() + DOWN_TIMEOUT_S
        while time.monotonic() < deadline:
            for name in statuses:
                statuses[name].add(str(await health_of(rig.services()[name].grpc_port)))
            if all("NOT_SERVING" in statuses[n] for n in needs):
                break
            await asyncio.sleep(0.5)
        down_s = time.monotonic() - stopped
    finally:
        health = await asyncio.to_thread(comp.start)
        assert health.healthy, f"{dependency} did not come back: {health.detail}"
    restored = time.monotonic()
    deadline = time.monotonic() + 120
    while True:
        now = {n: await health_of(rig.services()[n].grpc_port) for n in statuses}
        if all(v == "SERVING" for v in now.values()):
            break
        assert time.monotonic() < deadline, f"not SERVING 120 s after {dependency} came back: {now}"
        rig.check_alive()
        await asyncio.sleep(0.5)
    serving_s = time.monotonic() - restored
    gauges = {n: metric(scrape(rig.services()[n].metrics_port), "lfr_dependency_up", dependency=dependency)
              for n in needs}
    # the alert flow: a pass streamed after the restore alerts exactly once at the device
    camera = rig.cameras[f"dep-{dependency}"]
    officer, device = await on_duty(rig, camera.zone)
    try:
        await rig.stream(camera)
        await rig.wait_drained()
        flow_s = time.monotonic() - restored
        await rig.settle_device(camera.id, 1)
        delivered, duplicated, unexpected = rig.tally(camera.id, {LMM_ID})
    finally:
        await off_duty(officer, device)
    not_serving = sorted(n for n in needs if "NOT_SERVING" in statuses[n])
    result = rig.record(FaultResult(
        fault=f"restart {dependency}", kind="dependency restart", expected=1, delivered=delivered,
        duplicated=duplicated, unexpected=unexpected, recover_s=round(serving_s, 1), flow_s=round(flow_s, 1),
        pid_stable=rig.pids() == pids,
        note=f"down {down_s:.1f} s; NOT_SERVING seen: {','.join(not_serving)} (needs: {','.join(needs)})"))
    print(f"\n{result}")
    assert rig.pids() == pids, f"a service restarted during the {dependency} outage: {pids} -> {rig.pids()}"
    assert not_serving == sorted(needs), f"health during the {dependency} outage: {statuses}"
    assert all(v == 1 for v in gauges.values()), gauges
    assert (result.lost, result.duplicated, result.unexpected) == (0, 0, 0)
