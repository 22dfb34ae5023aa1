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

It also starts the operator console (http://127.0.0.1:8080/, the development
users of deploy/local/console-users.yaml, loopback only) and, when the stack has
one, reads Prometheus (http://127.0.0.1:9090/). Once everything is up it prints
a short block (URLs, the development login, the demo watchlist and officer, how
to stop), then one live status line (rewritten in place on a terminal, a line
every 10 s otherwise): frames/s analysed, faces, alerts, consumer lag, from the
services' /metrics.

Stopping never depends on the terminal: SIGINT, SIGTERM and SIGHUP lead to the
same teardown, and a dead stdout/stderr (``make up 2>&1 | tee up.log`` and
Ctrl-C kills tee first) is swallowed: every line also goes to
``<state>/logs/up.log``, and writes to the broken pipe are dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from services.cli.demo import (DEFAULT_ENROL, DEFAULT_VIDEO, DEMO_DEVICE, DEMO_OFFICER, DEMO_SERVICES, DemoSession,
                               DeviceView, Enrolment, StackHandle, default_layout, demo_camera, repo_path)
from services.cli.launch import CONSOLE, PipelineLayout, metric, scrape, state_dir, write_registry
from services.common.errors import SetupError

RENEW_BEFORE_S = 300.0  # renew the watchlist this long before its window ends
WATCH_INTERVAL_S = 1.0
STATUS_TTY_S = 2.0  # the live line's refresh on a terminal
STATUS_PIPE_S = 10.0  # ... and its period as a new line when stdout is a pipe or a file
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEV_LOGIN = "operator"  # development user shown in the block (password "<username>-dev")


class Output:
    """Where ``lfr up`` writes: stdout (or stderr for progress with --json) and ``log_file``. A write to a
    dead pipe never raises: the stream's descriptor is pointed at /dev/null (stderr too when it is the same
    pipe) and the run, and above all its teardown, goes on; the log file keeps every line."""

    def __init__(self, log_file: Path, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file = log_file
        self._log = log_file.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self._status_shown = False
        self.dead = False

    def _write(self, stream: IO[str], text: str) -> None:
        try:
            stream.write(text)
            stream.flush()
        except OSError as e:  # BrokenPipeError, or EIO from a terminal that went away
            if e.errno not in (errno.EPIPE, errno.EIO, errno.ECONNRESET):
                raise
            self._silence(stream)

    def _silence(self, stream: IO[str]) -> None:
        """The terminal or pipe behind ``stream`` is gone: its descriptor, and stdout's and stderr's where they
        are the same file, to /dev/null, so that later writes, logging and the interpreter's final flush cannot
        fail. The log file keeps every line."""
        self.dead = True
        try:
            gone = os.fstat(stream.fileno())
        except (OSError, ValueError):
            return
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in (1, 2):
                try:
                    st = os.fstat(fd)
                    if (st.st_dev, st.st_ino) == (gone.st_dev, gone.st_ino):
                        os.dup2(null, fd)
                except OSError:
                    pass
        finally:
            os.close(null)

    def _record(self, text: str) -> None:
        self._log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}\n")
        self._log.flush()

    def say(self, msg: str, stream: IO[str] | None = None) -> None:
        with self._lock:
            self._record(msg)
            out = stream or self.stream
            if self._status_shown and self.tty:
                self._write(self.stream, "\r\033[K")
                self._status_shown = False
            self._write(out, msg + "\n")

    def error(self, msg: str) -> None:
        self.say(msg, sys.stderr)

    def status(self, line: str, persist: bool) -> None:
        """The live line: rewritten in place on a terminal, a line of its own otherwise; ``persist``:
        also into the log file."""
        with self._lock:
            if persist:
                self._record(line)
            if self.tty:
                self._write(self.stream, "\r\033[K" + line)
                self._status_shown = True
            else:
                self._write(self.stream, line + "\n")

    def close(self) -> None:
        with self._lock:
            if self._status_shown and self.tty:
                self._write(self.stream, "\n")
            self._log.close()


@dataclasses.dataclass
class LiveStatus:
    """frames/s analysed, faces, alerts, consumer lag, from the services' /metrics (cheap: three scrapes)."""

    layout: PipelineLayout
    last_frames: float | None = None
    last_at: float = 0.0

    def line(self) -> str:
        now = time.monotonic()
        try:
            rec = scrape(self.layout.metrics_port("recognizer"), timeout_s=1.0)
            mat = scrape(self.layout.metrics_port("matcher"), timeout_s=1.0)
            alr = scrape(self.layout.metrics_port("alerts"), timeout_s=1.0)
        except OSError as e:
            return f"live: metrics unreadable ({e})"
        frames = metric(rec, "lfr_frames_consumed_total")
        rate = 0.0 if self.last_frames is None else max(0.0, frames - self.last_frames) / max(now - self.last_at, 1e-3)
        self.last_frames, self.last_at = frames, now
        lag = sum(metric(m, "lfr_consumer_lag") for m in (rec, mat, alr))
        return (f"live: {rate:5.1f} frames/s analysed | {int(metric(rec, 'lfr_faces_embedded_total'))} faces | "
                f"{int(metric(alr, 'lfr_alerts_total'))} alerts | consumer lag {int(lag)}")


def embedder_line() -> str:
    """The active face embedder, its licence and the threshold the matcher applies (and where it comes from)."""
    from services.face.embedders import embedder_spec
    from services.matcher.config import MatcherSettings

    settings = MatcherSettings()
    name = settings.face.embedder
    threshold, _ = settings.threshold_choice()
    source = "LFR_MATCHER__THRESHOLD" if settings.matcher.threshold is not None else "its calibration"
    use = embedder_spec(name).card.operational_use
    return f"{name} (operational use {use}), match threshold {threshold} ({source})"


def ready_block(console_url: str, prometheus_url: str | None, watchlist_id: str, deployment: str,
                subjects: list[str], zone: str, camera: str, video: Path, embedder: str = "") -> str:
    """What a person needs once everything is up."""
    rule = "-" * 78
    prom = f"{prometheus_url}/ (every service and Triton scraped, the alert rules loaded)" if prometheus_url \
        else "not in this stack (the console's health page reads the services' /metrics)"
    return "\n".join([
        rule,
        "lfr up: the platform is running",
        f"  console     {console_url}  sign in as {DEV_LOGIN} / {DEV_LOGIN}-dev",
        "              (development users, deploy/local/console-users.yaml: password <username>-dev)",
        f"  prometheus  {prom}",
        f"  demo        watchlist {watchlist_id} (deployment {deployment}): {', '.join(subjects)}",
        f"              officer {DEMO_OFFICER} on duty in zone {zone}, device {DEMO_DEVICE}",
        f"              camera {camera} streams {video.name}, looping",
        *([f"  embedder    {embedder}", "              (LFR_FACE__EMBEDDER chooses another: lfr models list)"]
          if embedder else []),
        "  stop        Ctrl-C here stops everything this run started (`make down` stops the stack)",
        rule,
    ])


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


async def _new_watchlist(session: DemoSession) -> str:
    wl = await session.create_watchlist("lfr up")
    await session.enrol(wl, lambda e: f"enrolled {e.name} ({e.subject_id}) into watchlist {wl}")
    return wl


async def run_up(video: Path, enrolments: list[Enrolment], as_json: bool, stack: StackHandle,
                 stop: asyncio.Event, out: Output) -> int:
    layout = default_layout()
    progress = sys.stderr if as_json else None

    def say(msg: str) -> None:
        out.say(msg, progress)

    camera = demo_camera(video, loop=True)

    def on_view(view: DeviceView) -> None:
        out.say(view.json() if as_json else view.line())

    session = DemoSession(layout, camera, enrolments, say, on_view)
    pipeline = session.pipeline
    code = 0
    try:
        await asyncio.to_thread(stack.up, say)  # not interruptible: a half-started server would be left behind
        if stop.is_set():
            raise Stopped()
        write_registry(layout.cameras_file, [camera])
        ingest_registry = write_registry(state_dir() / "demo" / "ingest-cameras.yaml", [camera])
        say(f"services: starting (logs in {layout.log_dir})")
        await _until(stop, pipeline.start(DEMO_SERVICES))
        prom = stack.components.get("prometheus")  # the local stack's Prometheus, where the stack has one
        prometheus: str | None = prom.url if prom is not None else None
        say("console: starting")
        await _until(stop, pipeline.start((CONSOLE,), prometheus_url=prometheus))
        watchlist_id = await _until(stop, _new_watchlist(session))
        renew_at = time.monotonic() + 3600 - RENEW_BEFORE_S
        await _until(stop, session.listen_alerts())
        await _until(stop, session.officer_on_duty())
        await _until(stop, session.subscribe_device())
        say(f"device {DEMO_DEVICE} subscribed; alerts are printed as they arrive on it and acknowledged")
        await _until(stop, pipeline.start(("ingest",), ingest_cameras=ingest_registry))
        say(f"streaming {video} as {camera.id} at {camera.fps:g} fps, looping; Ctrl-C stops everything")
        say(ready_block(f"http://127.0.0.1:{layout.console_port()}/", prometheus, watchlist_id,
                        camera.deployment_id, [e.name for e in enrolments], camera.zone, camera.id, video,
                        embedder_line()))
        live = LiveStatus(layout)
        await asyncio.to_thread(live.line)  # the baseline: the first line shown has a rate
        status_every = STATUS_TTY_S if out.tty else STATUS_PIPE_S
        next_status = time.monotonic() + STATUS_TTY_S  # the first line soon, then at its pace
        next_persist = 0.0  # the log file gets the line every STATUS_PIPE_S
        while not stop.is_set():
            if time.monotonic() >= next_status and not as_json:
                line = await asyncio.to_thread(live.line)
                persist = time.monotonic() >= next_persist
                out.status(line, persist)
                if persist:
                    next_persist = time.monotonic() + STATUS_PIPE_S
                next_status = time.monotonic() + status_every
            pipeline.check_alive()
            session.check_streams()
            if time.monotonic() >= renew_at:
                old = watchlist_id
                watchlist_id = await _new_watchlist(session)
                await session.close_watchlist(old, "renewed by lfr up")
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
        out.error(e.one_line())
        code = 1
    finally:
        # each step on its own: one that fails is reported and the rest still run (the services and the
        # stack components this run started are stopped whatever happened before)
        async def step(what: str, action: Any) -> None:
            try:
                await action
            except Exception as e:  # noqa: BLE001 - report and go on stopping everything
                say(f"lfr: warning: {what} failed: {type(e).__name__}: {e}")

        await session.stop_streams("lfr up stopped", step)
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
    out = Output(default_layout().log_dir / "up.log")

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # every stop signal, as often as it comes, only sets ``stop``: the teardown in run_up runs once, to
        # the end (a second Ctrl-C does not cut it short)
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        try:
            return await run_up(args.video, enrolments, args.json, stack, stop, out)
        finally:
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    try:
        return asyncio.run(main())
    finally:
        out.close()
