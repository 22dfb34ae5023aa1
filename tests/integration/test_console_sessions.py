"""The console's sessions and sign-in, attacked on the real console process over the
real Redis of the local stack. No browser: HTTP requests, as a
thief with a copied cookie, a password guesser or a careless deployer would send.

- A stolen cookie stops working the moment its owner signs out; an open alert
  stream (server-sent events) on it closes within seconds.
- A user removed from the users file is refused at once, a demoted one loses the
  role at once (and an alert stream the new role may not open closes).
- Password guessing: the 6th attempt on a user gets 429 + Retry-After even with the
  right password, from another address too; an address is throttled after 20
  failures, and a success from it does not clear the others' failures.
- The session cookie is Secure on a non-loopback bind by default; cookie_secure
  false there, and the development users file (or a copy of it) outside the local
  stack, are refused at start with one line naming the fix.

Each console gets its own Redis key prefix (lfr:console:it-<random>:), deleted at the
end, and platform endpoints that answer nothing (the feed just retries).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from rig_support import free_port, wait_listening
import redis.asyncio as aioredis
import yaml

from services.console.config import DEV_USERS_FILE
from services.console.sessions import COOKIE
from services.console.users import hash_password

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/0"
NOWHERE = "127.0.0.1:1"  # the platform's APIs: nothing listens (the console's feed retries quietly)


@dataclass
class ConsoleProc:
    url: str
    users_file: Path
    prefix: str
    metrics_port: int
    proc: subprocess.Popen[bytes]
    log: Path


def _config(tmp: Path, users_file: Path | None, **console: object) -> tuple[Path, int, int, str]:
    port, metrics = free_port(), free_port()
    prefix = f"lfr:console:it-{secrets.token_hex(4)}:"
    cfg = {"console": {"http_port": port, "users_file": str(users_file) if users_file else None, "key_prefix": prefix,
                       "session_recheck_s": 0.5, "redis": {"url": REDIS_URL},
                       "platform": {"alerts": NOWHERE, "watchlist": NOWHERE, "officers": NOWHERE, "timeout_s": 2},
                       "login": {"max_failures_per_user": 5, "max_failures_per_address": 20, "window_s": 300},
                       **console}}
    path = tmp / f"console-{port}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, port, metrics, prefix


def _env(config: Path, metrics_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    return {**env, "LFR_CONFIG": str(config), "LFR_METRICS__PORT": str(metrics_port)}


def _start(tmp: Path, users_file: Path, **console: object) -> ConsoleProc:
    config, port, metrics, prefix = _config(tmp, users_file, **console)
    log = tmp / f"console-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.console"], cwd=REPO, env=_env(config, metrics),
                                stdout=out, stderr=subprocess.STDOUT)
    wait_listening(proc, port, log, "the console", timeout_s=60)
    return ConsoleProc(f"http://127.0.0.1:{port}", users_file, prefix, metrics, proc, log)


def _stop(c: ConsoleProc) -> None:
    c.proc.terminate()
    try:
        c.proc.wait(15)
    except subprocess.TimeoutExpired:
        c.proc.kill()
        c.proc.wait(5)


async def _drop_keys(prefix: str) -> None:
    r = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in r.scan_iter(match=prefix + "*", count=500)]
        if keys:
            await r.delete(*keys)
    finally:
        await r.aclose()


PASSWORDS = {name: f"{name}-{secrets.token_hex(6)}" for name in ("alice", "bob", "carol", "dave", "erin")}
ROLES = {"alice": ["officer"], "bob": ["operator"], "carol": ["supervisor"], "dave": ["officer"],
         "erin": ["operator"]}
HASHES = {name: hash_password(pw) for name, pw in PASSWORDS.items()}


def _write_users(path: Path, roles: dict[str, list[str]]) -> None:
    path.write_text(yaml.safe_dump({"users": [
        {"username": name, "password": HASHES[name], "roles": r} for name, r in roles.items()]}))



@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleProc]:
    tmp = tmp_path_factory.mktemp("console")
    users = tmp / "users.yaml"
    _write_users(users, ROLES)
    c = _start(tmp, users)
    try:
        yield c
    finally:
        _stop(c)
        asyncio.run(_drop_keys(c.prefix))


def _client(source: str = "127.0.0.1") -> aiohttp.ClientSession:
    """A client of its own (no shared cookie jar), connecting from ``source`` (any 127/8 address)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0), force_close=True),
                                 cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=20))


