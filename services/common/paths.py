"""Where the checkout is: the one definition of the repository root that services/ reads its files from."""

from __future__ import annotations

from pathlib import Path
from typing import Final

# services/common/paths.py -> the checkout (deploy/, proto/, bench/, .lfr/ lie under it)
REPO_ROOT: Final[Path] = Path(__file__).resolve().parents[2]


def resolve(path: Path | str, root: Path = REPO_ROOT) -> Path:
    """A path from config: absolute as given, relative to the repository root otherwise."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p
