"""Render deploy/triton/models.yaml into the two Triton repository variants.

local/<model>/config.pbtxt       backend "python" (the shared model.py runs onnxruntime on CPU)
production/<model>/config.pbtxt  platform "onnxruntime_onnx", KIND_GPU, optional TensorRT

The output is deterministic text, so a test can regenerate it and compare with
what is committed."""

from __future__ import annotations

import filecmp
import logging
import shutil
import tempfile
from pathlib import Path

from services.triton_repo.spec import DEPLOY_DIR, ModelSpec, RepoSpec, TensorSpec, load_spec

log = logging.getLogger("lfr.triton_repo")

HEADER = ("# GENERATED from deploy/triton/models.yaml by `python -m services.triton_repo generate`.\n"
          "# Do not edit: change models.yaml and regenerate.\n")
VARIANTS: tuple[str, ...] = ("local", "production")
# the file each local python model loads, inside <model>/<version>/
ONNX_IN_VERSION_DIR = "model.onnx"


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _tensors(key: str, tensors: tuple[TensorSpec, ...]) -> list[str]:
    out = [f"{key} ["]
    for i, t in enumerate(tensors):
        out += ["  {",
                f"    name: {_q(t.name)}",
                f"    data_type: {t.triton_dtype}",
                f"    dims: [ {', '.join(str(d) for d in t.dims)} ]",
                "  }" + ("," if i < len(tensors) - 1 else "")]
    out.append("]")
    return out


def _param(key: str, value: str) -> list[str]:
    return ["parameters {", f"  key: {_q(key)}", f"  value: {{ string_value: {_q(value)} }}", "}"]


def _common(m: ModelSpec, kind: str) -> list[str]:
    lines = [f"max_batch_size: {m.max_batch_size}"]
    lines += _tensors("input", m.inputs)
    lines += _tensors("output", m.outputs)
    lines += ["instance_group [", "  {", f"    count: {m.instances}", f"    kind: {kind}", "  }", "]"]
    if m.dynamic_batching is not None:
        db = m.dynamic_batching
        lines.append("dynamic_batching {")
        if db.preferred_batch_size:
            lines.append(f"  preferred_batch_size: [ {', '.join(str(b) for b in db.preferred_batch_size)} ]")
        lines += [f"  max_queue_delay_microseconds: {db.max_queue_delay_us}", "}"]
    return lines


def _header(m: ModelSpec) -> str:
    if not m.opt_in:
        return HEADER
    return HEADER + (f"# OPT-IN: served only if {m.onnx} is provided (its licence needs an acknowledgement to build "
                     f"it: lfr models card {m.name}).\n")


def render_local(m: ModelSpec) -> str:
    lines = [f"name: {_q(m.name)}", 'backend: "python"'] + _common(m, "KIND_CPU")
    if m.kind == "onnx":
        lines += _param("onnx_file", ONNX_IN_VERSION_DIR)
        lines += _param("intra_op_threads", str(m.intra_op_threads))
    return _header(m) + "\n".join(lines) + "\n"


def render_production(m: ModelSpec) -> str:
    lines = [f"name: {_q(m.name)}", 'platform: "onnxruntime_onnx"'] + _common(m, "KIND_GPU")
    if m.tensorrt is not None:
        lines += ["optimization {", "  execution_accelerators {", "    gpu_execution_accelerator [", "      {",
                  '        name: "tensorrt"',
                  f'        parameters {{ key: "precision_mode" value: {_q(m.tensorrt.precision)} }}',
                  '        parameters {{ key: "max_workspace_size_bytes" value: {} }}'.format(
                      _q(str(m.tensorrt.max_workspace_mb * 1024 * 1024))),
                  "      }", "    ]", "  }", "}"]
    return _header(m) + "\n".join(lines) + "\n"


def render(spec: RepoSpec) -> dict[str, str]:
    """relative path -> file text, for both variants."""
    files: dict[str, str] = {}
    for m in spec.models:
        files[f"local/{m.name}/config.pbtxt"] = render_local(m)
        if m.in_production:
            files[f"production/{m.name}/config.pbtxt"] = render_production(m)
    return files


def generate(out_dir: Path = DEPLOY_DIR, spec: RepoSpec | None = None) -> list[Path]:
    """Write both variants under out_dir (local/, production/); remove configs of
    models no longer described. Returns the written paths."""
    spec = spec or load_spec()
    files = render(spec)
    for variant in VARIANTS:
        root = out_dir / variant
        if root.is_dir():
            for cfg in root.glob("*/config.pbtxt"):
                if f"{variant}/{cfg.parent.name}/config.pbtxt" not in files:
                    shutil.rmtree(cfg.parent)
                    log.info("removed stale model config %s", cfg.parent)
    written = []
    for rel, text in sorted(files.items()):
        p = out_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, encoding="utf-8")
        written.append(p)
    return written


def stale_files(committed: Path = DEPLOY_DIR, spec: RepoSpec | None = None) -> list[str]:
    """Relative paths whose committed config differs from a fresh render (or is
    missing, or is no longer described). Empty when up to date."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp)
        generate(fresh, spec)
        want = {str(p.relative_to(fresh)) for v in VARIANTS for p in (fresh / v).glob("*/config.pbtxt")}
        have = {str(p.relative_to(committed)) for v in VARIANTS for p in (committed / v).glob("*/config.pbtxt")}
        stale = sorted(have ^ want)
        stale += sorted(r for r in want & have if not filecmp.cmp(fresh / r, committed / r, shallow=False))
        return stale
