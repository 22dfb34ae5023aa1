"""Assemble the runtime model repository the local Triton serves
(<state>/triton-repo): the committed local configs, the shared python model and,
for each ONNX model, ``<model>/1/model.onnx`` linked to the file in the model
cache (built by `lfr models build`). Models whose ONNX file is not built yet are
skipped with a warning, opt-in models (a licence that needs an acknowledgement to build them) with a note
saying how to build them; the ``identity`` model is always there."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import shutil
from pathlib import Path

from services.common.errors import SetupError
from services.common.stack_paths import StackPaths
from services.triton_repo.generate import ONNX_IN_VERSION_DIR
from services.triton_repo.spec import DEPLOY_DIR, ModelSpec, RepoSpec, load_spec

log = logging.getLogger("lfr.triton_repo")

PYTHON_SOURCES = DEPLOY_DIR / "python"
SOURCE_FOR_KIND = {"onnx": "model.py", "identity": "identity_model.py"}


@dataclasses.dataclass(frozen=True)
class AssembleReport:
    root: Path
    served: tuple[str, ...]
    skipped: tuple[str, ...]


def runtime_repo(paths: StackPaths) -> Path:
    return paths.state / "triton-repo"


def onnx_path(model: ModelSpec, paths: StackPaths) -> Path:
    """Where `lfr models build` puts this model's ONNX file. Prefers the models
    package's own answer (services.models.paths.model_path) when it exists."""
    if model.onnx is None:
        raise ValueError(f"{model.name} has no ONNX file")
    try:
        mod = importlib.import_module("services.models.paths")
    except ModuleNotFoundError as e:
        if e.name not in ("services.models", "services.models.paths"):
            raise
        return paths.cache / "models" / "onnx" / model.onnx
    return Path(mod.model_path(model.name))


def _how_to_build(name: str) -> str:
    """The build command the models package gives for ``name`` (with its licence acknowledgement)."""
    from services.models.acknowledgement import how_to_build_line
    from services.models.manifest import load_manifest

    spec = load_manifest().models.get(name)
    return how_to_build_line(name, spec) if spec is not None else f"lfr models build {name}"


def servable(paths: StackPaths, spec: RepoSpec | None = None) -> tuple[str, ...]:
    """The models a fresh assembly would serve now (identity + every built ONNX model)."""
    spec = spec or load_spec()
    return tuple(m.name for m in spec.models if m.kind != "onnx" or onnx_path(m, paths).is_file())


def assemble(paths: StackPaths, spec: RepoSpec | None = None, local_dir: Path = DEPLOY_DIR / "local") -> AssembleReport:
    spec = spec or load_spec()
    root = runtime_repo(paths)
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    served, skipped = [], []
    for m in spec.models:
        cfg = local_dir / m.name / "config.pbtxt"
        if not cfg.is_file():
            raise SetupError(f"triton: {cfg} is missing",
                             "run 'python -m services.triton_repo generate' and commit the result")
        if m.kind == "onnx":
            src = onnx_path(m, paths)
            if not src.is_file():
                if m.opt_in:
                    log.info("triton: not serving opt-in model %s: %s is not built (its licence needs an "
                             "acknowledgement; to serve it: %s, then 'lfr stack up --only triton')",
                             m.name, src, _how_to_build(m.name))
                else:
                    log.warning("triton: skipping model %s: %s is not built yet (run 'lfr models build')", m.name, src)
                skipped.append(m.name)
                continue
        version = tmp / m.name / "1"
        version.mkdir(parents=True)
        shutil.copyfile(cfg, tmp / m.name / "config.pbtxt")
        shutil.copyfile(PYTHON_SOURCES / SOURCE_FOR_KIND[m.kind], version / "model.py")
        if m.kind == "onnx":
            os.symlink(src.resolve(), version / ONNX_IN_VERSION_DIR)
        served.append(m.name)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    log.info("triton: model repository %s serves %s", root, ", ".join(served))
    return AssembleReport(root, tuple(served), tuple(skipped))
