"""The committed model manifest is complete and consistent; a built cache verifies against it."""

from __future__ import annotations

import re

import pytest

from services.models import paths
from services.models.build import _load_build_record, sha256_file
from services.models.manifest import load_manifest

HEX = re.compile(r"^[0-9a-f]{64}$")


def test_manifest_pins_every_input_and_output() -> None:
    man = load_manifest()
    assert set(man.models) >= {"faceboxes", "onet", "facemesh", "mobilefacenet512"}
    for pkg in man.packages.values():
        assert HEX.match(pkg.sha256) and pkg.license == "MIT" and "@" in pkg.spec
        assert all(HEX.match(h) for h in pkg.files.values())
    for name, m in man.models.items():
        files = man.packages[m.package].files
        assert m.source in files and all(c in files for c in m.companions), name
        assert m.content_sha256 and HEX.match(m.content_sha256), f"{name}: output content hash not pinned"
        assert m.inputs and m.outputs and all(t.shape[0] == -1 for t in m.inputs + m.outputs), name


@pytest.mark.skipif(not paths.build_manifest_path().is_file(), reason="models not built: run 'lfr models build'")
def test_built_cache_matches_manifest() -> None:
    man = load_manifest()
    record = _load_build_record()
    for name, m in man.models.items():
        rec = record[name]
        assert rec["content_sha256"] == m.content_sha256
        assert sha256_file(paths.model_path(name)) == rec["sha256"]


def test_embedder_edits_keep_the_source_network() -> None:
    """mobilefacenet512 is FacePlugin's fr_feature.onnx after graph edits (NHWC Transpose in
    front, BGR->RGB inside the first Conv, dynamic batch): a batch of NHWC RGB faces through
    the built file gives what the source gives on each face alone, NCHW and BGR."""
    import numpy as np
    import onnxruntime as ort

    man = load_manifest()
    spec = man.models["mobilefacenet512"]
    source = paths.package_dir(spec.package) / spec.source
    built = paths.model_path("mobilefacenet512")
    if not (source.is_file() and built.is_file()):
        pytest.skip("models not built: run 'lfr models build'")
    src = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    out = ort.InferenceSession(str(built), providers=["CPUExecutionProvider"])
    faces = np.random.default_rng(3).integers(0, 256, (3, 112, 112, 3)).astype(np.float32)
    got = out.run(["embedding"], {"input": (faces - 127.5) / 128})[0]
    assert got.shape == (3, 512)
    for face, emb in zip(faces, got):
        bgr_nchw = ((face[:, :, ::-1] - 127.5) / 128).transpose(2, 0, 1)[None]
        want = src.run(None, {src.get_inputs()[0].name: np.ascontiguousarray(bgr_nchw)})[0][0]
        np.testing.assert_allclose(emb, want, atol=1e-5)


def test_a_full_build_removes_models_the_manifest_retired(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that left the manifest (the 192-d MobileFaceNet did) leaves the cache too;
    files build.json does not name are not touched."""
    import json

    from services.models.build import prune_retired

    monkeypatch.setenv("LFR_CACHE", str(tmp_path))
    paths.model_dir().mkdir(parents=True)
    man = load_manifest()
    kept = next(iter(man.models))
    for name in ("mobilefacenet", kept, "someone_elses"):
        paths.model_path(name).write_bytes(b"onnx")
    paths.build_manifest_path().write_text(json.dumps({"models": {"mobilefacenet": {}, kept: {}}}))
    said: list[str] = []
    assert prune_retired(man, said.append) == ["mobilefacenet"]
    assert not paths.model_path("mobilefacenet").exists()
    assert said == ["removed mobilefacenet.onnx: no longer in the manifest"]
    assert paths.model_path(kept).exists() and paths.model_path("someone_elses").exists()
    assert set(json.loads(paths.build_manifest_path().read_text())["models"]) == {kept}
    assert prune_retired(man, said.append) == []  # idempotent
