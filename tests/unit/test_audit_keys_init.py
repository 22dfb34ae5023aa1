"""`lfr audit keys init --dir DIR` (the one-shot step of the development deployments): every service's
Ed25519 audit key (0600) and the keyring, made once and kept after (a second run never replaces a key that a
running service signs with), refusing a service name it does not know and a directory it cannot write."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from services.cli.main import main
from services.common.audit import AuditSigner, Keyring
from services.common.pki import SERVICES


def test_makes_every_service_key_once_and_keeps_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "keys", "init", "--dir", str(tmp_path)]) == 0
    assert f"created {len(SERVICES)}" in capsys.readouterr().out
    keys = {s: (tmp_path / "audit" / f"{s}.key").read_bytes() for s in SERVICES}
    for s in SERVICES:
        assert stat.S_IMODE((tmp_path / "audit" / f"{s}.key").stat().st_mode) == 0o600
    ring = Keyring.load(tmp_path / "audit" / "pub")
    assert {service for service, _ in ring.keys.values()} == set(SERVICES)
    for s in SERVICES:
        assert AuditSigner.load(s, tmp_path / "audit" / f"{s}.key").key_id in ring.keys

    assert main(["audit", "keys", "init", "--dir", str(tmp_path)]) == 0
    assert f"created 0 (-), kept {len(SERVICES)}" in capsys.readouterr().out
    assert {s: (tmp_path / "audit" / f"{s}.key").read_bytes() for s in SERVICES} == keys


def test_one_service_and_the_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "keys", "init", "--dir", str(tmp_path), "--service", "watchlist"]) == 0
    assert sorted(p.name for p in (tmp_path / "audit").glob("*.key")) == ["watchlist.key"]
    assert main(["audit", "keys", "init", "--dir", str(tmp_path), "--service", "../x"]) == 2
    assert "unknown service(s) ../x" in capsys.readouterr().err
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    assert main(["audit", "keys", "init", "--dir", str(blocked / "certs")]) == 2
    assert "cannot make the audit keys" in capsys.readouterr().err
