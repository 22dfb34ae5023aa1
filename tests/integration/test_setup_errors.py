"""A broken setup ends with one line naming the cause and the fix, exit 2:
Java missing, Maven Central unreachable, a port already taken. Each case runs
the real `lfr` in a temporary cache/state so nothing cached hides the fault."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from services.stack.manager import REPO_ROOT

pytestmark = pytest.mark.integration

LFR = str(REPO_ROOT / ".venv" / "bin" / "lfr")

UNREACHABLE_SETTINGS = """<settings>
  <mirrors>
    <mirror>
      <id>unreachable</id>
      <mirrorOf>*</mirrorOf>
      <url>http://127.0.0.1:9/</url>
    </mirror>
  </mirrors>
</settings>
"""


def run_lfr(args: list[str], env: dict[str, str],
            timeout: float = 180) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    res = subprocess.run([LFR, *args], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **env}, cwd=REPO_ROOT)
    return res, time.monotonic() - start


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr, res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("lfr: error:")]
    assert len(errors) == 1, res.stderr
    assert res.stderr.strip().splitlines()[-1] == errors[0]
    assert " — fix: " in errors[0]
    return errors[0]


@pytest.fixture
def isolated(tmp_path: Path) -> dict[str, str]:
    """A fresh cache (no Kafka jars, empty Maven repo) and state dir."""
    (tmp_path / "cache").mkdir()
    (tmp_path / "state").mkdir()
    return {"LFR_CACHE": str(tmp_path / "cache"), "LFR_STATE": str(tmp_path / "state")}


def test_java_missing_named_binary(isolated: dict[str, str]) -> None:
    res, _ = run_lfr(["stack", "install", "--only", "kafka"], {**isolated, "LFR_JAVA": "/nonexistent/java"})
    line = one_error_line(res)
    assert "Java missing" in line and "/nonexistent/java" in line
    assert "LFR_JAVA" in line.split(" — fix: ")[1] and "openjdk-17" in line


def test_java_missing_from_path(isolated: dict[str, str], tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env = {**isolated, "PATH": str(empty_bin)}
    env.pop("LFR_JAVA", None)
    res, _ = run_lfr(["stack", "install", "--only", "kafka"], {**env, "LFR_JAVA": "java"})
    line = one_error_line(res)
    assert "Java missing: 'java' is not found" in line
    assert not list(Path(isolated["LFR_CACHE"]).rglob("*.jar"))


def test_maven_central_unreachable_fails_fast(isolated: dict[str, str], tmp_path: Path) -> None:
    settings = tmp_path / "settings.xml"
    settings.write_text(UNREACHABLE_SETTINGS)
    res, took = run_lfr(["stack", "install", "--only", "kafka"],
                        {**isolated, "LFR_MAVEN_SETTINGS": str(settings)}, timeout=170)
    line = one_error_line(res)
    assert "Maven Central unreachable" in line
    assert "127.0.0.1:9" in line  # names the endpoint that failed
    assert "LFR_MAVEN_SETTINGS" in line.split(" — fix: ")[1]
    assert took < 120, f"took {took:.0f} s: must fail fast, not hang"
    kafka_home = Path(isolated["LFR_CACHE"]) / "kafka"
    assert not list(kafka_home.rglob(".installed")) and not list(kafka_home.rglob("libs/*.jar"))


@pytest.mark.parametrize("component,port", [("redis", 6379), ("milvus", 19530)])
def test_port_already_taken(isolated: dict[str, str], component: str, port: int) -> None:
    """The shared stack may already hold the port; if not, this test takes it.
    Either way another process (not this state dir's) owns it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        except OSError:
            pass  # already taken by the running stack: the same situation for this state dir
        res, _ = run_lfr(["stack", "up", "--only", component], isolated, timeout=60)
    finally:
        sock.close()
    line = one_error_line(res)
    assert f"port 127.0.0.1:{port} is already taken" in line
    assert not (Path(isolated["LFR_STATE"]) / "pids" / f"{component}.pid").exists()
