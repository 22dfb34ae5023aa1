"""pytest imports test files by basename (rootdir-relative, no __init__.py): two test
files with one name in different folders make the whole run fail at collection."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_file_basenames_are_unique_across_suites() -> None:
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py")
    assert not [n for n, k in names.items() if k > 1], sorted(n for n, k in names.items() if k > 1)
