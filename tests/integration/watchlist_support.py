"""The watchlist service as a real subprocess for integration tests: started with
the dev mTLS identity and the given settings, waited on until gRPC health says
SERVING, stopped with SIGTERM (it must exit 0), killed if it does not."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lfr.v1 import watchlist_pb2_grpc

from services.common.grpc_client import dev_server_env, sync_channel

REPO = Path(__file__).resolve().parents[2]


def health(port: int) -> int | None:
    with sync_channel(f"127.0.0.1:{port}") as channel:
        try:
            return int(health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                                 timeout=1).status)
        except grpc.RpcError:
            return None


@contextlib.contextmanager
def watchlist_service(grpc_port: int, metrics_port: int, log: Path, settings: dict[str, str],
                      no_tracebacks: bool = False) -> Iterator[watchlist_pb2_grpc.WatchlistServiceStub]:
    with watchlist_process(grpc_port, metrics_port, log, settings, no_tracebacks) as (stub, _):
        yield stub


@contextlib.contextmanager
def watchlist_process(grpc_port: int, metrics_port: int, log: Path, settings: dict[str, str],
                      no_tracebacks: bool = False
                      ) -> Iterator[tuple[watchlist_pb2_grpc.WatchlistServiceStub, subprocess.Popen[bytes]]]:
    """:func:`watchlist_service` with the service's process too (its pid: /proc/<pid>/status)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    env.update({"LFR_GRPC__PORT": str(grpc_port), "LFR_METRICS__PORT": str(metrics_port),
                **dev_server_env("watchlist"), **settings})
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.watchlist"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    channel = sync_channel(f"127.0.0.1:{grpc_port}")
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if health(grpc_port) == health_pb2.HealthCheckResponse.SERVING:
                break
            time.sleep(0.25)
        assert health(grpc_port) == health_pb2.HealthCheckResponse.SERVING, log.read_text()[-3000:]
        yield watchlist_pb2_grpc.WatchlistServiceStub(channel), proc
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0, log.read_text()[-3000:]
        if no_tracebacks:
            assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    finally:
        channel.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
