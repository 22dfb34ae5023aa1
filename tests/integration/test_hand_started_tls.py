"""A service started by hand, `python -m services.watchlist` with no TLS setting at all, on a machine where
the development PKI exists (.lfr/certs): it serves mTLS with its dev certificate and requires
authentication, exactly as `lfr up` runs it, so `lfr watchlist list` (the CLI's mTLS channel as `dev`)
works. Before, it served plaintext and the CLI said "cannot reach the watchlist service ... start it
(python -m services.watchlist)", sending a person in a circle.

With LFR_GRPC__DEV_PKI=false the same service serves plaintext, and the CLI now names the failed handshake
a TLS mismatch instead of advising to start a server that is running. Real service, real stack."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig_support import free_ports
from services.cli.launch import ensure_certs, grpc_health

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _start(log: Path, grpc_port: int, metrics_port: int, **settings: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}  # by hand: nothing but the ports
    env |= {"LFR_GRPC__PORT": str(grpc_port), "LFR_METRICS__PORT": str(metrics_port), **settings}
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "services.watchlist"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


def _wait_serving(proc: subprocess.Popen[bytes], port: int, tls: bool, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        # tls=False: plaintext only; tls=True: mTLS with the dev PKI first, then plaintext (see which answers)
        if asyncio.run(grpc_health(port, tls=tls)) == "SERVING":
            return
        time.sleep(0.5)
    raise AssertionError(f"watchlist not SERVING (tls={tls}) on :{port}:\n{log.read_text()[-3000:]}")


def _cli(port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    return subprocess.run([sys.executable, "-m", "services.cli.main", "watchlist", "--address", f"127.0.0.1:{port}",
                           "list"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture()
def service(tmp_path: Path) -> Iterator[tuple[Path, list[int], list[subprocess.Popen[bytes]]]]:
    ensure_certs()  # the dev PKI exists, as after `lfr certs init` / `lfr up`
    procs: list[subprocess.Popen[bytes]] = []
    yield tmp_path, free_ports(2), procs
    for p in procs:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def test_a_hand_started_service_uses_the_dev_pki(service: tuple[Path, list[int], list[subprocess.Popen[bytes]]]
                                                 ) -> None:
    tmp, (grpc_port, metrics_port), procs = service
    log = tmp / "watchlist.log"
    procs.append(proc := _start(log, grpc_port, metrics_port))
    _wait_serving(proc, grpc_port, tls=True, log=log)
    assert asyncio.run(grpc_health(grpc_port, tls=False)) is None, "a plaintext client gets no answer: it serves mTLS"
    run = _cli(grpc_port)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "cannot reach" not in run.stderr and "TLS" not in run.stderr, run.stderr
    assert "gRPC on mTLS with the development PKI" in log.read_text()


def test_plaintext_by_choice_and_the_cli_names_the_tls_mismatch(
        service: tuple[Path, list[int], list[subprocess.Popen[bytes]]]) -> None:
    tmp, (grpc_port, metrics_port), procs = service
    log = tmp / "watchlist.log"
    procs.append(proc := _start(log, grpc_port, metrics_port, LFR_GRPC__DEV_PKI="false"))
    _wait_serving(proc, grpc_port, tls=False, log=log)
    run = _cli(grpc_port)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "TLS mismatch with the watchlist service" in run.stderr, run.stderr
    assert "start it (python -m services.watchlist)" not in run.stderr, run.stderr
