"""Each service starts against the real stack, turns gRPC health SERVING, serves
/metrics and exits 0 soon after SIGTERM. Needs `lfr stack up` (Kafka, Redis,
Milvus, Triton)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.common.grpc_client import dev_server_env, sync_channel

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# offset ports so a running `make up` (brief's ports) does not collide with the test
SERVICES = {
    "ingest": (50051, 9101, ("kafka", "redis")),
    "recognizer": (50052, 9102, ("kafka", "triton")),
    "matcher": (50053, 9103, ("kafka", "milvus", "redis")),
    "alerts": (50054, 9104, ("kafka", "redis")),
    "officers": (50056, 9106, ("kafka", "redis")),
}
OFFSET = 1000
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 8.0


def _health(port: int) -> int | None:
    with sync_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
        except grpc.RpcError:
            return None
        return int(reply.status)


@pytest.mark.parametrize("name", list(SERVICES))
def test_service_starts_serves_health_and_metrics_and_stops_on_sigterm(name: str, tmp_path: Path) -> None:
    grpc_port, metrics_port, deps = SERVICES[name]
    grpc_port, metrics_port = grpc_port + OFFSET, metrics_port + OFFSET
    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    env.update({"LFR_GRPC__PORT": str(grpc_port), "LFR_METRICS__PORT": str(metrics_port), **dev_server_env(name)})
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", f"services.{name}"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            status = _health(grpc_port)
            if status == health_pb2.HealthCheckResponse.SERVING:
                break
            time.sleep(0.25)
        assert proc.poll() is None, f"{name} exited early ({proc.returncode}):\n{log.read_text()[-3000:]}"
        assert status == health_pb2.HealthCheckResponse.SERVING, f"{name} not SERVING:\n{log.read_text()[-3000:]}"

        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
        for dep in deps:
            assert f'lfr_dependency_up{{dependency="{dep}"}} 1.0' in metrics, metrics
        assert 'lfr_service_info{instance=' in metrics

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=STOP_TIMEOUT_S)
        took = time.monotonic() - started
        assert code == 0, f"{name} exit code {code}:\n{log.read_text()[-3000:]}"
        assert took < STOP_TIMEOUT_S
        text = log.read_text()
        assert '"msg": "service stopped"' in text and "Traceback" not in text, text[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
