"""After the e2e session's pipeline has run (this file sorts last), every service's log
(.lfr/logs/e2e-*.log) holds no embeddings, images, crops or secrets: no JPEG/PNG bytes or
their base64, no run of 32+ numbers (a vector), no PEM private key, and none of the dev
PKI's private keys or the device-token key."""

from __future__ import annotations

import re

import pytest

from e2e_support import E2E
from services.cli.launch import state_dir
from services.common.grpc_client import cert_paths

pytestmark = [pytest.mark.e2e]

PATTERNS = {
    "jpeg bytes": re.compile(rb"\xff\xd8\xff"),
    "png bytes": re.compile(rb"\x89PNG\r\n"),
    "jpeg base64": re.compile(rb"/9j/[A-Za-z0-9+/]{64}"),
    "png base64": re.compile(rb"iVBORw0KGgo[A-Za-z0-9+/]{32}"),
    "vector": re.compile(rb"(?:-?\d+\.\d+(?:e-?\d+)?,\s*){31}-?\d+\.\d+"),
    "private key": re.compile(rb"PRIVATE KEY-----"),
    "long base64 blob": re.compile(rb"[A-Za-z0-9+/]{400,}={0,2}"),
}


def test_service_logs_hold_no_biometrics_or_secrets(e2e: E2E) -> None:
    logs = sorted((state_dir() / "logs").glob("e2e-*.log"))
    assert logs, "no e2e logs"
    paths = cert_paths()
    secrets = [paths.device_token_key.read_bytes().strip()]
    secrets += [p.read_bytes().split(b"-----")[2].strip()[:40] for p in paths.root.glob("**/*.key")
                if b"-----" in p.read_bytes()]
    found = []
    for log in logs:
        data = log.read_bytes()
        for what, pattern in PATTERNS.items():
            m = pattern.search(data)
            if m:
                found.append(f"{log.name}: {what} at byte {m.start()}")
        found += [f"{log.name}: a secret of {paths.root}" for s in secrets if s and s in data]
    assert not found, "\n".join(found)
