"""The Triton model repository: the committed configs are what models.yaml
renders, and every config parses as Triton's ModelConfig protobuf."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from services.triton_repo.generate import VARIANTS, generate, render_local, render_production, stale_files
from services.triton_repo.spec import DEPLOY_DIR, ModelSpec, load_spec

CONFIGS = sorted(p for v in VARIANTS for p in (DEPLOY_DIR / v).glob("*/config.pbtxt"))


def parse(text: str) -> mc.ModelConfig:
    return text_format.Parse(text, mc.ModelConfig())


def test_committed_configs_are_fresh() -> None:
    stale = stale_files()
    assert not stale, f"regenerate with 'python -m services.triton_repo generate': stale {stale}"


def test_regenerate_into_temp_dir_matches(tmp_path: Path) -> None:
    written = generate(tmp_path)
    assert written
    for p in written:
        rel = p.relative_to(tmp_path)
        assert (DEPLOY_DIR / rel).read_text() == p.read_text(), rel


def test_stale_config_is_detected(tmp_path: Path) -> None:
    generate(tmp_path)
    cfg = tmp_path / "production" / "mobilefacenet512" / "config.pbtxt"
    cfg.write_text(cfg.read_text().replace("max_batch_size: 64", "max_batch_size: 63"))
    (tmp_path / "local" / "retired_model").mkdir()
    (tmp_path / "local" / "retired_model" / "config.pbtxt").write_text('name: "retired_model"\n')
    assert stale_files(tmp_path) == ["local/retired_model/config.pbtxt", "production/mobilefacenet512/config.pbtxt"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_config_parses_as_triton_model_config(path: Path) -> None:
    cfg = parse(path.read_text())
    spec = load_spec().get(cfg.name)
    assert cfg.name == path.parent.name
    assert cfg.max_batch_size == spec.max_batch_size
    assert [(t.name, mc.DataType.Name(t.data_type), tuple(t.dims)) for t in cfg.input] == [
        (t.name, t.triton_dtype, t.dims) for t in spec.inputs]
    assert [(t.name, mc.DataType.Name(t.data_type), tuple(t.dims)) for t in cfg.output] == [
        (t.name, t.triton_dtype, t.dims) for t in spec.outputs]
    if spec.dynamic_batching:
        assert cfg.HasField("dynamic_batching")
        assert tuple(cfg.dynamic_batching.preferred_batch_size) == spec.dynamic_batching.preferred_batch_size
        assert cfg.dynamic_batching.max_queue_delay_microseconds == spec.dynamic_batching.max_queue_delay_us
    assert len(cfg.instance_group) == 1 and cfg.instance_group[0].count == spec.instances
    if path.parent.parent.name == "production":
        assert cfg.platform == "onnxruntime_onnx" and not cfg.backend
        assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
        accel = cfg.optimization.execution_accelerators.gpu_execution_accelerator
        assert [a.name for a in accel] == (["tensorrt"] if spec.tensorrt else [])
    else:
        assert cfg.backend == "python" and not cfg.platform
        assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
        if spec.kind == "onnx":
            assert cfg.parameters["onnx_file"].string_value == "model.onnx"
            assert int(cfg.parameters["intra_op_threads"].string_value) == spec.intra_op_threads


def test_every_model_has_both_variants_with_the_same_tensors() -> None:
    spec = load_spec()
    assert spec.get("identity").kind == "identity"
    for m in spec.models:
        local = parse((DEPLOY_DIR / "local" / m.name / "config.pbtxt").read_text())
        if not m.in_production:
            assert not (DEPLOY_DIR / "production" / m.name).exists()
            continue
        prod = parse((DEPLOY_DIR / "production" / m.name / "config.pbtxt").read_text())
        for field in ("input", "output", "max_batch_size", "dynamic_batching"):
            assert getattr(local, field) == getattr(prod, field), (m.name, field)


def test_tensorrt_accelerator_renders_and_parses() -> None:
    m = ModelSpec.model_validate({
        "name": "x", "onnx": "x.onnx", "max_batch_size": 4,
        "inputs": [{"name": "in", "dtype": "float16", "dims": [3, -1]}],
        "outputs": [{"name": "out", "dtype": "int64", "dims": [1]}],
        "tensorrt": {"precision": "FP32", "max_workspace_mb": 256}})
    cfg = parse(render_production(m))
    accel = cfg.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accel.name == "tensorrt"
    assert dict(accel.parameters) == {"precision_mode": "FP32", "max_workspace_size_bytes": str(256 << 20)}
    assert cfg.input[0].data_type == mc.TYPE_FP16 and cfg.output[0].data_type == mc.TYPE_INT64
    local = parse(render_local(m))
    assert local.backend == "python" and not local.HasField("dynamic_batching")


@pytest.mark.parametrize("bad", [
    {"max_batch_size": 0, "dynamic_batching": {"max_queue_delay_us": 10}},
    {"max_batch_size": 4, "dynamic_batching": {"preferred_batch_size": [8]}},
    {"max_batch_size": 4, "unknown_key": 1},
    {"max_batch_size": 4, "onnx": None},
    {"max_batch_size": 4, "inputs": [{"name": "in", "dtype": "float32", "dims": [0]}]},
])
def test_bad_descriptions_are_refused(bad: dict[str, object]) -> None:
    base: dict[str, object] = {
        "name": "x", "onnx": "x.onnx",
        "inputs": [{"name": "in", "dtype": "float32", "dims": [3]}],
        "outputs": [{"name": "out", "dtype": "float32", "dims": [3]}]}
    with pytest.raises(ValueError):
        ModelSpec.model_validate({**base, **bad})


def test_models_yaml_agrees_with_the_models_manifest() -> None:
    """The tensors Triton declares are the ones `lfr models build` produces."""
    manifest_mod = pytest.importorskip("services.models.manifest")
    manifest = manifest_mod.load_manifest()
    for m in load_spec().models:
        if m.kind != "onnx":
            continue
        assert m.name in manifest.models, f"{m.name} is served but not built by lfr models build"
        built = manifest.models[m.name]
        batch = [-1] if m.max_batch_size > 0 else []

        def contract(ts: object) -> dict[str, tuple[str, list[int]]]:
            return {t.name: (t.dtype, list(t.shape)) for t in ts}  # type: ignore[attr-defined]

        assert {t.name: (t.dtype, batch + list(t.dims)) for t in m.inputs} == contract(built.inputs), m.name
        assert {t.name: (t.dtype, batch + list(t.dims)) for t in m.outputs} == contract(built.outputs), m.name


def test_w600k_mbf_is_served_in_both_variants_as_an_opt_in_embedder() -> None:
    spec = load_spec()
    m = spec.get("w600k_mbf")
    emb = spec.get("mobilefacenet512")
    assert m.opt_in and not emb.opt_in and m.onnx == "w600k_mbf.onnx"
    assert (m.max_batch_size, m.dynamic_batching, m.instances, m.tensorrt) == (
        emb.max_batch_size, emb.dynamic_batching, emb.instances, emb.tensorrt)
    assert m.description != emb.description and "non-commercial research only" in m.description
    for variant in VARIANTS:
        text = (DEPLOY_DIR / variant / "w600k_mbf" / "config.pbtxt").read_text()
        assert "# OPT-IN: served only if w600k_mbf.onnx is provided" in text, variant
        cfg = parse(text)
        assert [(t.name, tuple(t.dims)) for t in cfg.input] == [("input", (112, 112, 3))]
        assert [(t.name, tuple(t.dims)) for t in cfg.output] == [("embedding", (512,))]
    assert "OPT-IN" not in (DEPLOY_DIR / "production" / "mobilefacenet512" / "config.pbtxt").read_text()


def test_opt_in_models_are_the_models_manifest_s_gated_ones() -> None:
    """opt_in in models.yaml marks exactly the models `lfr models build` builds only with an acknowledgement."""
    manifest = pytest.importorskip("services.models.manifest").load_manifest()
    gated = {n for n, m in manifest.models.items() if m.requires_acknowledgement}
    assert {m.name for m in load_spec().models if m.opt_in} == gated == {"w600k_mbf"}


def _models_init():
    import importlib.util

    path = DEPLOY_DIR.parent / "docker" / "models_init.py"
    spec = importlib.util.spec_from_file_location("models_init", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_production_lay_out_serves_w600k_mbf_only_when_its_onnx_is_provided(tmp_path: Path) -> None:
    """The models-init of compose and k8s: without w600k_mbf.onnx the others are laid out and it is skipped
    (not an error); with it, it is laid out like any model."""
    module = _models_init()
    spec = load_spec()
    onnx = tmp_path / "onnx"
    onnx.mkdir()
    for m in spec.models:
        if m.in_production and not m.opt_in:
            (onnx / m.onnx).write_bytes(m.name.encode())
    without = module.lay_out(DEPLOY_DIR, onnx, tmp_path / "a")
    assert "w600k_mbf" not in without and not (tmp_path / "a" / "w600k_mbf").exists()
    assert set(without) == {m.name for m in spec.models if m.in_production and not m.opt_in}
    (onnx / "w600k_mbf.onnx").write_bytes(b"w600k")
    with_it = module.lay_out(DEPLOY_DIR, onnx, tmp_path / "b")
    assert set(with_it) == set(without) | {"w600k_mbf"}
    assert (tmp_path / "b" / "w600k_mbf" / "1" / "model.onnx").read_bytes() == b"w600k"
    (onnx / "faceboxes.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="faceboxes.onnx is missing"):
        module.lay_out(DEPLOY_DIR, onnx, tmp_path / "c")


def test_identity_cannot_be_opt_in() -> None:
    with pytest.raises(ValueError):
        ModelSpec.model_validate({"name": "identity", "kind": "identity", "opt_in": True, "max_batch_size": 4,
                                  "inputs": [{"name": "I", "dtype": "float32", "dims": [-1]}],
                                  "outputs": [{"name": "O", "dtype": "float32", "dims": [-1]}]})


def test_local_assembly_says_how_to_build_a_missing_opt_in_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A missing opt-in model is skipped with an info line (its licence, the build command), not a warning."""
    import logging

    from services.common.stack_paths import StackPaths
    from services.triton_repo.assemble import assemble

    monkeypatch.setenv("LFR_CACHE", str(tmp_path / "cache"))
    paths = StackPaths(cache=tmp_path / "cache", state=tmp_path / "state")
    with caplog.at_level(logging.INFO, logger="lfr.triton_repo"):
        report = assemble(paths)
    assert "w600k_mbf" in report.skipped and report.served == ("identity",)
    opt_in = [r for r in caplog.records if "w600k_mbf" in r.getMessage()]
    assert [r.levelno for r in opt_in] == [logging.INFO]
    msg = opt_in[0].getMessage()
    assert "opt-in" in msg and "lfr models build w600k_mbf --accept-licence insightface-non-commercial-research" in msg
    others = [r for r in caplog.records if "mobilefacenet512" in r.getMessage()]
    assert [r.levelno for r in others] == [logging.WARNING]
