"""`lfr up` is the whole platform, as a person meets it (`make up 2>&1 | tee up.log`).

`lfr up` runs as a subprocess on the real local stack (its own process group, as a
terminal's foreground job), its stdout and stderr into one pipe read by `cat` (the
`tee` of the shell line), with the demo camera looping the Hamilton clip:

1. it prints the block: the console URL with the development login, the Prometheus
   URL (when the stack has one), the demo watchlist and officer, how to stop;
2. then the live status line (a line every 10 s, stdout being a pipe): frames/s
   analysed, faces, alerts, consumer lag;
3. Prometheus at the printed URL has every target up (every service, the console, Triton, itself);
4. headless Chromium opens the console at the printed URL, signs in with the printed
   login and sees the demo's alert (Lin-Manuel Miranda, demo-cam-1);
5. the reader of the pipe is killed first (Ctrl-C reaches `tee` too), then SIGINT
   goes to lfr up's process group: every process this run started (the six
   services and the console) is gone and their ports are free; the stack it found
   running is left running. Before the teardown stopped depending on stdout, the
   first write to the dead pipe (BrokenPipeError) ended lfr up with every service
   still running.

The session pipeline of conftest.py is not used (its fixture is not requested).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from console_support import Browser, node_modules
from e2e_support import REPO, _stack_healthy
from services.cli.launch import BASE_PORTS, CONSOLE, CONSOLE_PORTS, state_dir
from services.stack.base import port_in_use

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PIDS = state_dir() / "pids" / "services"
NAMES = (*BASE_PORTS, CONSOLE)
PORTS = sorted({p for ports in BASE_PORTS.values() for p in ports} | set(CONSOLE_PORTS))


def _wait_text(path: Path, pattern: str, proc: subprocess.Popen[bytes], timeout_s: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace")
        if (m := re.search(pattern, text, re.MULTILINE)) is not None:
            return m
        assert proc.poll() is None, f"lfr up exited {proc.returncode}:\n{text[-4000:]}"
        time.sleep(0.5)
    raise AssertionError(f"no {pattern!r} in lfr up's output after {timeout_s:.0f} s:\n"
                         f"{path.read_text(errors='replace')[-4000:]}")


def _targets_all_up(prometheus: str, timeout_s: float) -> str:
    """Wait until every active target of the Prometheus at ``prometheus`` is up (each service, the console,
    Triton, Prometheus itself); a summary line, or AssertionError naming the ones that are not."""
    deadline = time.monotonic() + timeout_s
    while True:
        with urllib.request.urlopen(f"{prometheus}/api/v1/targets?state=active", timeout=5) as reply:
            targets = json.load(reply)["data"]["activeTargets"]
        down = {t["scrapeUrl"]: t["health"] + (f" ({t['lastError']})" if t.get("lastError") else "")
                for t in targets if t["health"] != "up"}
        if targets and not down:
            return (f"prometheus: {len(targets)} targets, all up: "
                    + ", ".join(sorted(t["labels"]["job"] for t in targets)))
        if time.monotonic() > deadline:
            raise AssertionError(f"Prometheus targets not up after {timeout_s:.0f} s: {down or 'none'}")
        time.sleep(2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_lfr_up_console_status_line_and_ctrl_c_through_a_dead_pipe(tmp_path: Path) -> None:
    down = _stack_healthy()
    if down:
        pytest.fail("the local stack is not healthy (" + "; ".join(down) + ") — fix: .venv/bin/lfr stack up")
    busy = [p for p in PORTS if port_in_use("127.0.0.1", p)]
    assert not busy, f"ports of lfr up already taken (another lfr up?): {busy}"
    modules = node_modules()
    seen = tmp_path / "up.out"
    read_end, write_end = os.pipe()
    with seen.open("wb") as sink:
        reader = subprocess.Popen(["cat"], stdin=read_end, stdout=sink)  # the `tee` of `make up 2>&1 | tee`
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    up = subprocess.Popen([sys.executable, "-m", "services.cli.main", "up"], cwd=REPO, env=env,
                          stdin=subprocess.DEVNULL, stdout=write_end, stderr=write_end, start_new_session=True)
    os.close(write_end)
    pids: dict[str, int] = {}
    browser: Browser | None = None
    try:
        block = _wait_text(seen, r"^-{20,}\nlfr up: the platform is running\n(?:.*\n)*?-{20,}$", up, 300).group(0)
        print(f"\n{block}")
        url, user, password = re.search(r"console\s+(http://\S+)\s+sign in as (\S+) / (\S+)", block).groups()  # type: ignore[union-attr]
        assert url == f"http://127.0.0.1:{CONSOLE_PORTS[0]}/" and password == f"{user}-dev", block
        assert re.search(r"prometheus\s+\S", block) and "watchlist " in block and "Lin-Manuel Miranda" in block, block
        assert "demo-officer" in block and "demo-cam-1" in block and "Ctrl-C" in block, block
        pids = {name: int((PIDS / f"{name}.pid").read_text()) for name in NAMES}
        assert all(_alive(pid) for pid in pids.values()), pids
        prometheus = re.search(r"prometheus\s+(http://\S+?)/?\s", block).group(1)  # type: ignore[union-attr]
        print(_targets_all_up(prometheus, timeout_s=60))
        status = _wait_text(seen, r"^live: +[\d.]+ frames/s analysed \| \d+ faces \| \d+ alerts \| consumer lag \d+$",
                            up, 30).group(0)
        print(status)

        browser = Browser(modules, url.rstrip("/"))

        async def alert_on_the_page() -> str:
            assert browser is not None
            await browser.login("op", user, password)
            assert await browser.goto("op", "/alerts") == 200
            await browser.acall("wait", ctx="op", selector="article.alert[data-alert-id]", timeout=240_000,
                                timeout_s=250)
            return await browser.text("op", "article.alert")

        card = asyncio.run(alert_on_the_page())
        print(f"console alert: {card!r}")
        assert "lin-manuel-miranda" in card.lower().replace(" ", "-") and "demo-cam-1" in card, card
        # the live line counts what the page shows (a line every 10 s: the next one has it)
        print(_wait_text(seen, r"^live: .* \| [1-9]\d* faces \| [1-9]\d* alerts \| .*$", up, 30).group(0))
    finally:
        if browser is not None:
            browser.close()
        # Ctrl-C as a terminal delivers it: the pipe's reader dies, then SIGINT to lfr up's process group
        reader.kill()
        reader.wait(10)
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGINT)
        try:
            code = up.wait(180)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            code = up.wait(10)
        log = (state_dir() / "logs" / "up.log").read_text(errors="replace")[-3000:]
        left = {name: pid for name, pid in pids.items() if _alive(pid)}
        for pid in left.values():  # never leave them to the next test, but fail below
            os.kill(pid, signal.SIGKILL)
    assert not left, f"lfr up left running after Ctrl-C through a dead pipe: {left}\n{log}"
    assert code == 0, f"lfr up exited {code}\n{log}"
    deadline = time.monotonic() + 10
    while (busy := [p for p in PORTS if port_in_use("127.0.0.1", p)]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not busy, f"ports still taken after lfr up stopped: {busy}"
    assert "services stopped" in log, log
    assert not _stack_healthy(), "the stack lfr up found running is left running"
