"""Assembling the runtime repository the local Triton serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.stack.base import StackPaths
from services.triton_repo.assemble import assemble, onnx_path
from services.triton_repo.spec import load_spec


def test_assemble_links_built_models_and_skips_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFR_CACHE", str(tmp_path / "cache"))
    paths = StackPaths(cache=tmp_path / "cache", state=tmp_path / "state")
    spec = load_spec()
    onnx_models = [m for m in spec.models if m.kind == "onnx"]
    built = onnx_models[0]
    src = onnx_path(built, paths)
    if not src.resolve().is_relative_to(tmp_path.resolve()):
        pytest.skip(f"the models package puts {built.name} at {src}, outside this test's cache")
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(b"not really onnx")
    report = assemble(paths, spec)
    assert set(report.served) == {"identity", built.name}
    assert set(report.skipped) == {m.name for m in onnx_models[1:]}
    root = report.root
    assert (root / "identity" / "1" / "model.py").read_text().startswith('"""The trivial `identity`')
    link = root / built.name / "1" / "model.onnx"
    assert link.is_symlink() and link.resolve() == src.resolve()
    assert "onnxruntime" in (root / built.name / "1" / "model.py").read_text()
    assert (root / built.name / "config.pbtxt").is_file()
    for m in onnx_models[1:]:
        assert not (root / m.name).exists()
    # reassembling replaces the repository (a model deleted from the cache goes away)
    src.unlink()
    report = assemble(paths, spec)
    assert report.served == ("identity",)
    assert not (root / built.name).exists()
