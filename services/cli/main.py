"""`lfr`: the project's one command line. Each subcommand lives in its own
module with ``add_parser(subparsers)``; modules import nothing heavy at import
time, so `lfr --help` stays fast."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Iterable
from typing import Any

from services.common.errors import SetupError
from services.common.paths import REPO_ROOT

# subcommand modules, in --help order; a module that does not exist yet is skipped
SUBCOMMANDS: tuple[str, ...] = (
    "services.cli.up",
    "services.stack.cli",
    "services.models.cli",
    "services.eval.cli",
    "services.cli.demo",
    "services.watchlist.cli",
    "services.audit.cli",
    "services.officers.cli",
    "services.alerts.cli",
    "services.cli.certs",
    "bench.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lfr", description="Live facial recognition platform")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    if str(REPO_ROOT) not in sys.path:  # bench/ is not an installed package: import it from the checkout
        sys.path.append(str(REPO_ROOT))
    add_subcommands(sub, SUBCOMMANDS)
    return parser


def add_subcommands(sub: Any, modules: Iterable[str]) -> None:
    """``add_parser(sub)`` of each module, in order; a module that does not exist (yet) is skipped."""
    for name in modules:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and name.startswith(e.name):
                continue
            raise
        mod.add_parser(sub)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from services.common.logs import configure_logging

    configure_logging(level=logging.DEBUG if args.verbose else logging.INFO, json_format=False)
    try:
        return int(args.func(args) or 0)
    except SetupError as e:
        print(e.one_line(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
