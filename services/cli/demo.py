"""`lfr demo [--video V] [--enrol NAME=IMAGE ...] [--seconds S] [--json]`.

1. starts the local stack (what is not running yet) and the services
   (watchlist, recognizer, matcher, alerts; logs in .lfr/logs/<service>.log);
2. creates a demo watchlist over the WatchlistService API for the demo camera's
   deployment (deploy/local/cameras.yaml: demo-cam-1 -> demo-op), authorised,
   valid for one hour, and enrols the given faces;
3. starts the officers service too, puts the demo officer on duty in the demo
   camera's zone with device ``demo-officer-device`` and subscribes that device
   (DeviceService.Subscribe, as the officer app does); subscribes to
   AlertService.StreamAlerts (to count what was raised), then starts the ingest service with
   a camera registry of its own (.lfr/demo/cameras.yaml: demo-cam-1, source =
   the video) which streams the video once (or, with --seconds, loops it for
   that long);
4. waits until everything streamed has gone through the pipeline (every
   consumer group committed to the end of its topic); each alert is printed as
   it ARRIVES ON THE DEVICE (subject, score, camera, frame-to-alert and
   frame-to-device latency, whether the watchlist image and the live crop came
   with it) and acknowledged from the device (JSON lines with --json);
5. closes (destroys) the watchlist, stops the services and the stack
   components it started, exits 0.

The pieces (:class:`WatchlistClient`, :class:`AlertListener`,
:func:`stream_pass`) are what ``lfr up`` and the e2e tests use too; the run
itself (services, watchlist, officer and device, alert stream, the teardown)
is :class:`DemoSession`, which ``lfr up`` runs as well.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.cli.launch import OFFICERS, PIPELINE_ORDER, DutyOfficer, Pipeline, PipelineLayout, \
    ServiceProcess, metric, scrape, state_dir, wait_drained, write_registry
from services.common.cameras import Camera, CameraRegistry
from services.common.errors import SetupError
from services.common.paths import REPO_ROOT

DEFAULT_VIDEO = Path("../shared/data/video/hamilton_white_house_short_clip.mp4")
DEFAULT_ENROL = "Lin-Manuel Miranda=../shared/data/faces/lin_manuel_miranda_1.png"
DEMO_CAMERA_ID = "demo-cam-1"
CAMERAS_FILE = Path("deploy/local/cameras.yaml")
WATCHLIST_VALIDITY_S = 3600


def repo_path(p: str | Path) -> Path:
    """A path given relative to the repository root (or absolute), resolved."""
    path = Path(p).expanduser()
    return (path if path.is_absolute() else REPO_ROOT / path).resolve()


class Enrolment(BaseModel):
    """One face to enrol: a display name, the subject id derived from it, an image."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1, max_length=200, description="display name")
    subject_id: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_.:-]*$", max_length=128, description="subject id")
    image: Path = Field(..., description="image file (absolute)")

    @classmethod
    def parse(cls, spec: str) -> "Enrolment":
        name, sep, image = spec.partition("=")
        if not sep or not name.strip() or not image.strip():
            raise argparse.ArgumentTypeError(f"--enrol {spec!r}: use NAME=IMAGE")
        slug = re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-") or "subject"
        return cls(name=name.strip(), subject_id=slug, image=repo_path(image.strip()))


def frame_to_alert_ms(alert: Any) -> float:
    """Capture to alert raised, in ms (the alerts service's clock), rounded to 0.1 ms."""
    return round(max(0, alert.alert_unix_ns - alert.capture_unix_ns) / 1e6, 1)


@dataclasses.dataclass(frozen=True)
class _AlertFields:
    """What both views show of an alert: ids, the subject's display name, score, camera and zone."""

    alert_id: str
    subject_id: str
    subject: str
    score: float
    camera: str
    zone: str

    @staticmethod
    def values(alert: Any, names: dict[str, str]) -> dict[str, Any]:
        return {"alert_id": alert.alert_id, "subject_id": alert.subject_id,
                "subject": names.get(alert.subject_id, alert.subject_id), "score": round(float(alert.best_score), 4),
                "camera": alert.camera_id, "zone": alert.zone}


