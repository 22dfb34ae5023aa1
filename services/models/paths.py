"""Where the model cache lives: ``$LFR_CACHE/models`` (default ~/.cache/lfr/models)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The LFR cache (``LFR_CACHE`` overrides ~/.cache/lfr), as in services.stack.base.StackPaths."""
    return Path(os.environ.get("LFR_CACHE", Path.home() / ".cache" / "lfr"))


def models_root() -> Path:
    return cache_root() / "models"


def src_dir() -> Path:
    """npm tarballs and the files extracted from them."""
    return models_root() / "src"


def package_dir(package: str) -> Path:
    """Where the pinned files of npm package ``package`` are extracted (``@scope/name`` -> ``scope__name``)."""
    return src_dir() / package.replace("/", "__").lstrip("@")


def convert_venv_dir() -> Path:
    return models_root() / "convert-venv"


def model_dir() -> Path:
    """The built ONNX files, named by their Triton model name."""
    return models_root() / "onnx"


def model_path(name: str) -> Path:
    """The ONNX file of model ``name`` (a Triton model name: faceboxes, onet, facemesh, mobilefacenet512)."""
    return model_dir() / f"{name}.onnx"


def build_manifest_path() -> Path:
    """What the last build produced: sha256 of each ONNX file and its content hash."""
    return model_dir() / "build.json"
