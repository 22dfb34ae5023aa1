"""The local stack: the four real servers, started and stopped in order."""

from __future__ import annotations

import importlib
from pathlib import Path

from services.stack.base import Component, Health, StackPaths

REPO_ROOT = Path(__file__).resolve().parents[2]

# start order; stop is the reverse. module:class, imported only when used.
COMPONENTS: tuple[str, ...] = (
    "services.stack.redis:RedisComponent",
    "services.stack.kafka:KafkaComponent",
    "services.stack.milvus:MilvusComponent",
    "services.stack.triton:TritonComponent",
)


def load_components(paths: StackPaths | None = None, only: list[str] | None = None) -> list[Component]:
    paths = paths or StackPaths.default(REPO_ROOT)
    out: list[Component] = []
    for spec in COMPONENTS:
        mod, cls = spec.split(":")
        comp = getattr(importlib.import_module(mod), cls)(paths)
        if only is None or comp.name in only:
            out.append(comp)
    return out


def install(comps: list[Component]) -> None:
    for c in comps:
        c.install()


def up(comps: list[Component]) -> list[Health]:
    return [c.start() for c in comps]


def down(comps: list[Component]) -> None:
    for c in reversed(comps):
        c.stop()


def status(comps: list[Component]) -> list[Health]:
    return [c.status() for c in comps]