async def _login(c: ConsoleProc, user: str, password: str | None = None, source: str = "127.0.0.1"
                 ) -> aiohttp.ClientResponse:
    async with _client(source) as http:
        async with http.post(f"{c.url}/login", data={"username": user, "password": password or PASSWORDS[user]},
                             allow_redirects=False) as resp:
            await resp.read()
            return resp


async def _cookie(c: ConsoleProc, user: str) -> str:
    resp = await _login(c, user)
    assert resp.status == 303, resp.status
    return resp.cookies[COOKIE].value


async def _get(c: ConsoleProc, path: str, cookie: str) -> tuple[int, str, str]:
    async with _client() as http:
        async with http.get(f"{c.url}{path}", headers={"Cookie": f"{COOKIE}={cookie}"},
                            allow_redirects=False) as resp:
            return resp.status, resp.headers.get("Location", ""), await resp.text()


async def _logout(c: ConsoleProc, cookie: str) -> None:
    status, _, page = await _get(c, "/cameras", cookie)
    assert status == 200, status
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    async with _client() as http:
        async with http.post(f"{c.url}/logout", data={"csrf": csrf.group(1)}, headers={"Cookie": f"{COOKIE}={cookie}"},
                             allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/login"


async def _stream_until_closed(c: ConsoleProc, cookie: str, act: Callable[[], Awaitable[None]],
                               within_s: float) -> list[str]:
    """Open the alert stream, run ``act`` once it answers, return the events read until the console closes it."""
    events: list[str] = []
    async with _client() as http:
        async with http.get(f"{c.url}/api/alerts/stream", headers={"Cookie": f"{COOKIE}={cookie}"}) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
            first = await resp.content.readline()
            assert first.startswith(b"event: status"), first
            await act()
            done = time.monotonic()

            async def read_all() -> None:
                async for line in resp.content:
                    if line.startswith(b"event: "):
                        events.append(line[7:].decode().strip())

            await asyncio.wait_for(read_all(), timeout=within_s)  # EOF: the console ended the stream
            assert time.monotonic() - done < within_s
    return events


async def test_stolen_cookie_stops_working_at_logout(console: ConsoleProc) -> None:
    cookie = await _cookie(console, "alice")
    assert (await _get(console, "/alerts", cookie))[0] == 200  # the owner ...
    assert (await _get(console, "/cameras", cookie))[0] == 200  # ... and a thief with a copy: same cookie
    r = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k.decode() async for k in r.scan_iter(match=console.prefix + "session:*")]
        assert keys and all(cookie not in k for k in keys)  # Redis holds a hash of the id, not the cookie
    finally:
        await r.aclose()
    await _logout(console, cookie)
    status, location, _ = await _get(console, "/alerts", cookie)
    assert (status, location) == (303, "/login")  # the copied cookie died with the logout
    status, _, text = await _get(console, "/api/alerts/stream", cookie)
    assert status == 401 and "sign in" in text


async def test_alert_stream_closes_at_logout(console: ConsoleProc) -> None:
    cookie = await _cookie(console, "alice")
    events = await _stream_until_closed(console, cookie, lambda: _logout(console, cookie), within_s=5.0)
    assert events[-1:] == ["end"], events


async def test_removed_user_refused_and_demoted_user_loses_the_role_at_once(console: ConsoleProc) -> None:
    bob, carol = await _cookie(console, "bob"), await _cookie(console, "carol")
    assert (await _get(console, "/cameras", bob))[0] == 200
    assert (await _get(console, "/health", carol))[0] == 200  # supervisor
    try:
        async def demote() -> None:
            _write_users(console.users_file, {**{k: v for k, v in ROLES.items() if k != "bob"},
                                              "carol": ["auditor"]})

        # carol's open alert stream closes: an auditor may not see alerts
        events = await _stream_until_closed(console, carol, demote, within_s=5.0)
        assert events[-1:] == ["end"], events
        status, location, _ = await _get(console, "/cameras", bob)
        assert (status, location) == (303, "/login")  # removed: the session ended at once
        assert (await _get(console, "/health", carol))[0] == 403  # demoted: the supervisor role is gone ...
        status, _, page = await _get(console, "/audit", carol)  # ... and the new one applies
        assert status == 200 and "auditor" in page
        _write_users(console.users_file, ROLES)  # bob back: his old session stays ended
        assert (await _get(console, "/cameras", bob))[0] == 303
    finally:
        _write_users(console.users_file, ROLES)