@dataclasses.dataclass(frozen=True)
class AlertView(_AlertFields):
    """What the demo prints about an alert."""

    latency_ms: float
    match_count: int
    watchlist_id: str
    capture_unix_ns: int

    @classmethod
    def of(cls, alert: Any, names: dict[str, str]) -> "AlertView":
        return cls(**_AlertFields.values(alert, names), latency_ms=frame_to_alert_ms(alert),
                   match_count=int(alert.match_count), watchlist_id=alert.watchlist_id,
                   capture_unix_ns=int(alert.capture_unix_ns))

    def line(self) -> str:
        return (f"ALERT  {self.subject:24s} score={self.score:.3f}  camera={self.camera}  "
                f"frame-to-alert={self.latency_ms:.0f} ms")

    def json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


class WatchlistClient:
    """The WatchlistService calls the demo makes (async gRPC)."""

    def __init__(self, port: int, timeout_s: float = 60.0, identity: str | None = None) -> None:

        from lfr.v1 import watchlist_pb2_grpc

        from services.common.grpc_client import aio_channel

        self.channel = aio_channel(f"127.0.0.1:{port}", identity=identity)
        self.stub = watchlist_pb2_grpc.WatchlistServiceStub(self.channel)
        self.timeout_s = timeout_s

    async def close_channel(self) -> None:
        await self.channel.close()

    async def create(self, deployment_id: str, *, name: str, authorisation_ref: str, officer: str,
                     purpose: str = "demo", criteria: str = "demo subjects", valid_s: float = WATCHLIST_VALIDITY_S
                     ) -> str:
        from lfr.v1 import watchlist_pb2

        now = time.time_ns()
        resp = await self.stub.CreateWatchlist(watchlist_pb2.CreateWatchlistRequest(
            name=name, deployment_id=deployment_id, authorisation_ref=authorisation_ref,
            authorising_officer=officer, purpose=purpose, criteria=criteria,
            valid_from_unix_ns=now - 2_000_000_000,  # the window starts now (minus the clock's rounding)
            valid_until_unix_ns=now + int(valid_s * 1e9)), timeout=self.timeout_s)
        return str(resp.watchlist.watchlist_id)

    async def enrol(self, watchlist_id: str, enrolment: Enrolment, image: bytes | None = None,
                    source_ref: str | None = None) -> Any:
        from lfr.v1 import common_pb2, watchlist_pb2

        data = image if image is not None else enrolment.image.read_bytes()
        return await self.stub.EnrolSubject(watchlist_pb2.EnrolSubjectRequest(
            watchlist_id=watchlist_id, subject_id=enrolment.subject_id, display_name=enrolment.name,
            category=common_pb2.SUBJECT_CATEGORY_WANTED,
            images=[watchlist_pb2.EnrolImage(image=data, source_ref=source_ref or f"file:{enrolment.image}")]),
            timeout=self.timeout_s)

    async def close(self, watchlist_id: str, reason: str) -> Any:
        from lfr.v1 import watchlist_pb2

        return await self.stub.CloseWatchlist(watchlist_pb2.CloseWatchlistRequest(
            watchlist_id=watchlist_id, reason=reason), timeout=self.timeout_s)


