"""`lfr bench <name> ...`: the project's benchmarks (not part of the test suite).

Each benchmark is a module of this package with ``add_parser(subparsers)``
(registering ``<name>`` and setting ``func``), listed in :data:`BENCHES`; a
module that does not exist (yet) is skipped, so benchmarks are added by adding
a module and one line here. Modules import nothing heavy at import time.
"""

from __future__ import annotations

from typing import Any

from services.cli.main import add_subcommands

# `lfr bench <name>` -> module; --help order
BENCHES: tuple[str, ...] = (
    "bench.pipeline",  # lfr bench pipeline: throughput vs the raw model loop, added latency
    "bench.soak",      # lfr bench soak: long-run resilience
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmarks (lfr bench <name> --help)")
    add_subcommands(p.add_subparsers(dest="bench", required=True, metavar="NAME"), BENCHES)
