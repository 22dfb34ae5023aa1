"""Support of the chaos suite: one real pipeline on ports +5000 with its
own topics (``lfr.chaos.<tag>.*.v1``), consumer groups (``lfr-chaos-<tag>-*``) and
camera ids (``chaos-<tag>-*``), the officers service, an officer on duty and a
device subscribed to ``DeviceService.Subscribe`` that records every DeviceAlert
it receives (raw: a duplicate is counted, not hidden).

The services are started with the launcher's public pieces
(:class:`services.cli.launch.ServiceProcess`, :class:`Pipeline`), so whatever the
launcher adds (TLS) arrives here too. A "supervisor" restart is what Kubernetes
does after a crash: the same command, the same environment, at once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from services.cli.launch import (
    OFFICERS, Pipeline, PipelineLayout, ServiceProcess, grpc_health, group_lag, metric, scrape, state_dir,
    write_registry,
)
from services.common.cameras import Camera
from services.common.errors import SetupError

REPO = Path(__file__).resolve().parents[2]
DATA = (REPO.parent / "shared" / "data").resolve()
HAMILTON = DATA / "video" / "hamilton_white_house_short_clip.mp4"
LMM_IMAGE = DATA / "faces" / "lin_manuel_miranda_1.png"
LMM_ID = "lin-manuel-miranda"
PORT_OFFSET = 5000
CHAOS_FPS = 5.0
RESULTS_FILE = state_dir() / "chaos-results.json"


class OfficersProcess(ServiceProcess):
    """The officers service of the layout, exactly as the launcher starts it (TLS included)."""

    def __init__(self, layout: PipelineLayout) -> None:
        super().__init__(OFFICERS, layout)
        self.env["LFR_OFFICERS__HEARTBEAT_TTL_S"] = "300"

    @property
    def group(self) -> str:
        return self.layout.group(OFFICERS)


class Device:
    """An officer's device: ``DeviceService.Subscribe`` (reconnecting, as the app does),
    every DeviceAlert recorded raw; each is acknowledged (the officer saw it)."""

    def __init__(self, port: int, device_id: str, officer_id: str) -> None:
        self.port = port
        self.device_id = device_id
        self.officer_id = officer_id
        self.received: list[Any] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[int] | None = None

    async def start(self) -> None:
        from services.officers.device_client import listen_device

        self._task = asyncio.create_task(listen_device(f"127.0.0.1:{self.port}", self.device_id, self._on_alert,
                                                       self._stop, officer_id=self.officer_id, reconnect_s=0.5))

    async def _on_alert(self, msg: Any) -> None:
        self.received.append(msg)

    def alerts_for(self, camera_id: str) -> list[Any]:
        return [m.alert for m in self.received if m.alert.camera_id == camera_id]

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=5)


@dataclasses.dataclass
class FaultResult:
    """One fault's outcome at the device."""

    fault: str
    kind: str  # "kill -9 + restart" or "dependency restart"
    expected: int
    delivered: int  # distinct alerts of the camera at the device
    duplicated: int  # deliveries beyond the first of the same alert id
    unexpected: int  # alerts the expected set does not hold (a pass split, a wrong subject)
    recover_s: float | None  # fault -> health SERVING again
    flow_s: float | None  # fault -> the pipeline drained again (alert flow resumed)
    pid_stable: bool = True  # no other service restarted/crashed meanwhile
    note: str = ""

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.delivered)