class AlertListener:
    """A StreamAlerts subscription collecting alerts (and calling ``on_alert``)."""

    def __init__(self, port: int, deployment_id: str = "", camera_ids: tuple[str, ...] = (),
                 on_alert: Callable[[Any], None] | None = None, identity: str | None = None) -> None:
        self.port = port
        self.identity = identity
        self.deployment_id = deployment_id
        self.camera_ids = camera_ids
        self.on_alert = on_alert
        self.alerts: list[Any] = []
        self._task: asyncio.Task[None] | None = None
        self._channel: Any = None

    async def start(self) -> None:
        import grpc

        from lfr.v1 import alerts_pb2, alerts_pb2_grpc

        from services.common.grpc_client import aio_channel

        self._channel = aio_channel(f"127.0.0.1:{self.port}", identity=self.identity)
        await asyncio.wait_for(self._channel.channel_ready(), 30)
        call = alerts_pb2_grpc.AlertServiceStub(self._channel).StreamAlerts(alerts_pb2.StreamAlertsRequest(
            deployment_id=self.deployment_id, camera_ids=list(self.camera_ids)))

        async def read() -> None:
            try:
                async for alert in call:
                    self.alerts.append(alert)
                    if self.on_alert is not None:
                        self.on_alert(alert)
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.CANCELLED:
                    raise

        self._task = asyncio.create_task(read(), name="stream-alerts")
        await asyncio.sleep(0.5)  # the call starts at once; its servicer registers the subscriber

    def failed(self) -> BaseException | None:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            return self._task.exception()
        return None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()


@dataclasses.dataclass(frozen=True)
class DeviceView(_AlertFields):
    """What the demo prints about an alert as it arrives on the officer's device
    (DeviceService.Subscribe): the alert, its latencies and whether both images
    for side-by-side adjudication came with it (their sizes, never their bytes)."""

    device: str
    escalation_level: int
    frame_to_alert_ms: float   # capture -> alert raised (alerts service)
    frame_to_device_ms: float  # capture -> arrived on the device (this process's clock)
    live_crop_bytes: int
    watchlist_image_bytes: int
    acknowledged: bool

    @property
    def images_ok(self) -> bool:
        return self.live_crop_bytes > 0 and self.watchlist_image_bytes > 0

    @classmethod
    def of(cls, msg: Any, device: str, names: dict[str, str], received_ns: int, acknowledged: bool) -> "DeviceView":
        a = msg.alert
        return cls(**_AlertFields.values(a, names), device=device, escalation_level=int(msg.escalation_level),
                   frame_to_alert_ms=frame_to_alert_ms(a),
                   frame_to_device_ms=round(max(0, received_ns - a.capture_unix_ns) / 1e6, 1),
                   live_crop_bytes=len(a.live_crop.jpeg), watchlist_image_bytes=len(a.watchlist_image.jpeg),
                   acknowledged=acknowledged)

    def line(self) -> str:
        images = ("watchlist image + live crop" if self.images_ok else
                  f"IMAGES MISSING (watchlist {self.watchlist_image_bytes} B, crop {self.live_crop_bytes} B)")
        return (f"DEVICE {self.device}: ALERT {self.subject:24s} score={self.score:.3f}  camera={self.camera}  "
                f"frame-to-alert={self.frame_to_alert_ms:.0f} ms  frame-to-device={self.frame_to_device_ms:.0f} ms  "
                f"{images}  {'acknowledged' if self.acknowledged else 'NOT acknowledged'}")

    def json(self) -> str:
        return json.dumps({"event": "device_alert", **dataclasses.asdict(self), "images_ok": self.images_ok})


