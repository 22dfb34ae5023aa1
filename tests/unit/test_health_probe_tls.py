"""deploy/docker/grpc_health_probe.py (the containers' and the prod pods' health probe) against a
real gRPC server on mTLS: the kubelet's native gRPC probe cannot do TLS, so the prod
overlay runs this script with the probe's client certificate (LFR_CLIENT__*)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from services.common.grpc_server import GrpcServer
from services.common.pki import CertPaths, init
from services.common.settings import GrpcServerSettings

PROBE = Path(__file__).resolve().parents[2] / "deploy" / "docker" / "grpc_health_probe.py"


async def _probe(port: int, extra: dict[str, str]) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    env.update({"LFR_GRPC__PORT": str(port), **extra})
    proc = await asyncio.create_subprocess_exec(sys.executable, str(PROBE), env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, err.decode()


@pytest.mark.timeout(90)
async def test_probe_over_mtls(tmp_path: Path) -> None:
    pki = CertPaths(tmp_path / "certs")
    init(pki)
    cert, key = pki.server("matcher")
    settings = GrpcServerSettings.model_validate({
        "tls": {"cert_file": cert, "key_file": key, "ca_file": pki.ca, "require_client_cert": True},
        "auth": {"require_authentication": True}}).model_copy(update={"port": 0})
    server = GrpcServer(settings)
    await server.start()
    ccert, ckey = pki.client("matcher")
    mtls = {"LFR_CLIENT__CA_FILE": str(pki.ca), "LFR_CLIENT__CERT_FILE": str(ccert), "LFR_CLIENT__KEY_FILE": str(ckey)}
    try:
        await server.set_serving(False)
        assert (await _probe(server.port, mtls))[0] == 1  # NOT_SERVING
        await server.set_serving(True)
        assert await _probe(server.port, mtls) == (0, "")
        code, err = await _probe(server.port, {})  # plaintext to a TLS server
        assert code == 1 and "UNAVAILABLE" in err
        code, err = await _probe(server.port, {"LFR_CLIENT__CA_FILE": str(pki.ca)})  # no client certificate
        assert code == 1 and "health check failed" in err
        code, err = await _probe(server.port, {**mtls, "LFR_CLIENT__KEY_FILE": str(tmp_path / "missing.key")})
        assert code == 1 and "cannot read" in err and "missing.key" in err
    finally:
        await server.stop()