async def dependency_lags(layout: PipelineLayout, groups: list[tuple[str, str]]) -> dict[str, int]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=layout.bootstrap, request_timeout_ms=10_000)
    consumer = AIOKafkaConsumer(bootstrap_servers=layout.bootstrap, enable_auto_commit=False, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        return {g: await group_lag(admin, consumer, g, t) for g, t in groups}
    finally:
        await consumer.stop()
        await admin.close()


class Rig:
    """The chaos suite's pipeline, officers service, duty officer and device."""

    def __init__(self, tag: str, layout: PipelineLayout, cameras: dict[str, Camera]) -> None:
        self.tag = tag
        self.layout = layout
        self.cameras = cameras
        self.pipeline = Pipeline(layout)
        self.officers = OfficersProcess(layout)
        self.device: Device | None = None
        self.officer_id = f"chaos-{tag}-officer"
        self.device_id = f"{self.officer_id}-device"
        self.results: list[FaultResult] = []
        self.watchlist_id = ""
        self.restarting: set[str] = set()  # killed on purpose, its supervisor restarting it

    # --- processes -------------------------------------------------------------------

    def services(self) -> dict[str, ServiceProcess]:
        return {**self.pipeline.services, "officers": self.officers}

    def pids(self) -> dict[str, int]:
        return {n: s.proc.pid for n, s in self.services().items() if s.proc is not None and s.proc.poll() is None}

    def check_alive(self) -> None:
        for name, svc in self.services().items():
            if name in self.restarting:
                continue
            if svc.proc is not None and (why := svc.died()) is not None:
                raise SetupError(why, f"read {svc.log_file}")

    def groups(self) -> list[tuple[str, str]]:
        return [*self.layout.consumer_groups(), (self.officers.group, self.layout.topics.alerts)]

    async def wait_drained(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        calm = 0
        while calm < 2:  # twice in a row: records in flight between stages have landed
            self.check_alive()
            lags = await dependency_lags(self.layout, self.groups())
            calm = calm + 1 if not any(lags.values()) else 0
            if time.monotonic() > deadline:
                raise SetupError(f"the chaos pipeline did not drain in {timeout_s:.0f} s: {lags}",
                                 f"read {self.layout.log_dir}/{self.layout.log_prefix}*.log")
            await asyncio.sleep(0.5)

    async def kill_and_restart(self, name: str) -> tuple[float, float]:
        """kill -9 the service's process group, restart it at once (a supervisor), wait for
        SERVING; (seconds from the kill to the restart, to SERVING)."""
        svc = self.services()[name]
        assert svc.proc is not None
        killed = time.monotonic()
        self.restarting.add(name)
        try:
            os.killpg(svc.proc.pid, signal.SIGKILL)
            await asyncio.to_thread(svc.proc.wait, 10)
            restarted = await self._restart(svc, killed)
        finally:
            self.restarting.discard(name)
        await svc.wait_serving(120)
        return restarted, time.monotonic() - killed

    async def _restart(self, svc: ServiceProcess, killed: float) -> float:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the kernel frees the listening ports at once; be sure
            try:
                svc.start()
                break
            except SetupError:
                await asyncio.sleep(0.2)
        else:
            svc.start()
        return time.monotonic() - killed

    # --- streaming ---------------------------------------------------------------------

    def ingest_for(self, camera: Camera) -> ServiceProcess:
        registry = write_registry(self.layout.cameras_file.parent / f"ingest-{camera.id}.yaml", [camera])
        svc = ServiceProcess("ingest", self.layout, registry)
        self.pipeline.services["ingest"] = svc
        return svc

    async def stream(self, camera: Camera, during: Any = None, timeout_s: float = 180.0) -> float:
        """Ingest streams ``camera``'s clip once (a restarted ingest starts it again);
        ``during`` (a coroutine function) runs alongside. Returns when both are done and
        ingest is stopped (SIGTERM: it drains); the seconds ingest streamed."""
        ingest = self.ingest_for(camera)
        ingest.start()
        await ingest.wait_serving(60)
        started = time.monotonic()
        side = asyncio.create_task(during()) if during is not None else None
        try:
            while True:
                self.check_alive()
                if side is not None and side.done() and side.exception() is not None:
                    raise side.exception()  # type: ignore[misc]
                if side is None or side.done():
                    svc = self.pipeline.services["ingest"]
                    try:
                        page = await asyncio.to_thread(scrape, svc.metrics_port)
                    except OSError:
                        page = {}
                    if metric(page, "lfr_frames_captured_total", camera=camera.id) > 0 and \
                            metric(page, "lfr_camera_active", camera=camera.id) == 0:
                        break  # the source ended
                if time.monotonic() - started > timeout_s:
                    raise SetupError(f"stream of {camera.id} did not finish in {timeout_s:.0f} s", "read the logs")
                await asyncio.sleep(0.25)
            await asyncio.sleep(0.5)  # the last frame's publish
        finally:
            if side is not None and not side.done():
                side.cancel()
            await asyncio.to_thread(self.pipeline.stop, ("ingest",))
        return time.monotonic() - started

    async def wait_metric(self, port: int, name: str, at_least: float, timeout_s: float = 90.0,
                          **labels: str) -> float:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                value = metric(await asyncio.to_thread(scrape, port), name, **labels)
                if value >= at_least:
                    return value
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SetupError(f"{name}{labels} on :{port} did not reach {at_least} in {timeout_s:.0f} s",
                                 "read the logs")
            await asyncio.sleep(0.2)

    async def settle_device(self, camera_id: str, expected: int, timeout_s: float = 20.0) -> None:
        """Until the device has ``expected`` alerts of the camera (or the timeout), then 2 s more
        so that a late duplicate would be seen too."""
        assert self.device is not None
        deadline = time.monotonic() + timeout_s
        while len(self.device.alerts_for(camera_id)) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        await asyncio.sleep(2.0)

    def tally(self, camera_id: str, expected_ids: set[str]) -> tuple[int, int, int]:
        """(distinct expected alerts delivered, duplicated deliveries, unexpected alerts) at the device."""
        assert self.device is not None
        got = self.device.alerts_for(camera_id)
        ids = [a.alert_id for a in got]
        distinct = set(ids)
        per_pass = {a.subject_id for a in got}
        delivered = len({a.subject_id for a in got if a.subject_id in expected_ids})
        duplicated = len(ids) - len(distinct)
        unexpected = len(distinct) - delivered  # more than one alert for a subject's pass, or another subject
        del per_pass
        return delivered, duplicated, unexpected

    def record(self, result: FaultResult) -> FaultResult:
        self.results.append(result)
        self.write_results()
        return result

    def write_results(self, extra: dict[str, Any] | None = None) -> None:
        """Merge this rig's results into RESULTS_FILE (one file per pytest run: the rigs of
        the suite's modules add to it; a file of an earlier run is replaced)."""
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        old: dict[str, Any] = {}
        if RESULTS_FILE.exists():
            try:
                old = json.loads(RESULTS_FILE.read_text())
            except ValueError:
                old = {}
        if old.get("run") != run_id():
            old = {"run": run_id()}
        faults = {f["fault"]: f for f in old.get("faults", [])}
        faults |= {r.fault: dataclasses.asdict(r) | {"lost": r.lost} for r in self.results}
        old["faults"] = list(faults.values())
        old["written_unix"] = int(time.time())
        old |= extra or {}
        RESULTS_FILE.write_text(json.dumps(old, indent=2) + "\n")


@functools.lru_cache(maxsize=1)
def run_id() -> str:
    """This pytest process's run (the results file's key)."""
    return f"{os.getpid()}-{int(time.time())}"


def table(results: list[FaultResult]) -> str:
    head = f"{'fault':<22} {'expected':>8} {'delivered':>9} {'lost':>4} {'duplicated':>10} {'unexpected':>10} " \
           f"{'SERVING s':>9} {'flowing s':>9}  note"
    rows = [head, "-" * len(head)]
    for r in results:
        rows.append(f"{r.fault:<22} {r.expected:>8} {r.delivered:>9} {r.lost:>4} {r.duplicated:>10} "
                    f"{r.unexpected:>10} {_s(r.recover_s):>9} {_s(r.flow_s):>9}  {r.note}")
    return "\n".join(rows)


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


async def health_of(port: int) -> str | None:
    return await grpc_health(port)
