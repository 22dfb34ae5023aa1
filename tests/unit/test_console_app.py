"""Unit tests of the operator console's pieces: password hashes, the users file and
its reloads, server-side sessions and CSRF, sign-in throttling, the exposure checks
(cookie_secure, development users), the role table, the health view's Prometheus
parsing, the alert feed's visibility and retention (a fake Platform and a fake
Redis: unit tests may use fakes; tests/integration/test_console_sessions.py
attacks the same on real Redis)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from lfr.v1 import alerts_pb2, common_pb2, officers_pb2
from services.console import health, roles
from services.common.errors import SetupError
from services.console import sessions as sessions_mod
from services.console.config import DEV_USERS_FILE, ConsoleOptions, LoginThrottle, is_loopback
from services.console.feed import AlertFeed, LiveAlert, visible
from services.console.platform import ON_BEHALF_OF, ROLES, identity_metadata
from services.console.sessions import Session, SessionStore, SignInThrottle, address_key, client_address
from services.console.users import (UsersFile, UsersFileError, UsersSource, authenticate, hash_password,
                                    password_hashes, verify_password)


def test_password_hash_is_salted_and_verifies() -> None:
    a, b = hash_password("s3cret", n=2**10), hash_password("s3cret", n=2**10)
    assert a != b and a.startswith("scrypt$1024$")
    assert verify_password("s3cret", a) and not verify_password("s3creT", a)
    assert not verify_password("s3cret", "garbage") and not verify_password("x", "scrypt$1$2$3$%%$%%")


def test_users_file_and_authenticate(tmp_path: Path) -> None:
    f = tmp_path / "u.yaml"
    f.write_text(f"users:\n- username: ann\n  password: '{hash_password('pw-ann', n=2**10)}'\n  roles: [officer]\n")
    users = UsersFile.load(f)
    assert authenticate(users, "ann", "pw-ann").roles == ("officer",)  # type: ignore[union-attr]
    assert authenticate(users, "ann", "nope") is None and authenticate(users, "bob", "pw-ann") is None
    f.write_text(f"users:\n- username: ann\n  password: '{hash_password('x', n=2**10)}'\n  roles: [root]\n")
    with pytest.raises(ValueError, match="unknown role"):
        UsersFile.load(f)


def test_dev_users_file_loads() -> None:
    users = UsersFile.load(Path(__file__).resolve().parents[2] / "deploy/local/console-users.yaml")
    assert {r for u in users.users for r in u.roles} == set(roles.ROLES)


class FakeRedis:
    """The few Redis commands of services.console.sessions, in memory (TTLs in seconds, no clock)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.ttl: dict[str, int] = {}

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def set(self, key: str, value: object, ex: int | None = None, keepttl: bool = False,
                  xx: bool = False, nx: bool = False) -> bool:
        if (xx and key not in self.data) or (nx and key in self.data):
            return False
        self.data[key] = str(value)
        if ex is not None:
            self.ttl[key] = ex
        elif not keepttl:
            self.ttl.pop(key, None)
        return True

    async def delete(self, *keys: str) -> int:
        n = sum(1 for k in keys if k in self.data)
        for k in keys:
            self.data.pop(k, None)
            self.ttl.pop(k, None)
        return n

    async def eval(self, script: str, numkeys: int, *args: object) -> object:
        keys, argv = [str(a) for a in args[:numkeys]], args[numkeys:]
        if script == sessions_mod._ATTEMPT:
            out: list[int] = []
            for k in keys:
                await self.set(k, 0, ex=int(argv[0]), nx=True)  # type: ignore[call-overload]
                self.data[k] = str(int(self.data[k]) + 1)
                out += [int(self.data[k]), self.ttl[k]]
            return out
        assert script == sessions_mod._SUCCEEDED
        await self.delete(keys[0])
        if int(self.data.get(keys[1], "0")) > 0:
            self.data[keys[1]] = str(int(self.data[keys[1]]) - 1)
        return 0


def _users(path: Path, *users: tuple[str, str, list[str]]) -> Path:
    path.write_text("users:\n" + "".join(
        f"- username: {name}\n  password: '{hash_password(pw, n=2**10)}'\n  roles: {roles}\n"
        for name, pw, roles in users))
    return path


