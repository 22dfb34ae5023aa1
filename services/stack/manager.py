"""The local stack: the real servers (Redis, Kafka, Milvus, Triton, Prometheus), started and stopped in order."""

from __future__ import annotations

import importlib

from services.common.errors import SetupError
from services.common.paths import REPO_ROOT
from services.stack.base import Component, Health, StackPaths, group_alive, port_in_use

# start order; stop is the reverse. module:class, imported only when used.
COMPONENTS: tuple[str, ...] = (
    "services.stack.redis:RedisComponent",
    "services.stack.kafka:KafkaComponent",
    "services.stack.milvus:MilvusComponent",
    "services.stack.triton:TritonComponent",
    "services.stack.prometheus:PrometheusComponent",  # last: scrapes the others
)


class MissingComponent(Component):
    """Stands in for a component whose module is not in this checkout yet:
    status says so; install and start fail with one clear line."""

    def __init__(self, paths: StackPaths, name: str, module: str) -> None:
        super().__init__(paths)
        self.name = name
        self.module = module

    @property
    def ports(self) -> tuple[int, ...]:
        return ()

    def _missing(self) -> SetupError:
        return SetupError(f"{self.name}: component not installed ({self.module} does not exist in this checkout)",
                          "pull the branch that adds it, or leave it out with --only <others>")

    def install(self) -> None:
        raise self._missing()

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise self._missing()

    def health(self) -> Health:
        return Health(self.name, False, f"not installed: {self.module} does not exist yet")

    def start(self, timeout: float = 0.0) -> Health:
        raise self._missing()

    def status(self) -> Health:
        return self.health()


def component_names() -> list[str]:
    return [spec.split(":")[0].rsplit(".", 1)[1] for spec in COMPONENTS]


def load_components(paths: StackPaths | None = None, only: list[str] | None = None) -> list[Component]:
    paths = paths or StackPaths.default(REPO_ROOT)
    names = component_names()
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise SetupError(f"unknown stack component(s) {', '.join(unknown)}",
                             f"use --only with one of {', '.join(names)}")
    out: list[Component] = []
    for spec, name in zip(COMPONENTS, names):
        if only and name not in only:
            continue
        mod, cls = spec.split(":")
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            out.append(MissingComponent(paths, name, mod.replace(".", "/") + ".py"))
            continue
        out.append(getattr(module, cls)(paths))
    return out


def install(comps: list[Component]) -> None:
    for c in comps:
        c.install()


def up(comps: list[Component]) -> list[Health]:
    return [c.start() for c in comps]


def down(comps: list[Component]) -> list[str]:
    """Stop in reverse order, by PID (process group); return what is left behind
    (a live process of a stopped group, a port still taken): empty when clean."""
    pgids = {c.name: c.read_pid() for c in comps}
    for c in reversed(comps):
        c.stop()
    left: list[str] = []
    for c in comps:
        pgid = pgids[c.name]
        if pgid is not None and group_alive(pgid):
            left.append(f"{c.name}: process group {pgid} still running")
        for port in c.ports:
            if port_in_use(c.host, port):
                left.append(f"{c.name}: port {c.host}:{port} still taken")
    return left


def status(comps: list[Component]) -> list[Health]:
    return [c.status() for c in comps]
