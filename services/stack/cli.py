"""`lfr stack install|up|down|status [--json]`."""

from __future__ import annotations

import argparse
import json
import logging
import sys

log = logging.getLogger("lfr.stack")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stack", help="the local stack of real servers: Kafka, Redis, Milvus, Triton, Prometheus")
    p.add_argument("action", choices=["install", "up", "down", "status"])
    p.add_argument("--only", action="append", help="limit to a component (repeatable)")
    p.add_argument("--json", action="store_true", help="machine-readable status")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from services.stack import manager

    comps = manager.load_components(only=args.only)
    if args.action == "install":
        manager.install(comps)
        return 0
    if args.action == "up":
        for h in manager.up(comps):
            print(f"{h.name:10s} up    pid={h.pid} {h.endpoint} {h.detail}", file=sys.stderr)
        return 0
    if args.action == "down":
        left = manager.down(comps)
        if left:
            from services.common.errors import SetupError

            raise SetupError(f"after 'lfr stack down' something is left: {'; '.join(left)}",
                             "find it with ss -ltnp / ps -o pid,pgid,cmd and stop it, then rerun 'lfr stack down'")
        print("stack stopped", file=sys.stderr)
        return 0
    health = manager.status(comps)
    if args.json:
        print(json.dumps({"healthy": all(h.healthy for h in health),
                          "components": {h.name: h.as_dict() for h in health}}, indent=2))
    else:
        for h in health:
            print(f"{h.name:10s} {'healthy' if h.healthy else 'DOWN':8s} pid={h.pid} {h.endpoint} {h.detail}")
    return 0 if all(h.healthy for h in health) else 1
