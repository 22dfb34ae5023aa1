"""Support of the console's e2e tests: the officers service and the console as child
processes on the e2e ports (+3000), and a headless Chromium driven by
tests/e2e/console/driver.cjs (playwright-core + Debian's chromium, installed by
deploy/tools/install-browser.sh, idempotent)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from e2e_support import BOOTSTRAP, REPO
from services.cli.launch import PipelineLayout, ServiceProcess
from services.common.errors import SetupError
from services.common.grpc_client import console_env, server_env

OFFICERS_PORTS = (50056, 9106)
CONSOLE_PORTS = (8080, 9107)
DRIVER = Path(__file__).parent / "console" / "driver.cjs"
INSTALL = REPO / "deploy" / "tools" / "install-browser.sh"


class Child(ServiceProcess):
    """A service of the console tests: ports of the brief + the layout's offset, env given."""

    def __init__(self, name: str, layout: PipelineLayout, ports: tuple[int, int], env: dict[str, str]) -> None:
        # not ServiceProcess.__init__: PipelineLayout knows only the pipeline's services' ports
        self._ports = (ports[0] + layout.port_offset, ports[1] + layout.port_offset)
        self.name = name
        self.layout = layout
        self.log_file = layout.log_file(name)
        self.proc = None
        self.env = {"LFR_METRICS__PORT": str(self._ports[1]), "LFR_KAFKA__BOOTSTRAP": BOOTSTRAP, **env}
        if name != "console":
            self.env["LFR_GRPC__PORT"] = str(self._ports[0])

    @property
    def grpc_port(self) -> int:
        return self._ports[0]

    @property
    def metrics_port(self) -> int:
        return self._ports[1]

    async def wait_http(self, url: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if (why := self.died()) is not None:
                raise SetupError(why, f"read {self.log_file}")
            try:
                await asyncio.to_thread(urllib.request.urlopen, url, None, 1.0)
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SetupError(f"{self.name} not answering {url} after {timeout_s:.0f} s", f"read {self.log_file}")
            await asyncio.sleep(0.3)


def officers_service(layout: PipelineLayout, tag: str) -> Child:
    t = layout.topics
    return Child("officers", layout, OFFICERS_PORTS, {
        "LFR_OFFICERS__ALERTS_TOPIC": t.alerts, "LFR_OFFICERS__AUDIT_TOPIC": t.audit,
        "LFR_OFFICERS__GROUP_ID": f"lfr-e2e-{tag}-officers", "LFR_OFFICERS__CAMERAS_FILE": str(layout.cameras_file),
        "LFR_OFFICERS__HEARTBEAT_TTL_S": "300", "LFR_KAFKA__AUTO_OFFSET_RESET": "earliest",
        **(server_env("officers", audit_topic=t.audit) if layout.tls else {}),
    })


def console_service(layout: PipelineLayout, users_file: Path, config_file: Path) -> Child:
    off = layout.port_offset
    services = {"ingest": 9101, "recognizer": 9102, "matcher": 9103, "alerts": 9104, "watchlist": 9105,
                "officers": 9106}
    config = {"console": {
        "http_port": CONSOLE_PORTS[0] + off, "users_file": str(users_file), "cameras_file": str(layout.cameras_file),
        "platform": {"alerts": f"127.0.0.1:{layout.grpc_port('alerts')}",
                     "watchlist": f"127.0.0.1:{layout.grpc_port('watchlist')}",
                     "officers": f"127.0.0.1:{OFFICERS_PORTS[0] + off}"},
        "metrics_targets": {name: f"http://127.0.0.1:{port + off}/metrics" for name, port in services.items()},
        "refresh_s": 1.0,
    }}
    config_file.write_text(yaml.safe_dump(config))
    return Child("console", layout, CONSOLE_PORTS, {"LFR_CONFIG": str(config_file),
                                                    **(console_env() if layout.tls else {})})


def node_modules() -> str:
    """Install chromium + playwright-core if missing (idempotent); the node_modules path."""
    done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise SetupError(f"{INSTALL.name} failed: {done.stderr.strip()[-500:]}", f"run {INSTALL} by hand")
    return done.stdout.strip().splitlines()[-1]


class Browser:
    """Headless Chromium through driver.cjs; each call sends one command and waits for its reply."""

    def __init__(self, modules: str, base_url: str) -> None:
        self.base_url = base_url
        env = {**os.environ, "LFR_NODE_MODULES": modules}
        self.proc = subprocess.Popen(["node", str(DRIVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env, bufsize=1)
        self.version = self._reply(60.0)

    def _reply(self, timeout_s: float) -> Any:
        assert self.proc.stdout is not None
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            raise TimeoutError(f"browser driver silent for {timeout_s:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"browser driver exited: {err[-1000:]}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise AssertionError(f"browser: {reply.get('error')}")
        return reply.get("value")

    def call(self, op: str, timeout_s: float = 60.0, **args: Any) -> Any:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        return self._reply(timeout_s)

    async def acall(self, op: str, timeout_s: float = 60.0, **args: Any) -> Any:
        return await asyncio.to_thread(self.call, op, timeout_s, **args)

    async def login(self, ctx: str, username: str, password: str) -> None:
        await self.acall("context", name=ctx)
        await self.acall("goto", ctx=ctx, url=f"{self.base_url}/login")
        await self.acall("fill", ctx=ctx, selector="#username", value=username)
        await self.acall("fill", ctx=ctx, selector="#password", value=password)
        await self.acall("click", ctx=ctx, selector="button[type=submit]")
        await self.acall("wait", ctx=ctx, selector="nav")

    async def goto(self, ctx: str, path: str) -> int:
        return int(await self.acall("goto", ctx=ctx, url=f"{self.base_url}{path}"))

    async def text(self, ctx: str, selector: str) -> str:
        return str(await self.acall("eval", ctx=ctx, expr=f"(document.querySelector({json.dumps(selector)}) || "
                                                         f"{{innerText: ''}}).innerText"))

    def close(self) -> None:
        try:
            self.call("close", timeout_s=20)
        except (OSError, RuntimeError, TimeoutError, AssertionError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
