"""Every shipped Redis config never persists (frame keys, face keys and alert crops never
reach a disk): docker-compose.yml (and docker-compose.secure.yml, which runs deploy/redis/redis.conf),
deploy/redis/redis.conf (= k8s/components/redis-secure/redis.conf, the prod overlay's, Sentinel
included: its init script copies it), k8s/base/redis/redis.yaml and the local stack's redis-server.

Each carries every line of ``services.stack.redis.NO_DISK_ARGS`` (no AOF, no RDB, no dump at
shutdown, diskless replication both ways, SAVE/BGSAVE/BGREWRITEAOF renamed away) and none that
turns persistence back on; no Redis gets a disk volume. The real redis-server runs each of them in
tests/integration/test_redis_no_disk.py.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from deploy_support import ROOT, load_compose_file
from services.stack.base import StackPaths
from services.stack.redis import NO_DISK_ARGS, RedisComponent

Directive = tuple[str, ...]


def argv_directives(argv: list[str] | tuple[str, ...]) -> set[Directive]:
    """``--name a b --other c`` (redis-server's command line) as config directives."""
    out: list[list[str]] = []
    for token in argv:
        if token.startswith("--"):
            out.append([token[2:]])
        elif out:
            out[-1].append(token)
    return {tuple(d) for d in out}


def conf_directives(text: str) -> set[Directive]:
    return {tuple(shlex.split(line)) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")}


REQUIRED = argv_directives(NO_DISK_ARGS)
PERSISTING = {("appendonly", "yes")}


def _k8s_base_conf() -> tuple[str, dict]:
    docs = list(yaml.safe_load_all((ROOT / "k8s" / "base" / "redis" / "redis.yaml").read_text(encoding="utf-8")))
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["redis.conf"]
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    return config, sts


def _compose_redis() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["services"]["redis"]


class _StackRedis(RedisComponent):
    def binary(self) -> str | None:
        return "/usr/bin/redis-server"


def shipped() -> dict[str, set[Directive]]:
    compose = _compose_redis()["command"]
    assert compose[0] == "redis-server"
    stack_argv, _ = _StackRedis(StackPaths(cache=Path("/nonexistent"), state=Path("/nonexistent"))).command()
    return {
        "docker-compose.yml": argv_directives(compose[1:]),
        "deploy/redis/redis.conf": conf_directives(
            (ROOT / "deploy" / "redis" / "redis.conf").read_text(encoding="utf-8")),
        "k8s/components/redis-secure/redis.conf": conf_directives(
            (ROOT / "k8s" / "components" / "redis-secure" / "redis.conf").read_text(encoding="utf-8")),
        "k8s/base/redis/redis.yaml": conf_directives(_k8s_base_conf()[0]),
        "services/stack/redis.py": argv_directives(stack_argv[1:]),
    }


@pytest.mark.parametrize("name", list(shipped()))
def test_every_shipped_redis_never_persists(name: str) -> None:
    directives = shipped()[name]
    assert REQUIRED <= directives, f"{name} lacks {sorted(REQUIRED - directives)}"
    assert not directives & PERSISTING, name
    assert not [d for d in directives if d[0] in ("appendfsync", "appenddirname", "dbfilename")], name
    saves = [d for d in directives if d[0] == "save"]
    assert saves == [("save", "")], f"{name}: RDB snapshots must be off ({saves})"


def test_no_redis_gets_a_disk() -> None:
    config, sts = _k8s_base_conf()
    assert "volumeClaimTemplates" not in sts["spec"], "a Redis PVC would hold whatever reached /data"
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}
    redis = _compose_redis()
    assert "volumes" not in redis and redis["tmpfs"] == ["/data:size=16m"]
    top = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))["volumes"]
    assert "redis-data" not in top
    secure = load_compose_file("docker-compose.secure.yml")["services"]["redis"]  # its !override tags
    assert secure["command"] == ["redis-server", "/etc/redis/redis.conf"]
    assert all(v["target"] != "/data" for v in secure["volumes"])