class DeviceListener:
    """The officer app of the demo: ``DeviceService.Subscribe(device)`` on the officers
    service (services.officers.device_client.listen_device), acknowledging each alert as it
    arrives and handing a :class:`DeviceView` to ``on_view``."""

    def __init__(self, port: int, officer_id: str, device_id: str, names: dict[str, str],
                 on_view: Callable[[DeviceView], None] | None = None, since_ns: int = 0) -> None:
        self.addr = f"127.0.0.1:{port}"
        self.since_ns = since_ns  # alerts of frames captured before this are an earlier run's: skipped
        self.skipped = 0
        self.officer_id = officer_id
        self.device_id = device_id
        self.names = names
        self.on_view = on_view
        self.views: list[DeviceView] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[int] | None = None
        self._channel: Any = None

    async def start(self) -> None:
        import grpc

        from lfr.v1 import officers_pb2, officers_pb2_grpc
        from services.officers.device_client import listen_device

        from services.common.grpc_client import aio_channel

        self._channel = aio_channel(self.addr, identity=self.officer_id)
        await asyncio.wait_for(self._channel.channel_ready(), 30)
        stub = officers_pb2_grpc.DeviceServiceStub(self._channel)

        async def on_alert(msg: Any) -> None:
            received = time.time_ns()
            if msg.alert.capture_unix_ns < self.since_ns:
                self.skipped += 1
                return
            try:
                resp = await stub.Acknowledge(officers_pb2.AcknowledgeRequest(
                    alert_id=msg.alert.alert_id, officer_id=self.officer_id, device_id=self.device_id), timeout=10)
                acked = bool(resp.first)
            except grpc.aio.AioRpcError:
                acked = False
            view = DeviceView.of(msg, self.device_id, self.names, received, acked)
            self.views.append(view)
            if self.on_view is not None:
                self.on_view(view)

        self._task = asyncio.create_task(
            listen_device(self.addr, self.device_id, on_alert, self._stop, officer_id=self.officer_id),
            name="device-listen")
        await asyncio.sleep(0.3)  # the stream registers the device

    def failed(self) -> BaseException | None:
        if self._task is not None and self._task.done() and not self._task.cancelled():
            return self._task.exception()
        return None

    async def wait_for(self, count: int, timeout_s: float) -> None:
        """Until ``count`` alerts arrived on the device or ``timeout_s`` passed."""
        deadline = time.monotonic() + timeout_s
        while len(self.views) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except Exception:  # noqa: BLE001 - stopping: a stream error was already logged
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()


@dataclasses.dataclass
class PassStats:
    captured: int
    published: int
    dropped: int
    seconds: float


async def stream_pass(pipeline: Pipeline, camera: Camera, registry: Path, seconds: float | None = None,
                      timeout_s: float = 300.0, drain: bool = True) -> PassStats:
    """Start ingest with a registry holding only ``camera``; stream the source once
    (``seconds`` None, camera.loop False) or for ``seconds``; stop ingest; wait until
    the pipeline has processed everything (``drain``)."""
    write_registry(registry, [camera])
    started = time.monotonic()
    await pipeline.start(("ingest",), ingest_cameras=registry)
    ingest: ServiceProcess = pipeline.services["ingest"]
    last: dict[Any, float] = {}
    try:
        while True:
            pipeline.check_alive()
            await asyncio.sleep(0.25)
            try:
                last = await asyncio.to_thread(scrape, ingest.metrics_port)
            except OSError:
                continue
            captured = metric(last, "lfr_frames_captured_total", camera=camera.id)
            active = metric(last, "lfr_camera_active", camera=camera.id)
            if seconds is not None and time.monotonic() - started >= seconds:
                break
            if seconds is None and captured > 0 and active == 0:
                break  # the source ended
            if time.monotonic() - started > timeout_s:
                raise SetupError(f"camera {camera.id} did not finish streaming in {timeout_s:.0f} s",
                                 f"read {ingest.log_file}")
        await asyncio.sleep(0.5)  # the last frame's publish
        last = await asyncio.to_thread(scrape, ingest.metrics_port)
    finally:
        await asyncio.to_thread(pipeline.stop, ("ingest",))
    stats = PassStats(captured=int(metric(last, "lfr_frames_captured_total", camera=camera.id)),
                      published=int(metric(last, "lfr_frames_published_total", camera=camera.id)),
                      dropped=int(metric(last, "lfr_frames_dropped_total", camera=camera.id)),
                      seconds=round(time.monotonic() - started, 1))
    if stats.published == 0:
        raise SetupError(f"camera {camera.id} published no frame from {camera.source}", f"read {ingest.log_file}")
    if drain:
        await wait_drained(pipeline.layout, alive=pipeline.check_alive)
        await asyncio.sleep(0.5)  # alerts are fanned out before the commit; let the stream deliver them
    return stats


