"""Where the local stack keeps things on disk. It lives in common because two packages
read it: services.stack (the components it runs) and services.triton_repo (the model
repository it assembles under the state dir), and services.triton_repo must not import
services.stack (services.stack uses services.triton_repo: one way only)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class StackPaths:
    """Where the stack keeps things. cache: heavy, reusable artefacts outside the
    clone (jars, venvs, models). state: this checkout's runtime data, pids, logs."""

    cache: Path
    state: Path

    @classmethod
    def default(cls, repo_root: Path) -> "StackPaths":
        cache = Path(os.environ.get("LFR_CACHE", Path.home() / ".cache" / "lfr"))
        state = Path(os.environ.get("LFR_STATE", repo_root / ".lfr"))
        return cls(cache=cache, state=state)

    def data_dir(self, name: str) -> Path:
        return self.state / "data" / name

    def log_file(self, name: str) -> Path:
        return self.state / "logs" / f"{name}.log"

    def pid_file(self, name: str) -> Path:
        return self.state / "pids" / f"{name}.pid"
