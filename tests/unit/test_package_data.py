"""The data files the face services read at start (the model manifest, the embedders' calibration records) are
package data: the service image installs the project as a wheel (deploy/docker/service.Dockerfile), which holds
only .py files otherwise, and then no recognizer, matcher or watchlist service would start."""

from __future__ import annotations

import fnmatch
import tomllib

from deploy_support import ROOT
from services.face.embedders import CALIBRATION_DIR, MANIFEST_FILE, embedders, load_calibration


def test_the_manifest_and_every_calibration_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package = ROOT / "services" / "models"
    patterns = config["tool"]["setuptools"].get("package-data", {}).get("services.models", [])
    files = [MANIFEST_FILE, *sorted(CALIBRATION_DIR.glob("*.json"))]
    assert all(f.is_relative_to(package) and f.is_file() for f in files)
    missing = [f.relative_to(package).as_posix() for f in files
               if not any(fnmatch.fnmatchcase(f.relative_to(package).as_posix(), pat) for pat in patterns)]
    assert not missing, f"not in the wheel (pyproject [tool.setuptools.package-data]): {missing}"
    assert all(load_calibration(name) is not None for name in embedders()), "every embedder ships calibrated"
