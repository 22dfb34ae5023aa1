"""Unit tests of the operator console's pieces: password hashes, signed sessions and
CSRF, the role table, the health view's Prometheus parsing, the alert feed's
visibility and retention (a fake Platform: unit tests may use fakes)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from lfr.v1 import alerts_pb2, common_pb2, officers_pb2
from services.console import health, roles
from services.console.config import ConsoleOptions
from services.console.feed import AlertFeed, LiveAlert, visible
from services.console.platform import ON_BEHALF_OF, ROLES, identity_metadata
from services.console.sessions import Session, SessionSigner
from services.console.users import UsersFile, authenticate, hash_password, verify_password


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


def test_session_cookie_signed_and_expiring() -> None:
    signer = SessionSigner(b"k" * 32, ttl_s=60)
    cookie, s = signer.issue("ann", ("officer",), ())
    assert signer.read(cookie) == s
    body, mac = cookie.split(".")
    assert signer.read(body[:-2] + "xx." + mac) is None and signer.read(cookie + "x") is None
    assert SessionSigner(b"j" * 32, 60).read(cookie) is None
    assert signer.check_csrf(s, signer.csrf(s)) and not signer.check_csrf(s, "nope") and not signer.check_csrf(s, None)
    expired = SessionSigner(b"k" * 32, ttl_s=-1)
    assert expired.read(expired.issue("ann", ("officer",), ())[0]) is None
    with pytest.raises(ValueError):
        SessionSigner(b"short", 60)


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