def demo_camera(video: Path, loop: bool, cameras_file: Path = CAMERAS_FILE) -> Camera:
    """demo-cam-1 as deploy/local/cameras.yaml declares it, with ``video`` (a file that exists) as its source."""
    reg = CameraRegistry.load(repo_path(cameras_file))
    cam = reg.get(DEMO_CAMERA_ID)
    if cam is None:
        raise SetupError(f"{cameras_file} has no camera {DEMO_CAMERA_ID}", "restore deploy/local/cameras.yaml")
    if not video.is_file():
        raise SetupError(f"video {video} does not exist", "pass --video PATH")
    return cam.model_copy(update={"source": str(video), "loop": loop})


def default_layout() -> PipelineLayout:
    state = state_dir()
    return PipelineLayout(cameras_file=state / "demo" / "cameras.yaml", log_dir=state / "logs",
                          pid_dir=state / "pids" / "services")


class StackHandle:
    """The local stack: started if needed; ``stop`` stops only what this run started."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.already_running: list[str] = []
        self.components: dict[str, Any] = {}  # every component of the stack (up), by name

    def up(self, say: Callable[[str], None]) -> None:
        from services.stack import manager

        for comp in manager.load_components():
            running = comp.read_pid() is not None
            health = comp.start()
            if not health.healthy:
                raise SetupError(f"{comp.name} is not healthy: {health.detail}", "run `lfr stack status`")
            self.components[comp.name] = comp
            if not running:
                self.started.append(comp)
            elif comp.name not in self.already_running:
                self.already_running.append(comp.name)
            say(f"stack: {comp.name} {'started' if not running else 'already running'}")

    def down(self, say: Callable[[str], None]) -> None:
        for comp in reversed(self.started):
            comp.stop()
            say(f"stack: {comp.name} stopped")
        self.started.clear()


def _say(quiet: bool) -> Callable[[str], None]:
    def say(msg: str) -> None:
        print(msg, file=sys.stderr if quiet else sys.stdout, flush=True)
    return say


DEMO_OFFICER = "demo-officer"
DEMO_DEVICE = f"{DEMO_OFFICER}-device"  # DutyOfficer's device id
DEMO_SERVICES = (*PIPELINE_ORDER, OFFICERS)  # what the demo starts before the camera (ingest streams it)
DEVICE_WAIT_S = 10.0  # after the drain: how long the demo waits for raised alerts to reach the device

Step = Callable[[str, Awaitable[Any]], Awaitable[None]]  # runs one teardown action (``what`` names it)


async def propagate(what: str, action: Awaitable[Any]) -> None:
    """A teardown :data:`Step` that lets a failure through."""
    await action


class DemoSession:
    """One run of the demo on ``layout`` (``lfr demo``, ``lfr up``): its pipeline (the services and the officers
    service), demo watchlists for the camera's deployment with ``enrolments``, the demo officer on duty in the
    camera's zone with their device subscribed (each alert acknowledged and handed to ``on_view``), an
    AlertService.StreamAlerts subscription counting what is raised; :meth:`stop_streams` takes down what was
    set up. Each piece starts when the caller says, in the caller's order; ``say`` reports progress."""

    def __init__(self, layout: PipelineLayout, camera: Camera, enrolments: list[Enrolment],
                 say: Callable[[str], None], on_view: Callable[[DeviceView], None] | None = None) -> None:
        self.layout = layout
        self.camera = camera
        self.enrolments = enrolments
        self.names = {e.subject_id: e.name for e in enrolments}
        self.say = say
        self.on_view = on_view
        self.pipeline = Pipeline(layout)
        self.officer = DutyOfficer(DEMO_OFFICER, [camera.zone])
        self.client: WatchlistClient | None = None
        self.watchlists: list[str] = []  # created and not closed yet (closed by stop_streams)
        self.listener: AlertListener | None = None
        self.device: DeviceListener | None = None

    async def create_watchlist(self, command: str) -> str:
        """A demo watchlist of the camera's deployment, valid 1 h, named after ``command`` (``lfr demo``)."""
        if self.client is None:
            self.client = WatchlistClient(self.layout.grpc_port("watchlist"))
        wl = await self.client.create(
            self.camera.deployment_id, name=command, authorisation_ref=f"DEMO-{time.strftime('%Y%m%d-%H%M%S')}",
            officer="demo officer", purpose="demo", criteria=f"faces given to {command} --enrol")
        self.watchlists.append(wl)
        return wl

    async def enrol(self, watchlist_id: str, enrolled: Callable[[Enrolment], str]) -> None:
        """Enrol every face into the watchlist, saying ``enrolled(enrolment)`` after each."""
        assert self.client is not None, "create_watchlist first"
        for e in self.enrolments:
            await self.client.enrol(watchlist_id, e)
            self.say(enrolled(e))

    async def close_watchlist(self, watchlist_id: str, reason: str) -> Any:
        """Close (destroy) one of the session's watchlists now."""
        assert self.client is not None, "create_watchlist first"
        resp = await self.client.close(watchlist_id, reason)
        self.watchlists.remove(watchlist_id)
        return resp

    async def officer_on_duty(self) -> None:
        if await self.officer.start():
            self.say(f"officer {self.officer.officer_id} on duty in {self.camera.zone} with device "
                     f"{self.officer.device_id} (cameras run only while officers are on duty)")

    async def subscribe_device(self) -> DeviceListener:
        """The officer's device (DeviceService.Subscribe), from now on: alerts of earlier runs are skipped."""
        self.device = DeviceListener(self.layout.grpc_port(OFFICERS), self.officer.officer_id,
                                     self.officer.device_id, self.names, self.on_view, since_ns=time.time_ns())
        await self.device.start()
        return self.device

    async def listen_alerts(self) -> AlertListener:
        """AlertService.StreamAlerts for the camera."""
        self.listener = AlertListener(self.layout.grpc_port("alerts"), deployment_id=self.camera.deployment_id,
                                      camera_ids=(self.camera.id,))
        await self.listener.start()
        return self.listener

    def check_streams(self, device: bool = True) -> None:
        """SetupError when the alert stream (and with ``device``, the device's) has failed."""
        if self.listener is not None and (err := self.listener.failed()) is not None:
            raise SetupError(f"the alert stream failed: {err}", f"read {self.layout.log_file('alerts')}")
        if device and self.device is not None and (err := self.device.failed()) is not None:
            raise SetupError(f"the device stream failed: {err}", f"read {self.layout.log_file(OFFICERS)}")

    async def stop_streams(self, reason: str, step: Step = propagate) -> None:
        """Unsubscribe the device and the alert stream, take the officer off duty, close (destroy) every
        watchlist left (``reason``; a failure is reported and the others still closed), close the channel;
        each through ``step``. The services keep running (``pipeline.stop``)."""
        if self.device is not None:
            await step("stopping the device stream", self.device.stop())
        if self.listener is not None:
            await step("stopping the alert stream", self.listener.stop())
        await step("taking the demo officer off duty", self.officer.stop())
        if self.client is not None:
            for wl in self.watchlists:
                try:
                    resp = await self.client.close(wl, reason)
                    self.say(f"watchlist {wl} closed: {resp.vectors_deleted} vector(s) destroyed")
                except Exception as e:  # report and go on stopping everything
                    self.say(f"lfr: warning: could not close watchlist {wl}: {e}")
            await step("closing the watchlist channel", self.client.close_channel())


