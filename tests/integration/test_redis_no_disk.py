"""Keys and crops never reach a disk, on a real redis-server with each shipped config.

Each shipped Redis config runs in a private redis-server on a free 127.0.0.1 port, with only what
must change to run here changed (bind address, port, data dir; for the production file also the
TLS files and the rendered ACL file, as tests/integration/test_redis_acl_config.py does):

- deploy/redis/redis.conf (= k8s/components/redis-secure/redis.conf, what docker-compose.secure.yml
  and the prod overlay run), as a master with a replica that joins it the way the Sentinel
  component's init script makes it (replicaof + masteruser lfr-replication + masterauth): a full sync;
- k8s/base/redis/redis.yaml's ConfigMap;
- docker-compose.yml's redis-server command line;
- the local stack's (services/stack/redis.py) command line.

Through each, a stream of what the services keep there, made of recognisable random bytes: frame
keys (``SET lfr:framekey:* NX EX``, GET), face data keys (``SET lfr:obs:* EX``, MGET, DEL) and
alert crops (``HSET lfr:alert:*``, ``PEXPIREAT``, DEL), some deleted, some left live. Then what an
administrator might try: SAVE, BGSAVE, BGREWRITEAOF, SHUTDOWN SAVE, DEBUG RELOAD (all renamed away),
and with the production ACL, CONFIG SET appendonly/save and pulling an RDB with SYNC as lfr-admin
(refused). Then the server is stopped with SIGTERM, as docker and Kubernetes stop it. Its data
directory (the replica's too) is scanned recursively: no file holds any key's or crop's bytes, and
no dump.rdb / appendonly file exists at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import re
import secrets
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rig_support import free_port, wait_listening
import redis.asyncio as aioredis
import redis.exceptions
import yaml

from services.common.pki import CertPaths, init
from services.stack.base import StackPaths
from services.stack.redis import RedisComponent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "deploy" / "redis" / "users.acl.template"
USERS = tuple(sorted(set(re.findall(r"<SHA256:([a-z]+)>", TEMPLATE.read_text()))))  # every ACL user of the template
RENAMED_AWAY = (("SAVE",), ("BGSAVE",), ("BGREWRITEAOF",), ("SHUTDOWN", "SAVE"), ("DEBUG", "RELOAD"))


@dataclasses.dataclass
class Node:
    """One running redis-server: its data dir, and a client factory per ACL user (None = no ACL)."""

    proc: subprocess.Popen[bytes]
    port: int
    dir: Path
    log: Path
    tls_ca: Path | None = None
    passwords: dict[str, str] | None = None

    def client(self, user: str | None = None) -> aioredis.Redis:
        kw: dict[str, Any] = {"host": "127.0.0.1", "port": self.port, "socket_timeout": 5}
        if self.tls_ca is not None:
            kw.update(ssl=True, ssl_ca_certs=str(self.tls_ca))
        if self.passwords is not None:
            name = user or "admin"
            kw.update(username=f"lfr-{name}", password=self.passwords[name])
        return aioredis.Redis(**kw)

    def stop(self) -> None:
        """SIGTERM, as docker and Kubernetes stop a container."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _start(argv: list[str], port: int, data: Path, log: Path, **kw: Any) -> Node:
    data.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=data)
    wait_listening(proc, port, log, "redis-server")
    return Node(proc, port, data, log, **kw)


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed — fix: lfr stack install --only redis")
    return binary


def _replace(conf: str, changes: list[tuple[str, str]]) -> str:
    for old, new in changes:
        assert old in conf, f"the shipped config no longer has {old!r}: update this test"
        conf = conf.replace(old, new)
    return conf