async def test_server_side_session_follows_the_users_file(tmp_path: Path) -> None:
    users = UsersSource(_users(tmp_path / "u.yaml", ("ann", "pw-ann", ["officer"]), ("bob", "pw-bob", ["operator"])))
    redis = FakeRedis()
    store = SessionStore(redis, "lfr:console:", ttl_s=60)
    ann = await store.create(users.get("ann"))  # type: ignore[arg-type]
    assert len(ann.sid) >= 40 and redis.ttl[store.key(ann.sid)] == 60
    assert ann.sid not in "".join(redis.data) and ann.username in next(iter(redis.data.values()))  # id hashed
    assert await store.resolve(ann.sid, users.get) == ann
    assert await store.resolve(ann.sid + "x", users.get) is None and await store.resolve(None, users.get) is None
    assert store.check_csrf(ann, ann.csrf) and not store.check_csrf(ann, "nope") and not store.check_csrf(ann, None)

    # a changed role applies at once; a removed user's session ends (its record deleted)
    (tmp_path / "u.yaml").write_text((tmp_path / "u.yaml").read_text().replace("'officer'", "'auditor'"))
    demoted = await store.resolve(ann.sid, users.get)
    assert demoted is not None and demoted.roles == ("auditor",) and demoted.csrf == ann.csrf
    bob = await store.create(users.get("bob"))  # type: ignore[arg-type]
    _users(tmp_path / "u.yaml", ("bob", "pw-bob", ["operator"]))  # ann removed; bob's password hash is new
    assert await store.resolve(ann.sid, users.get) is None and store.key(ann.sid) not in redis.data
    assert await store.resolve(bob.sid, users.get) is None  # a changed password ends the session too

    # logout deletes the record; an expired one is refused
    carl = await store.create(users.get("bob"))  # type: ignore[arg-type]
    await store.delete(carl.sid)
    assert await store.resolve(carl.sid, users.get) is None
    expired = await SessionStore(redis, "lfr:console:", ttl_s=-1).create(users.get("bob"))  # type: ignore[arg-type]
    assert await store.resolve(expired.sid, users.get) is None


def test_users_source_refuses_broken_and_development_files(tmp_path: Path) -> None:
    f = _users(tmp_path / "u.yaml", ("ann", "pw-ann", ["officer"]))
    users = UsersSource(f)
    f.write_text("users: [{username: ann}]\n")
    with pytest.raises(UsersFileError, match="u.yaml"):
        users.get("ann")  # fail closed until fixed, sessions untouched
    _users(f, ("ann", "pw-ann2", ["officer"]))
    assert users.get("ann") is not None
    f.unlink()
    with pytest.raises(UsersFileError):
        users.current()
    # a copy of the development users (published passwords) is refused outside the local stack
    copy = tmp_path / "prod.yaml"
    copy.write_text(DEV_USERS_FILE.read_text())
    with pytest.raises(UsersFileError, match="DEVELOPMENT users"):
        UsersSource(copy, password_hashes(DEV_USERS_FILE))
    assert UsersSource(copy).get("operator") is not None and password_hashes(tmp_path / "none.yaml") == frozenset()


async def test_sign_in_throttle_per_user_and_per_address() -> None:
    redis = FakeRedis()
    t = SignInThrottle(redis, "lfr:console:", LoginThrottle(max_failures_per_user=5, max_failures_per_address=20,
                                                            window_s=900))
    for _ in range(5):
        assert await t.attempt("ann", "10.0.0.1") == 0
    assert await t.attempt("ann", "10.0.0.1") == 900  # the 6th: Retry-After, whatever the password
    assert await t.attempt("ann", "10.0.0.2") == 900  # from another address too
    assert await t.attempt("bob", "10.0.0.1") == 0
    for i in range(12):
        assert await t.attempt(f"u{i}", "10.0.0.9") == 0
    await t.succeeded("u0", "10.0.0.9")  # a success takes back its own attempt only
    for i in range(9):
        assert await t.attempt(f"v{i}", "10.0.0.9") == 0
    assert await t.attempt("w", "10.0.0.9") == 900  # 21st counted attempt from the address
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff") == "2001:db8::/64"
    assert address_key("::ffff:10.0.0.1") == "10.0.0.1" and address_key(None) == "unknown"
    # behind a trusted reverse proxy: the rightmost forwarded hop it did not add; otherwise the peer
    proxies = ("10.9.0.0/16",)
    assert client_address("10.9.0.5", "1.2.3.4, 5.6.7.8", proxies) == "5.6.7.8"  # 1.2.3.4: forgeable
    assert client_address("10.9.0.5", "5.6.7.8, 10.9.0.7", proxies) == "5.6.7.8"
    assert client_address("5.6.7.8", "1.2.3.4", proxies) == "5.6.7.8"  # not from a proxy: the header is ignored
    assert client_address("10.9.0.5", "1.2.3.4", ()) == "10.9.0.5" and client_address("10.9.0.5", None, proxies) \
        == "10.9.0.5"
    with pytest.raises(ValueError, match="not a network"):
        LoginThrottle(trusted_proxies=("10.0.0.0/33",))