def device_summary(raised: int, views: list[DeviceView]) -> str:
    ok = sum(1 for v in views if v.images_ok)
    acked = sum(1 for v in views if v.acknowledged)
    return (f"{raised} alert(s) raised; {len(views)} arrived on device {DEMO_DEVICE} "
            f"({ok} with watchlist image + live crop, {acked} acknowledged)")


async def run_demo(video: Path, enrolments: list[Enrolment], seconds: float | None, as_json: bool,
                   stack: StackHandle, layout: PipelineLayout | None = None) -> list[DeviceView]:
    """The demo; returns the alerts as they arrived on the demo officer's device."""
    say = _say(as_json)
    layout = layout or default_layout()
    camera = demo_camera(video, loop=seconds is not None)
    for e in enrolments:
        if not e.image.is_file():
            raise SetupError(f"image {e.image} for {e.name} does not exist", "fix --enrol NAME=IMAGE")

    def on_view(view: DeviceView) -> None:
        print(view.json() if as_json else view.line(), flush=True)

    await asyncio.to_thread(stack.up, say)
    write_registry(layout.cameras_file, [camera])
    session = DemoSession(layout, camera, enrolments, say, on_view)
    try:
        say(f"services: starting {', '.join(DEMO_SERVICES)} (logs in {layout.log_dir})")
        await session.pipeline.start(DEMO_SERVICES)
        watchlist_id = await session.create_watchlist("lfr demo")
        say(f"watchlist {watchlist_id} created for deployment {camera.deployment_id}, valid 1 h")
        await session.enrol(watchlist_id, lambda e: f"enrolled {e.name} ({e.subject_id}) from {e.image}")
        await session.officer_on_duty()
        device = await session.subscribe_device()
        say(f"device {DEMO_DEVICE} subscribed (DeviceService.Subscribe on :{layout.grpc_port(OFFICERS)}); "
            "alerts are printed as they arrive on it and acknowledged")
        listener = await session.listen_alerts()
        say(f"streaming {video} as {camera.id} at {camera.fps:g} fps"
            + (f" for {seconds:g} s" if seconds is not None else " (one pass)"))
        stats = await stream_pass(session.pipeline, camera, state_dir() / "demo" / "ingest-cameras.yaml", seconds)
        session.check_streams(device=False)
        await device.wait_for(len(listener.alerts), DEVICE_WAIT_S)
        say(f"streamed {stats.published} frames in {stats.seconds:g} s; "
            + device_summary(len(listener.alerts), device.views))
    finally:
        await session.stop_streams("demo finished")
        codes = await asyncio.to_thread(session.pipeline.stop)
        bad = {k: c for k, c in codes.items() if c not in (0, None)}
        if bad:
            say(f"lfr: warning: services exited with {bad}; logs in {layout.log_dir}")
        await asyncio.to_thread(stack.down, say)
    return session.device.views if session.device is not None else []


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="start everything, enrol faces, stream a video, print the alerts, stop")
    p.add_argument("--video", type=repo_path, default=repo_path(DEFAULT_VIDEO),
                   help="video file streamed as demo-cam-1 (default: the Hamilton clip)")
    p.add_argument("--enrol", type=Enrolment.parse, action="append", default=None, metavar="NAME=IMAGE",
                   help=f"a face to enrol (repeatable; default: {DEFAULT_ENROL!r})")
    p.add_argument("--seconds", type=float, default=None,
                   help="stream this long, looping the video (default: the video once)")
    p.add_argument("--json", action="store_true", help="alerts as JSON lines on stdout (progress on stderr)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.seconds is not None and not 0 < args.seconds <= 86_400:
        raise SetupError(f"--seconds {args.seconds:g} is out of range", "give 0 < S <= 86400")
    enrolments = args.enrol or [Enrolment.parse(DEFAULT_ENROL)]
    stack = StackHandle()
    try:
        asyncio.run(run_demo(args.video, enrolments, args.seconds, args.json, stack))
    except KeyboardInterrupt:
        stack.down(_say(args.json))
        return 130
    return 0