async def _metric(c: ConsoleProc, name: str, **labels: str) -> float:
    async with _client() as http:
        async with http.get(f"http://127.0.0.1:{c.metrics_port}/metrics") as resp:
            text = await resp.text()
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and want in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_password_guessing_is_throttled_per_user_and_per_address(console: ConsoleProc) -> None:
    throttled = await _metric(console, "lfr_console_logins_total", result="throttled")
    for _ in range(5):
        assert (await _login(console, "dave", "guess")).status == 401
    resp = await _login(console, "dave")  # the right password, 6th attempt
    assert resp.status == 429 and 200 <= int(resp.headers["Retry-After"]) <= 300
    resp = await _login(console, "dave", source="127.0.0.2")  # another address: the user is still throttled
    assert resp.status == 429
    assert await _metric(console, "lfr_console_logins_total", result="throttled") == throttled + 2

    # per address: 20 failures (any user names) from 127.0.0.3; a success there clears nobody's failures
    for i in range(19):
        assert (await _login(console, f"nobody{i}", "guess", source="127.0.0.3")).status == 401
    assert (await _login(console, "erin", source="127.0.0.3")).status == 303
    assert (await _login(console, "nobody19", "guess", source="127.0.0.3")).status == 401
    resp = await _login(console, "alice", source="127.0.0.3")
    assert resp.status == 429 and int(resp.headers["Retry-After"]) > 0
    assert (await _login(console, "alice", source="127.0.0.4")).status == 303  # other addresses unaffected


async def test_cookie_secure_by_default_on_a_non_loopback_bind(tmp_path: Path) -> None:
    users = tmp_path / "users.yaml"
    _write_users(users, ROLES)
    c = _start(tmp_path, users, http_host="0.0.0.0")
    try:
        resp = await _login(c, "alice")
        assert resp.status == 303
        morsel = resp.cookies[COOKIE]
        assert morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "Strict"
    finally:
        _stop(c)
        await _drop_keys(c.prefix)


def _refused(tmp: Path, users_file: Path | None, **console: object) -> str:
    config, _, metrics, _ = _config(tmp, users_file, **console)
    res = subprocess.run([sys.executable, "-m", "services.console"], cwd=REPO, env=_env(config, metrics),
                         capture_output=True, text=True, timeout=60)
    out = res.stdout + res.stderr
    assert res.returncode == 2, out
    assert "Traceback" not in out, out
    lines = [json.loads(line)["msg"] for line in out.splitlines() if line.startswith("{")]
    errors = [m for m in lines if m.startswith("lfr: error: ") and " — fix: " in m]
    assert len(errors) == 1, out  # one line: the cause and the fix
    return errors[0]


def test_unsafe_deployments_are_refused_at_start(tmp_path: Path) -> None:
    out = _refused(tmp_path, DEV_USERS_FILE)  # the development users, not asked for
    assert "DEVELOPMENT users" in out and "LFR_CONSOLE__USERS_FILE" in out
    copy = tmp_path / "prod-users.yaml"
    copy.write_text(DEV_USERS_FILE.read_text())  # ... or a copy of them under another name
    assert "DEVELOPMENT users" in _refused(tmp_path, copy)
    out = _refused(tmp_path, None, dev_users=True, http_host="0.0.0.0")
    assert "dev_users is set while the console listens on 0.0.0.0" in out
    users = tmp_path / "users.yaml"
    _write_users(users, ROLES)
    out = _refused(tmp_path, users, http_host="0.0.0.0", cookie_secure=False)
    assert "cookie_secure is false" in out and "HTTPS" in out
