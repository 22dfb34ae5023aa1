"""Identifiers (services/common/ids.py): one rule for the CLI, the PKI and the officers
service. `lfr officer on-duty ../../x` used to issue a certificate for "../../x" and write
it two directories above <state>/certs/client; now the CLI refuses it (usage error, exit 2)
and so does the PKI, and nothing is written anywhere."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.ids import RULE, InvalidId, check_id, cli_id
from services.common.pki import CertPaths, ensure_officer, init
from services.officers.state import StateError
from services.officers.state import check_id as officers_check_id

REPO = Path(__file__).resolve().parents[2]
GOOD = ["officer-1", "a", "user@force.example", "zone:north_1", "x" * 128]
BAD = ["../../x", "..", ".", ".hidden", "a/b", "a\\b", "", "x" * 129, "a b", "a\nb", "officer-1\n", "é"]


@pytest.mark.parametrize("value", GOOD)
def test_good_ids(value: str) -> None:
    assert check_id("officer id", value) == value
    assert officers_check_id("officer_id", value) == value


@pytest.mark.parametrize("value", BAD)
def test_bad_ids_are_refused_without_echoing_them(value: str) -> None:
    with pytest.raises(InvalidId) as err:
        check_id("officer id", value)
    assert str(err.value) == f"officer id must be {RULE} ({len(value)} given)"  # the value is never echoed
    with pytest.raises(StateError):  # the officers service applies the same rule
        officers_check_id("officer_id", value)
    with pytest.raises(argparse.ArgumentTypeError, match="officer id must be"):
        cli_id("officer id")(value)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    paths = CertPaths(tmp_path_factory.mktemp("state") / "certs")
    init(paths)
    return paths


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_the_pki_refuses_a_path_as_a_principal(pki: CertPaths) -> None:
    state = pki.root.parent
    before = _tree(state)
    for bad in ("../../x", "..", "a/b"):
        with pytest.raises(InvalidId, match="must be"):
            pki.client(bad)
        with pytest.raises(InvalidId, match="officer id must be"):
            ensure_officer(pki, bad)
    assert _tree(state) == before
    ensure_officer(pki, "officer-9")  # a plain id still gets its certificate, inside client/
    assert _tree(state) - before == {"certs/client/officer-9.pem", "certs/client/officer-9.key"}


def test_lfr_officer_on_duty_refuses_a_path_and_writes_nothing(pki: CertPaths) -> None:
    state = pki.root.parent
    before = _tree(state)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    env["LFR_STATE"] = str(state)
    res = subprocess.run([sys.executable, "-m", "services.cli.main", "officer", "on-duty", "../../x", "--zone", "z",
                          "--device", "d", "--addr", "127.0.0.1:9"], capture_output=True, text=True, env=env,
                         cwd=REPO, timeout=60)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "argument officer: officer id must be 1-128 characters" in res.stderr, res.stderr
    assert _tree(state) == before
    assert not (state / "x.pem").exists() and not (state.parent / "x.pem").exists()
