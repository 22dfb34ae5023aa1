"""Shared helpers for tests/unit/test_deploy_*.py: where the offline deploy tools live.

The tools are installed (network allowed) by deploy/tools/install-tools.sh into $LFR_CACHE/bin and
$LFR_CACHE/deploy-schemas; the tests only run them (no network). A missing tool skips its test
locally, with the fix in the reason, and fails under CI (CI=true), where `make test`'s setup must
have run install-tools.sh.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("LFR_CACHE", Path.home() / ".cache" / "lfr"))
BIN = CACHE / "bin"
SCHEMAS = CACHE / "deploy-schemas"
INSTALL_HINT = "run deploy/tools/install-tools.sh (make test's setup does)"
CATALOG = ROOT / "deploy" / "prometheus" / "metrics-catalog.txt"


class ComposeLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads compose's merge tags (``!override``, ``!reset``) as plain values."""


def _untagged(loader: yaml.SafeLoader, node: yaml.Node) -> object:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)


ComposeLoader.add_constructor("!override", _untagged)
ComposeLoader.add_constructor("!reset", _untagged)


def load_compose_file(name: str) -> dict:
    """A compose file of the repository as written (no merge with others: compose-go does that, composecheck)."""
    return yaml.load((ROOT / name).read_text(encoding="utf-8"), Loader=ComposeLoader)  # noqa: S506 (a SafeLoader)


def versions() -> dict[str, str]:
    """deploy/tools/versions.env as a dict."""
    out: dict[str, str] = {}
    for line in (ROOT / "deploy" / "tools" / "versions.env").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def missing(what: str) -> None:
    """Skip (locally) or fail (CI) because a tool or schema set is not installed."""
    message = f"{what} is not installed — fix: {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def tool(name: str, version_key: str | None = None) -> Path:
    """The path of an installed tool binary (pinned version when version_key is given)."""
    path = BIN / (f"{name}-{versions()[version_key]}" if version_key else name)
    if not (path.is_file() and os.access(path, os.X_OK)):
        missing(f"{path.name}")
    return path


def run(cmd: list[str | Path], timeout: float = 120, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """Run a tool offline and return the completed process (never raises on a non-zero exit)."""
    return subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def kustomize_build(path: Path) -> tuple[str, list[dict]]:
    """``kustomize build PATH`` with the pinned kustomize: the rendered YAML and its documents."""
    proc = run([tool("kustomize", "KUSTOMIZE_VERSION"), "build", path])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, [d for d in yaml.safe_load_all(proc.stdout) if d]


def catalog() -> set[str]:
    """The metric names of deploy/prometheus/metrics-catalog.txt."""
    names = set()
    for line in CATALOG.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.add(line)
    return names


METRIC_RE = re.compile(r"\b((?:lfr|nv)_[a-z0-9_]+)")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names(text: str) -> set[str]:
    """Every lfr_* / nv_* metric name in a PromQL expression (histogram suffixes folded)."""
    out = set()
    for name in METRIC_RE.findall(text):
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in catalog():
                name = name[: -len(suffix)]
                break
        out.add(name)
    return out
