"""deploy/docker/models_init.py (the compose `models-init` service and the k8s initContainer) lays out
Triton's production repository from the real models.yaml and generated configs, and refuses to run
with a missing ONNX file."""

from __future__ import annotations

import importlib.util

import pytest
import yaml

from deploy_support import ROOT

SPEC = ROOT / "deploy" / "triton"


def load():
    spec = importlib.util.spec_from_file_location("models_init", ROOT / "deploy" / "docker" / "models_init.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def production_models() -> dict[str, str]:
    models = yaml.safe_load((SPEC / "models.yaml").read_text(encoding="utf-8"))["models"]
    return {m["name"]: m["onnx"] for m in models if (SPEC / "production" / m["name"] / "config.pbtxt").is_file()}


def test_lays_out_every_production_model(tmp_path) -> None:
    wanted = production_models()
    if not wanted:
        pytest.skip("deploy/triton/production has no generated configs yet")
    onnx = tmp_path / "onnx"
    onnx.mkdir()
    for i, file in enumerate(sorted(set(wanted.values()))):
        (onnx / file).write_bytes(b"stand-in bytes %d" % i)  # content is copied, never parsed
    out = tmp_path / "models"
    assert sorted(load().lay_out(SPEC, onnx, out)) == sorted(wanted)
    for name, file in wanted.items():
        assert (out / name / "config.pbtxt").read_text() == (SPEC / "production" / name / "config.pbtxt").read_text()
        assert (out / name / "1" / "model.onnx").read_bytes() == (onnx / file).read_bytes()


def test_missing_onnx_fails_loudly(tmp_path) -> None:
    if not production_models():
        pytest.skip("deploy/triton/production has no generated configs yet")
    module = load()
    assert module.main(["--spec", str(SPEC), "--onnx", str(tmp_path), "--out", str(tmp_path / "m")]) == 1
