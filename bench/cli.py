"""`lfr bench <name> ...`: the project's benchmarks (not part of the test suite).

Each benchmark is a module of this package with ``add_parser(subparsers)``
(registering ``<name>`` and setting ``func``), listed in :data:`BENCHES`; a
module that does not exist (yet) is skipped, so benchmarks are added by adding
a module and one line here. Modules import nothing heavy at import time.
"""

from __future__ import annotations

import importlib
from typing import Any

# `lfr bench <name>` -> module; --help order
BENCHES: tuple[str, ...] = (
    "bench.pipeline",  # lfr bench pipeline: throughput vs the raw model loop, added latency
    "bench.soak",      # lfr bench soak: long-run resilience
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmarks (lfr bench <name> --help)")
    benches = p.add_subparsers(dest="bench", required=True, metavar="NAME")
    for name in BENCHES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):
                continue
            raise
        mod.add_parser(benches)