def test_cookie_secure_and_development_users_outside_loopback(tmp_path: Path) -> None:
    assert all(map(is_loopback, ("127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost", "LOCALHOST")))
    assert not any(map(is_loopback, ("0.0.0.0", "::", "10.0.0.5", "console.example", "")))
    users = _users(tmp_path / "u.yaml", ("ann", "pw-ann", ["officer"]))
    assert not ConsoleOptions(users_file=users).secure_cookie  # type: ignore[call-arg]
    assert ConsoleOptions(users_file=users, http_host="0.0.0.0").secure_cookie  # type: ignore[call-arg]
    assert not ConsoleOptions(users_file=users, cookie_secure=False).secure_cookie  # type: ignore[call-arg]
    with pytest.raises(SetupError, match="cookie_secure is false .* 0.0.0.0"):
        exposed = ConsoleOptions(users_file=users, http_host="0.0.0.0", cookie_secure=False)  # type: ignore[call-arg]
        exposed.check_exposure()
    with pytest.raises(SetupError, match="no users file"):
        ConsoleOptions().check_exposure()
    with pytest.raises(SetupError, match="dev_users is set while the console listens on 10.1.2.3"):
        ConsoleOptions(dev_users=True, http_host="10.1.2.3").check_exposure()  # type: ignore[call-arg]
    with pytest.raises(SetupError, match="both set"):
        ConsoleOptions(dev_users=True, users_file=users).check_exposure()  # type: ignore[call-arg]
    local = ConsoleOptions(dev_users=True)  # type: ignore[call-arg]
    local.check_exposure()
    assert local.users_path == DEV_USERS_FILE


def test_role_table() -> None:
    assert roles.may(["watchlist_manager"], "close_watchlist") and not roles.may(["operator", "auditor"],
                                                                                   "close_watchlist")
    assert roles.may(["officer"], "adjudicate") and not roles.may(["integrator", "operator"], "adjudicate")
    assert roles.views_for(["auditor"]) == ["watchlists", "audit"]
    assert roles.views_for([]) == [] and not roles.may_view(["officer"], "audit")
    assert set(roles.VIEWS) == set(roles.VIEW_ORDER)


def test_identity_metadata_forwards_the_user() -> None:
    s = Session("ann", ("officer", "supervisor"), (), time.time() + 60, "sid")
    md = dict(identity_metadata(s, "tok"))
    assert md == {"authorization": "Bearer tok", ON_BEHALF_OF: "ann", ROLES: "officer,supervisor"}
    assert dict(identity_metadata(None, None)) == {ON_BEHALF_OF: "console"}


METRICS = """# TYPE lfr_frames_consumed_total counter
lfr_frames_consumed_total{service="recognizer"} 10
# TYPE lfr_frame_to_alert_seconds histogram
lfr_frame_to_alert_seconds_bucket{le="0.5"} 1
lfr_frame_to_alert_seconds_bucket{le="1.0"} 3
lfr_frame_to_alert_seconds_bucket{le="+Inf"} 4
lfr_frame_to_alert_seconds_count 4
lfr_frame_to_alert_seconds_sum 3.0
# TYPE lfr_consumer_lag gauge
lfr_consumer_lag{topic="lfr.frames.v1",group="lfr-recognizer"} 7
"""


