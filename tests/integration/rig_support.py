"""What the integration tests that start their own servers or services share: free ports, a gRPC health
probe, a Triton readiness check (private Kafka topics: the ``kafka_topics`` fixture, tests/conftest.py)."""

from __future__ import annotations

import random
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that are free now, chosen below the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` lies in the ephemeral range, where any outgoing
    connection (a Kafka client, a health probe) may take it before the service under test binds it;
    CI saw exactly that. Ports below the range are never given to outgoing connections."""
    low, _ = _ephemeral_range()
    lo, hi = (20000, low - 1) if low > 21000 else (61000, 65000)
    rng = random.Random()
    chosen: list[int] = []
    while len(chosen) < n:
        port = rng.randint(lo, hi)
        if port in chosen:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
    return chosen


def free_port() -> int:
    return free_ports(1)[0]


def wait_listening(proc: subprocess.Popen[bytes] | subprocess.Popen[str], port: int, log: Path, what: str,
                   timeout_s: float = 20.0) -> None:
    """Return once ``port`` accepts connections; kill ``proc`` and fail with its log's tail when it exits or
    ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"{what} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)


def require_triton_model(model: str = "mobilefacenet512") -> None:
    """Fail the test, saying how to fix it, unless the local Triton serves ``model``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:8000/v2/models/{model}/ready", timeout=3) as r:
            if r.status == 200:
                return
    except OSError as e:
        pytest.fail(f"Triton model {model} not ready on 127.0.0.1:8000 ({e}): run '.venv/bin/lfr models build' "
                    "and '.venv/bin/lfr stack up --only triton'")
    pytest.fail(f"Triton model {model} not ready on 127.0.0.1:8000")


async def health(port: int) -> int | None:
    """The serving status of a plaintext gRPC server on ``port``, None while it does not answer."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                                    timeout=1)
        except grpc.RpcError:
            return None
        return int(reply.status)
