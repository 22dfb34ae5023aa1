"""The production Redis config (deploy/redis/redis.conf + users.acl rendered by
k8s/secrets/create_secrets.py from deploy/redis/users.acl.template) on a real redis-server.

A private redis-server on a free 127.0.0.1 port runs the production file with only its paths, bind
address and port changed (TLS certificates from a throw-away dev PKI). Proves, through the services'
own client code (RedisSettings with username + password *file* + CA, rediss://): TLS only (plaintext
refused), no default user, each service user reaches its own key prefixes and is refused another
service's keys and admin commands, a wrong password is refused, the probe user can only PING,
the replication user cannot read data, DEBUG is gone.
"""

from __future__ import annotations

import importlib.util
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from rig_support import free_port, wait_listening
import redis.exceptions

from services.common.clients import connect_redis
from services.common.pki import CertPaths, init
from services.common.settings import RedisSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPO = Path(__file__).resolve().parents[2]
USERS = ("ingest", "recognizer", "matcher", "alerts", "watchlist", "officers", "console", "probe", "replication",
         "sentinel", "admin")


def _create_secrets():
    spec = importlib.util.spec_from_file_location("create_secrets", REPO / "k8s" / "secrets" / "create_secrets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed — fix: lfr stack install --only redis")
    tmp = tmp_path_factory.mktemp("redis-secure")
    pki = CertPaths(tmp / "certs")
    init(pki)
    cert, key = pki.server("ingest")  # SAN 127.0.0.1, localhost
    passwords = {u: secrets.token_urlsafe(24) for u in USERS}
    acl = _create_secrets().render_users_acl((REPO / "deploy" / "redis" / "users.acl.template").read_text(), passwords)
    (tmp / "users.acl").write_text(acl)
    port = free_port()
    conf = (REPO / "deploy" / "redis" / "redis.conf").read_text()
    for old, new in (("bind 0.0.0.0", "bind 127.0.0.1"), ("tls-port 6379", f"tls-port {port}"),
                     ("/etc/redis/tls/tls.crt", str(cert)), ("/etc/redis/tls/tls.key", str(key)),
                     ("/etc/redis/tls/ca.crt", str(pki.ca)), ("/etc/redis/acl/users.acl", str(tmp / "users.acl")),
                     ("dir /data", f"dir {tmp}")):
        assert old in conf, old
        conf = conf.replace(old, new)
    (tmp / "redis.conf").write_text(conf)
    log = (tmp / "redis.log").open("w")
    proc = subprocess.Popen([binary, str(tmp / "redis.conf")], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening(proc, port, tmp / "redis.log", "redis-server")
        yield port, pki, passwords, tmp
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


async def _client(server, user: str | None, password: str | None = None, tls: bool = True):
    port, pki, passwords, tmp = server
    kw: dict = {"url": f"{'rediss' if tls else 'redis'}://127.0.0.1:{port}/0", "socket_timeout_s": 3}
    if tls:
        kw["ssl_ca_file"] = pki.ca
    if user:
        pw_file = tmp / f"{user}.password"
        pw_file.write_text(password if password is not None else passwords[user])
        kw.update(username=f"lfr-{user}", password_file=pw_file)
    return await connect_redis(RedisSettings(**kw))


async def test_tls_only_and_no_default_user(server) -> None:
    with pytest.raises((redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        await _client(server, "ingest", tls=False)
    with pytest.raises(redis.exceptions.AuthenticationError):  # default user is off
        await _client(server, None)
    with pytest.raises(redis.exceptions.AuthenticationError):
        await _client(server, "ingest", password="wrong")


async def test_each_service_reaches_only_its_own_keys(server) -> None:
    recognizer = await _client(server, "recognizer")
    watchlist = await _client(server, "watchlist")
    alerts = await _client(server, "alerts")
    try:
        await recognizer.set("lfr:framekey:cam.1.x", b"k", ex=60)
        assert await recognizer.get("lfr:framekey:cam.1.x") == b"k"
        await recognizer.set("lfr:audit:lock", b"1", px=1000)  # every service may take the audit lock
        with pytest.raises(redis.exceptions.NoPermissionError):
            await recognizer.get("lfr:alert:a1")  # the alerts' keys
        with pytest.raises(redis.exceptions.NoPermissionError):
            await watchlist.get("lfr:framekey:cam.1.x")  # frame keys: ingest and recognizer only
        with pytest.raises(redis.exceptions.NoPermissionError):
            await recognizer.config_get("*")  # no admin commands
        with pytest.raises(redis.exceptions.NoPermissionError):
            await alerts.flushall()
        await alerts.set("lfr:alert:a1", b"x", ex=60)
        assert await alerts.publish("lfr:notify:zone-a", b"n") == 0  # alerts may publish on lfr:*
        with pytest.raises(redis.exceptions.ResponseError):
            await alerts.execute_command("DEBUG", "SLEEP", "0")  # renamed away
    finally:
        for c in (recognizer, watchlist, alerts):
            await c.aclose()


async def test_console_reaches_only_its_sessions(server) -> None:
    """The console's user (sessions and sign-in counters) may use lfr:console:* and nothing else."""
    from services.console.config import LoginThrottle
    from services.console.sessions import SessionStore, SignInThrottle
    from services.console.users import User, hash_password

    console = await _client(server, "console")
    try:
        store = SessionStore(console, "lfr:console:", 60)
        throttle = SignInThrottle(console, "lfr:console:", LoginThrottle())
        assert await throttle.attempt("ann", "10.0.0.1") == 0  # its scripts touch only its keys
        await throttle.succeeded("ann", "10.0.0.1")
        ann = User(username="ann", password=hash_password("pw", n=2**10), roles=("officer",))
        session = await store.create(ann)
        assert await store.resolve(session.sid, {"ann": ann}.get) == session
        await store.delete(session.sid)
        for key in ("lfr:framekey:cam.1.x", "lfr:alert:a1", "lfr:audit:lock", "lfr:officer:o1"):
            with pytest.raises(redis.exceptions.NoPermissionError):
                await console.get(key)
        with pytest.raises(redis.exceptions.NoPermissionError):
            await console.keys("*")
    finally:
        await console.aclose()


async def test_probe_and_replication_users_are_minimal(server) -> None:
    probe = await _client(server, "probe")  # connect_redis PINGs
    replication = await _client(server, "replication")
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            await probe.get("lfr:framekey:cam.1.x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await replication.get("lfr:framekey:cam.1.x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            await replication.keys("*")
    finally:
        await probe.aclose()
        await replication.aclose()