def test_health_report_from_metrics_text() -> None:
    first = health.Snapshot(100.0, health.parse(METRICS), {"recognizer": True}, {})
    later = health.Snapshot(110.0, health.parse(METRICS.replace("} 10", "} 30")), {"recognizer": True}, {})
    rep = health.build_report(later, first)
    consumed = [t for t in rep.throughput if t["stage"] == "frames consumed"]
    assert consumed == [{"stage": "frames consumed", "split": "recognizer", "total": 30.0, "per_s": 2.0}]
    f2a = rep.latency["frame_to_alert"]
    assert f2a["count"] == 4 and f2a["mean"] == 0.75
    assert f2a["p50"] == pytest.approx(0.75)  # rank 2 of 4, halfway through the (0.5, 1.0] bucket
    assert f2a["p95"] == 1.0  # in the +Inf bucket: the highest finite bound, as histogram_quantile says
    assert rep.lag == [{"topic": "lfr.frames.v1", "group": "lfr-recognizer", "lag": 7.0}]


class FakePlatform:
    def __init__(self) -> None:
        self.statuses: dict[str, officers_pb2.AlertStatus] = {}

    async def get_alert(self, alert_id: str, session: Session | None = None) -> officers_pb2.AlertStatus:
        import grpc

        if alert_id not in self.statuses:
            raise grpc.aio.AioRpcError(grpc.StatusCode.NOT_FOUND, grpc.aio.Metadata(), grpc.aio.Metadata())
        return self.statuses[alert_id]


def _alert(alert_id: str, deployment: str = "op-1") -> alerts_pb2.Alert:
    now = time.time_ns()
    return alerts_pb2.Alert(alert_id=alert_id, subject_id="s1", deployment_id=deployment, camera_id="c1", zone="z1",
                            best_score=0.7, threshold=0.5, capture_unix_ns=now, alert_unix_ns=now,
                            live_crop=common_pb2.Crop(jpeg=b"\xff\xd8crop",
                                                      protection=common_pb2.PAYLOAD_PROTECTION_PLAINTEXT),
                            watchlist_image=common_pb2.ImageRef(jpeg=b"\xff\xd8wl"))


async def test_feed_visibility_states_and_retention() -> None:
    platform = FakePlatform()
    feed = AlertFeed(platform, ConsoleOptions(alert_retention_s=60))  # type: ignore[arg-type]
    officer = Session("ann", ("officer",), (), time.time() + 60, "a")
    integrator = Session("int", ("integrator",), ("op-2",), time.time() + 60, "b")
    auditor = Session("aud", ("auditor",), (), time.time() + 60, "c")
    subs = {s.username: feed.subscribe(s) for s in (officer, integrator, auditor)}
    live = feed.add(_alert("a1"))
    assert live.crop == b"\xff\xd8crop" and live.watchlist_jpeg == b"\xff\xd8wl"
    assert subs["ann"].queue.qsize() == 1 and subs["int"].queue.qsize() == 0 and subs["aud"].queue.qsize() == 0
    assert visible(officer, live) and not visible(integrator, live) and not visible(auditor, live)
    assert "crop" not in live.public() and live.public()["has_crop"]

    platform.statuses["a1"] = officers_pb2.AlertStatus(alert_id="a1", state=officers_pb2.ALERT_STATE_AWAITING_SECOND,
                                                       confirmed_by=["ann"], two_person_confirmation=True,
                                                       retention_until_unix_ns=time.time_ns() - 1)
    assert await feed.refresh("a1")
    assert live.state == "awaiting_second" and live.two_person and live.confirmed_by == ("ann",)
    event, _ = subs["ann"].queue.get_nowait(), subs["ann"].queue.get_nowait()
    assert event[0] == "alert" and _[0] == "update"

    # retention over (per GetAlert): the images leave memory and every page
    stop = asyncio.Event()
    task = asyncio.create_task(feed._refresher(stop))
    await asyncio.sleep(0.1)
    stop.set()
    await task
    assert "a1" not in feed.alerts and live.crop is None and live.watchlist_jpeg is None
    assert subs["ann"].queue.get_nowait()[0] == "expire"

    # an alert the officers service no longer knows (purged) leaves too
    feed.add(_alert("a2"))
    feed.alerts["a2"].state = "pending"
    assert await feed.refresh("a2") and "a2" not in feed.alerts


def test_encrypted_crop_is_never_shown() -> None:
    a = _alert("a3")
    a.live_crop.protection = common_pb2.PAYLOAD_PROTECTION_AES256_GCM_EPHEMERAL_KEY
    assert LiveAlert.of(a, 60).crop is None
