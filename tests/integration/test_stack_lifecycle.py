"""`lfr stack status --json|down|up` against the stack this test session runs.

Ports are fixed, so this cannot start a second stack: it stops and restarts
only Redis (quick, stateless) and checks that `down` leaves no process of the
group and frees the port. The full `lfr stack down` check (every component,
every port) runs in deploy/local/run-tests.sh after pytest."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from services.stack.base import StackPaths, group_alive, port_in_use
from services.stack.manager import REPO_ROOT, component_names

pytestmark = pytest.mark.integration

LFR = str(REPO_ROOT / ".venv" / "bin" / "lfr")


def lfr(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LFR, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT)


def status_json(*only: str) -> tuple[int, dict]:
    args = ["stack", "status", "--json"] + [a for name in only for a in ("--only", name)]
    res = lfr(*args, timeout=60)
    return res.returncode, json.loads(res.stdout)


def test_status_json_shows_every_component_healthy() -> None:
    rc, body = status_json()
    assert set(body["components"]) == set(component_names())
    unhealthy = {n: c["detail"] for n, c in body["components"].items() if not c["healthy"]}
    assert not unhealthy, unhealthy
    assert body["healthy"] is True and rc == 0
    for comp in body["components"].values():
        assert isinstance(comp["pid"], int) and comp["detail"]


def test_down_then_up_redis_frees_port_and_leaves_nothing() -> None:
    paths = StackPaths.default(REPO_ROOT)
    pid_file = paths.pid_file("redis")
    pid = int(pid_file.read_text())
    assert group_alive(pid)
    try:
        res = lfr("stack", "down", "--only", "redis", timeout=60)
        assert res.returncode == 0, res.stderr
        assert not pid_file.exists()
        assert not group_alive(pid), f"redis process group {pid} survived 'lfr stack down'"
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
        assert not port_in_use("127.0.0.1", 6379), "port 6379 still taken after down"
        rc, body = status_json("redis")
        assert rc == 1 and body["components"]["redis"]["healthy"] is False
    finally:
        res = lfr("stack", "up", "--only", "redis", timeout=120)
    assert res.returncode == 0, res.stderr
    new_pid = int(pid_file.read_text())
    assert new_pid != pid and group_alive(new_pid)
    rc, body = status_json("redis")
    assert rc == 0 and body["components"]["redis"]["healthy"] is True


def test_up_is_idempotent_when_running() -> None:
    paths = StackPaths.default(REPO_ROOT)
    before = int(paths.pid_file("redis").read_text())
    res = lfr("stack", "up", "--only", "redis", timeout=120)
    assert res.returncode == 0, res.stderr
    assert int(paths.pid_file("redis").read_text()) == before


def test_unknown_component_is_a_one_line_error() -> None:
    res = lfr("stack", "status", "--only", "nosuch", timeout=60)
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1].startswith("lfr: error: unknown stack component")
    assert os.path.exists(LFR)