def _render_acl(passwords: dict[str, str]) -> str:
    spec = importlib.util.spec_from_file_location("create_secrets", REPO / "k8s" / "secrets" / "create_secrets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.render_users_acl(TEMPLATE.read_text(), passwords))


def _production(tmp: Path, name: str, extra: str = "") -> Node:
    """deploy/redis/redis.conf with its paths, bind and port made local (plus ``extra`` lines)."""
    if not (tmp / "users.acl").exists():
        pki = CertPaths(tmp / "certs")
        init(pki)
        cert, key = pki.server("ingest")  # SAN 127.0.0.1
        passwords = {u: secrets.token_urlsafe(24) for u in USERS}
        (tmp / "users.acl").write_text(_render_acl(passwords))
        (tmp / "passwords").write_text("\n".join(f"{u} {p}" for u, p in passwords.items()))
        client_cert, client_key = pki.client("ingest")
        (tmp / "tls").write_text(f"{cert}\n{key}\n{pki.ca}\n{client_cert}\n{client_key}")
    passwords = dict(line.split(" ", 1) for line in (tmp / "passwords").read_text().splitlines())
    cert, key, ca, client_cert, client_key = (tmp / "tls").read_text().splitlines()
    # the dev PKI's server certificates are for serverAuth only; in production lfr-redis-tls is both
    extra += f"\ntls-client-cert-file {client_cert}\ntls-client-key-file {client_key}\n"
    port = free_port()
    data = tmp / name / "data"
    conf = _replace((REPO / "deploy" / "redis" / "redis.conf").read_text(), [
        ("bind 0.0.0.0", "bind 127.0.0.1"), ("tls-port 6379", f"tls-port {port}"),
        ("/etc/redis/tls/tls.crt", cert), ("/etc/redis/tls/tls.key", key), ("/etc/redis/tls/ca.crt", ca),
        ("/etc/redis/acl/users.acl", str(tmp / "users.acl")), ("dir /data", f"dir {data}")])
    (tmp / name).mkdir(parents=True, exist_ok=True)
    (tmp / name / "redis.conf").write_text(conf + extra)
    return _start([_binary(), str(tmp / name / "redis.conf")], port, data, tmp / name / "redis.log",
                  tls_ca=Path(ca), passwords=passwords)


def _k8s_base(tmp: Path) -> Node:
    docs = yaml.safe_load_all((REPO / "k8s" / "base" / "redis" / "redis.yaml").read_text())
    conf = next(d for d in docs if d["kind"] == "ConfigMap")["data"]["redis.conf"]
    port, data = free_port(), tmp / "data"
    conf = _replace(conf, [("bind 0.0.0.0", "bind 127.0.0.1"), ("port 6379", f"port {port}"),
                           ("dir /data", f"dir {data}")])
    (tmp / "redis.conf").write_text(conf)
    return _start([_binary(), str(tmp / "redis.conf")], port, data, tmp / "redis.log")


def _compose(tmp: Path) -> Node:
    command = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["redis"]["command"]
    assert command[0] == "redis-server"
    port, data = free_port(), tmp / "data"
    # the container's /data (a tmpfs there) is a plain directory here: the scan shows nothing is written
    argv = [_binary(), *command[1:], "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data)]
    return _start(argv, port, data, tmp / "redis.log")


class _LocalRedis(RedisComponent):
    def __init__(self, paths: StackPaths, port: int) -> None:
        super().__init__(paths)
        self.port = port


def _local_stack(tmp: Path) -> Node:
    component = _LocalRedis(StackPaths(cache=tmp / "cache", state=tmp / "state"), free_port())
    argv, _ = component.command()
    data = component.paths.data_dir(component.name)
    return _start(argv, component.port, data, tmp / "redis.log")


@dataclasses.dataclass
class Secrets:
    """Every byte string written to Redis: none may be found on disk."""

    values: list[bytes] = dataclasses.field(default_factory=list)

    def new(self, size: int) -> bytes:
        value = secrets.token_bytes(size)
        self.values.append(value)
        return value


async def _stream(node: Node, written: Secrets, rounds: int = 40) -> None:
    """What ingest, the recognizer, the matcher and the officers service do with their keys."""
    ingest, recognizer, matcher, officers = (node.client(u) for u in ("ingest", "recognizer", "matcher", "officers"))
    try:
        for i in range(rounds):
            frame_key = f"lfr:framekey:cam-{i % 3}.{i}.{uuid.uuid4().hex[:16]}"
            assert await ingest.set(frame_key, written.new(32), nx=True, ex=120)
            assert await recognizer.get(frame_key) is not None
            obs = [f"lfr:obs:{uuid.uuid4().hex}" for _ in range(4)]
            for key in obs:
                await recognizer.set(key, written.new(32), ex=60)
            assert None not in await matcher.mget(obs)
            await matcher.delete(*obs[:3])  # non-matches shredded at once; one left live
            alert = f"lfr:alert:{uuid.uuid4().hex}"
            crop = b"\xff\xd8\xff\xe0" + written.new(2048) + b"\xff\xd9"
            await officers.hset(alert, mapping={"alert": crop, "state": "1", "zone": "zone-a"})
            await officers.pexpireat(alert, int(time.time() * 1000) + 3_600_000)
            if i % 2:
                await officers.delete(alert)
            if i % 10 == 0:
                await ingest.delete(frame_key)
    finally:
        for c in (ingest, recognizer, matcher, officers):
            await c.aclose()


async def _admin_attempts(node: Node, writable: bool = True) -> None:
    """An administrator (lfr-admin where there is an ACL) tries to make the server write its data."""
    admin = node.client("admin")
    try:
        for command in RENAMED_AWAY:
            with pytest.raises(redis.exceptions.ResponseError, match="unknown command"):
                await admin.execute_command(*command)
        if node.passwords is not None:
            for args in (("appendonly", "yes"), ("save", "1 1"), ("appendfsync", "always")):
                with pytest.raises(redis.exceptions.NoPermissionError):
                    await admin.config_set(*args)
            with pytest.raises(redis.exceptions.NoPermissionError):  # `redis-cli --rdb` pulls an RDB this way
                await admin.execute_command("SYNC")
            with pytest.raises(redis.exceptions.NoPermissionError):
                await admin.execute_command("ACL", "SETUSER", "lfr-admin", "+@all")
            with pytest.raises(redis.exceptions.NoPermissionError):
                await admin.execute_command("REPLICAOF", "127.0.0.1", "1")
        info = await admin.info("persistence")
        assert info["aof_enabled"] == 0 and info["rdb_bgsave_in_progress"] == 0
        assert await admin.dbsize() > 0
        if writable:  # (a replica is read-only)
            await admin.flushall()  # with save "" this writes no dump either
            await admin.set("lfr:framekey:after-flush", secrets.token_bytes(32))
    finally:
        await admin.aclose()


def _scan(dirs: list[Path], written: Secrets) -> None:
    files = [p for d in dirs for p in d.rglob("*") if p.is_file()]
    persisted = [p for p in files
                 if p.name.endswith((".rdb", ".aof")) or "appendonly" in p.name or p.name.startswith("temp-")]
    assert not persisted, f"redis wrote persistence files: {persisted}"
    for path in files:
        blob = path.read_bytes()
        found = [v.hex()[:16] for v in written.values if v in blob]
        assert not found, f"{path} holds {len(found)} of the written key/crop values"


async def _exercise(node: Node, written: Secrets) -> None:
    await _stream(node, written)
    await _admin_attempts(node)


@pytest.fixture
def nodes() -> Iterator[list[Node]]:
    started: list[Node] = []
    yield started
    for node in started:
        node.stop()


@pytest.mark.parametrize("config", ["k8s/base/redis/redis.yaml", "docker-compose.yml", "services/stack/redis.py"])
async def test_plain_configs_write_no_key_or_crop(config: str, tmp_path: Path, nodes: list[Node]) -> None:
    start = {"k8s/base/redis/redis.yaml": _k8s_base, "docker-compose.yml": _compose,
             "services/stack/redis.py": _local_stack}[config]
    node = start(tmp_path)
    nodes.append(node)
    written = Secrets()
    await _exercise(node, written)
    node.stop()
    assert node.proc.returncode == 0, node.log.read_text()[-2000:]
    _scan([node.dir], written)


async def test_production_config_and_its_replica_write_no_key_or_crop(tmp_path: Path, nodes: list[Node]) -> None:
    master = _production(tmp_path, "master")
    nodes.append(master)
    written = Secrets()
    await _stream(master, written)  # data before the replica joins: a full sync must carry it
    assert master.passwords is not None
    replica = _production(tmp_path, "replica", extra="\n".join((
        "", "replica-announce-ip 127.0.0.1", "masteruser lfr-replication",
        f"masterauth {master.passwords['replication']}", f"replicaof 127.0.0.1 {master.port}", "")))
    nodes.append(replica)
    admin = replica.client("admin")
    try:
        deadline = time.monotonic() + 30
        while (await admin.info("replication")).get("master_link_status") != "up":
            assert time.monotonic() < deadline, replica.log.read_text()[-2000:]
            await asyncio.sleep(0.2)
        await _stream(master, written, rounds=10)  # and the live stream after it
        primary = master.client("admin")
        try:
            want = await primary.dbsize()
        finally:
            await primary.aclose()
        while await admin.dbsize() != want:
            assert time.monotonic() < deadline, "the replica did not catch up"
            await asyncio.sleep(0.2)
    finally:
        await admin.aclose()
    # the full sync went socket to memory: the master streamed its RDB, the replica parsed it in RAM
    assert "target: replicas sockets" in master.log.read_text(), master.log.read_text()[-2000:]
    assert "Loading DB in memory" in replica.log.read_text(), replica.log.read_text()[-2000:]
    await _admin_attempts(replica, writable=False)
    await _admin_attempts(master)
    for node in (replica, master):
        node.stop()
        assert node.proc.returncode == 0, node.log.read_text()[-2000:]
    _scan([master.dir, replica.dir], written)
