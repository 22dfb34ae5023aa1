"""`lfr up` (what `make up` runs): the demo, looping until Ctrl-C.

Starts the local stack (what is not running yet) and every service of the
pipeline, creates the demo watchlist (deployment demo-op, valid 1 h, renewed
before it expires: a new one is created and enrolled, then the old one is
closed), enrols the demo face(s), puts the demo officer on duty in the demo
camera's zone with device ``demo-officer-device`` (subscribed to the officers
service's DeviceService, as the officer app is) and streams the video as
demo-cam-1, looping, printing each alert as it arrives on the device (and
acknowledging it). Ctrl-C (SIGINT) or SIGTERM: the watchlist is
closed (destroyed), the services are stopped, then the stack components this
command started; nothing of ours is left running. A service that dies ends the
run with one line naming it and its log (exit 1).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

from services.cli.demo import (DEFAULT_ENROL, DEFAULT_VIDEO, DEMO_DEVICE, DEMO_OFFICER, AlertListener, DeviceListener,
                               DeviceView, Enrolment, StackHandle, WatchlistClient, _say, default_layout, demo_camera,
                               repo_path)
from services.cli.launch import OFFICERS, PIPELINE_ORDER, DutyOfficer, Pipeline, state_dir, write_registry
from services.common.errors import SetupError

RENEW_BEFORE_S = 300.0  # renew the watchlist this long before its window ends
WATCH_INTERVAL_S = 1.0


class Stopped(Exception):
    """SIGINT/SIGTERM arrived."""


async def _until(stop: asyncio.Event, coro: Any) -> Any:
    """``await coro``, or raise Stopped as soon as ``stop`` is set."""
    task = asyncio.ensure_future(coro)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task in done:
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    raise Stopped()


async def _new_watchlist(client: WatchlistClient, deployment: str, enrolments: list[Enrolment],
                         say: Any) -> str:
    wl = await client.create(deployment, name="lfr up", authorisation_ref=f"DEMO-{time.strftime('%Y%m%d-%H%M%S')}",
                             officer="demo officer", purpose="demo", criteria="faces given to lfr up --enrol")
    for e in enrolments:
        await client.enrol(wl, e)
        say(f"enrolled {e.name} ({e.subject_id}) into watchlist {wl}")
    return wl


async def run_up(video: Path, enrolments: list[Enrolment], as_json: bool, stack: StackHandle,
                 stop: asyncio.Event) -> int:
    say = _say(as_json)
    layout = default_layout()
    camera = demo_camera(video, loop=True)
    if not video.is_file():
        raise SetupError(f"video {video} does not exist", "pass --video PATH")
    names = {e.subject_id: e.name for e in enrolments}

    def on_view(view: DeviceView) -> None:
        print(view.json() if as_json else view.line(), flush=True)

    pipeline = Pipeline(layout)
    client: WatchlistClient | None = None
    listener: AlertListener | None = None
    device: DeviceListener | None = None
    watchlists: list[str] = []
    officer = DutyOfficer(DEMO_OFFICER, [camera.zone])
    code = 0
    try:
        await asyncio.to_thread(stack.up, say)  # not interruptible: a half-started server would be left behind
        if stop.is_set():
            raise Stopped()
        write_registry(layout.cameras_file, [camera])
        ingest_registry = write_registry(state_dir() / "demo" / "ingest-cameras.yaml", [camera])
        say(f"services: starting (logs in {layout.log_dir})")
        await _until(stop, pipeline.start((*PIPELINE_ORDER, OFFICERS)))
        client = WatchlistClient(layout.grpc_port("watchlist"))
        watchlists.append(await _until(stop, _new_watchlist(client, camera.deployment_id, enrolments, say)))
        renew_at = time.monotonic() + 3600 - RENEW_BEFORE_S
        listener = AlertListener(layout.grpc_port("alerts"), deployment_id=camera.deployment_id,
                                 camera_ids=(camera.id,))
        await _until(stop, listener.start())
        if await _until(stop, officer.start()):
            say(f"officer {officer.officer_id} on duty in {camera.zone} with device {DEMO_DEVICE} "
                "(cameras run only while officers are on duty)")
        device = DeviceListener(layout.grpc_port(OFFICERS), DEMO_OFFICER, DEMO_DEVICE, names, on_view,
                                since_ns=time.time_ns())
        await _until(stop, device.start())
        say(f"device {DEMO_DEVICE} subscribed; alerts are printed as they arrive on it and acknowledged")
        await _until(stop, pipeline.start(("ingest",), ingest_cameras=ingest_registry))
        say(f"streaming {video} as {camera.id} at {camera.fps:g} fps, looping; Ctrl-C stops everything")
        while not stop.is_set():
            pipeline.check_alive()
            if (err := listener.failed()) is not None:
                raise SetupError(f"the alert stream failed: {err}", f"read {layout.log_file('alerts')}")
            if (err := device.failed()) is not None:
                raise SetupError(f"the device stream failed: {err}", f"read {layout.log_file(OFFICERS)}")
            if time.monotonic() >= renew_at:
                old = watchlists[-1]
                watchlists.append(await _new_watchlist(client, camera.deployment_id, enrolments, say))
                await client.close(old, "renewed by lfr up")
                watchlists.remove(old)
                say(f"watchlist {old} closed (renewed)")
                renew_at = time.monotonic() + 3600 - RENEW_BEFORE_S
            try:
                await asyncio.wait_for(stop.wait(), WATCH_INTERVAL_S)
            except TimeoutError:
                pass
        say("stopping")
    except Stopped:
        say("stopping")
    except SetupError as e:
        print(e.one_line(), file=sys.stderr, flush=True)
        code = 1
    finally:
        if device is not None:
            await device.stop()
        if listener is not None:
            await listener.stop()
        await officer.stop()
        if client is not None:
            for wl in watchlists:
                try:
                    resp = await client.close(wl, "lfr up stopped")
                    say(f"watchlist {wl} closed: {resp.vectors_deleted} vector(s) destroyed")
                except Exception as e:  # report and go on stopping everything
                    say(f"lfr: warning: could not close watchlist {wl}: {e}")
            await client.close_channel()
        codes = await asyncio.to_thread(pipeline.stop)
        say("services stopped" + (f" (exit codes {codes})" if any(c not in (0, None) for c in codes.values())
                                  else ""))
        await asyncio.to_thread(stack.down, say)
        if stack.already_running:
            say(f"stack: {', '.join(stack.already_running)} were already running before lfr up and are left "
                "running (`lfr stack down` stops them)")
    return code


def add_parser(sub: Any) -> None:
    p = sub.add_parser("up", help="start the stack and the services and run the demo in a loop until Ctrl-C")
    p.add_argument("--video", type=repo_path, default=repo_path(DEFAULT_VIDEO), help="video looped as demo-cam-1")
    p.add_argument("--enrol", type=Enrolment.parse, action="append", default=None, metavar="NAME=IMAGE",
                   help=f"a face to enrol (repeatable; default: {DEFAULT_ENROL!r})")
    p.add_argument("--json", action="store_true", help="alerts as JSON lines on stdout")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    enrolments = args.enrol or [Enrolment.parse(DEFAULT_ENROL)]
    stack = StackHandle()

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            return await run_up(args.video, enrolments, args.json, stack, stop)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    return asyncio.run(main())
