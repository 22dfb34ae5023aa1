"""A device-token signing key too short to sign with is refused at start.

Before: an empty key file made the officers service accept tokens HMAC-signed with the
empty key, i.e. anyone could mint a supervisor token. Now the real officers service,
started with the dev mTLS identity and a key file of 0 or 31 bytes, exits 2 at once with
one error line naming the file and the fix, and never prints the key; 32 bytes start."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rig_support import free_ports

from services.common.grpc_client import dev_server_env
from services.common.tokens import MIN_KEY_BYTES

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]


def _start(key_file: Path, log: Path) -> subprocess.Popen[bytes]:
    grpc_port, metrics_port = free_ports(2)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    env.update({**dev_server_env("officers"), "LFR_GRPC__PORT": str(grpc_port), "LFR_METRICS__PORT": str(metrics_port),
                "LFR_GRPC__AUTH__DEVICE_TOKEN_KEY_FILE": str(key_file)})
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "services.officers"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)


@pytest.mark.parametrize("size", [0, MIN_KEY_BYTES - 1])
def test_the_officers_service_refuses_a_short_device_token_key(tmp_path: Path, size: int) -> None:
    key_file = tmp_path / "device-token.key"
    key = b"Q" * size
    key_file.write_bytes(key + b"\n")
    log = tmp_path / "officers.log"
    proc = _start(key_file, log)
    try:
        assert proc.wait(timeout=60) == 2, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    errors = [json.loads(ln)["msg"] for ln in text.splitlines() if "lfr: error:" in ln]
    assert len(errors) == 1, text[-3000:]
    line = errors[0]
    assert f"device token key {key_file} is too short" in line and f"is {size} bytes" in line, line
    assert f"at least {MIN_KEY_BYTES}" in line and "— fix: " in line, line
    assert size == 0 or key.decode() not in text  # the key itself is never logged
    assert "grpc listening" not in text


def test_a_key_of_32_bytes_starts(tmp_path: Path) -> None:
    key_file = tmp_path / "device-token.key"
    key_file.write_bytes(os.urandom(MIN_KEY_BYTES).hex()[:MIN_KEY_BYTES].encode())
    log = tmp_path / "officers.log"
    proc = _start(key_file, log)
    try:
        deadline = time.monotonic() + 60
        while "grpc listening" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proc.poll() is None and "grpc listening" in log.read_text(), log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
