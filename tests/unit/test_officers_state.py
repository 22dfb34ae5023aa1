"""Officer state transitions, set memberships, routing order, the ingest gate
monitor and the matcher's second gating check (pure logic and fakes; the Redis
side runs for real in tests/integration/test_officers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_matcher_decision import FACES, FakeRedis, Rec, _observation, _rig, _value

from services.common.availability import (
    ALL_OFFICERS, AVAILABLE, BUSY, OFF_DUTY, GatingOptions, Location, Officer, may_run, zone_available_key,
    zone_on_duty_key, zone_supervisors_key,
)
from services.common.cameras import Camera
from services.common.metrics import MetricsFactory
from services.ingest.gate import GateMonitor
from services.officers import routing
from services.officers.state import StateError, go_on_duty, heartbeat, memberships, plan, set_status

TTL = 30_000


def test_on_duty_joins_available_and_on_duty_sets_of_each_zone() -> None:
    o = go_on_duty("o1", ["z1", "z2", "z1", ""], "d1", at_ms=1000, ttl_ms=TTL)
    assert o.zones == ("z1", "z2") and o.status == AVAILABLE and o.expires_ms == 1000 + TTL
    assert memberships(o) == {ALL_OFFICERS: 31_000, zone_on_duty_key("z1"): 31_000, zone_available_key("z1"): 31_000,
                              zone_on_duty_key("z2"): 31_000, zone_available_key("z2"): 31_000}
    with pytest.raises(StateError):
        go_on_duty("o1", [], "d1", at_ms=0, ttl_ms=TTL)
    with pytest.raises(StateError):
        go_on_duty("o1", ["z"], "", at_ms=0, ttl_ms=TTL)


def test_supervisors_do_not_count_for_gating() -> None:
    s = go_on_duty("s1", ["z1"], "ds", at_ms=0, ttl_ms=TTL, supervisor=True)
    m = memberships(s)
    assert zone_supervisors_key("z1") in m and zone_available_key("z1") not in m


def test_busy_leaves_available_but_stays_on_duty_and_off_duty_leaves_everything() -> None:
    o = go_on_duty("o1", ["z1"], "d1", at_ms=0, ttl_ms=TTL)
    busy = set_status(o, BUSY, at_ms=10, ttl_ms=TTL)
    assert busy is not None and busy.status == BUSY and busy.expires_ms == 10 + TTL
    leave, join = plan(o, busy)
    assert leave == [zone_available_key("z1")] and zone_on_duty_key("z1") in join
    assert set_status(busy, OFF_DUTY, at_ms=20, ttl_ms=TTL) is None
    leave, join = plan(busy, None)
    assert join == {} and set(leave) == {ALL_OFFICERS, zone_on_duty_key("z1")}
    with pytest.raises(StateError):
        set_status(o, "sleeping", at_ms=0, ttl_ms=TTL)


def test_heartbeat_extends_updates_location_and_moves_zones() -> None:
    o = go_on_duty("o1", ["z1"], "d1", at_ms=0, ttl_ms=TTL)
    hb = heartbeat(o, at_ms=5000, ttl_ms=TTL, location=Location(51.5, -0.1), zones=["z2"])
    assert hb.expires_ms == 35_000 and hb.location == Location(51.5, -0.1) and hb.zones == ("z2",)
    leave, join = plan(o, hb)
    assert set(leave) == {zone_available_key("z1"), zone_on_duty_key("z1")}
    assert zone_available_key("z2") in join
    assert heartbeat(hb, at_ms=6000, ttl_ms=TTL).location == Location(51.5, -0.1), "location kept when not sent"


def test_a_lapsed_officer_cannot_heartbeat_back() -> None:
    o = go_on_duty("o1", ["z1"], "d1", at_ms=0, ttl_ms=TTL)
    with pytest.raises(StateError):
        heartbeat(o, at_ms=TTL + 1, ttl_ms=TTL)
    with pytest.raises(StateError):
        heartbeat(None, at_ms=0, ttl_ms=TTL)


def test_redis_round_trip() -> None:
    o = go_on_duty("o1", ["z1", "z2"], "d1", at_ms=7, ttl_ms=TTL, location=Location(1.5, 2.5, 10.0), supervisor=True)
    raw = {k.encode(): v.encode() for k, v in o.to_redis().items()}
    assert Officer.from_redis("o1", raw) == o
    assert Officer.from_redis("o2", go_on_duty("o2", ["z"], "d", at_ms=0, ttl_ms=1).to_redis()).location is None


def test_gating_rule() -> None:
    assert not may_run(0, 1) and may_run(1, 1) and not may_run(1, 2) and may_run(0, 0)


def _officer(oid: str, lat: float | None = None, lon: float | None = None, device: str | None = None) -> Officer:
    loc = Location(lat, lon) if lat is not None and lon is not None else None
    return Officer(oid, ("z",), device if device is not None else f"dev-{oid}", location=loc, expires_ms=10**15)


def test_rank_nearest_first_then_unknown_locations_by_id() -> None:
    cam = (51.5000, -0.1000)
    far, near, mid = _officer("far", 51.52, -0.1), _officer("near", 51.5005, -0.1), _officer("mid", 51.505, -0.1)
    b, a = _officer("b"), _officer("a")
    assert [o.officer_id for o in routing.rank([b, far, a, near, mid], *cam)] == ["near", "mid", "far", "a", "b"]
    assert [o.officer_id for o in routing.rank([far, near, b], None, None)] == ["b", "far", "near"]


def test_waves_then_supervisor_then_unreachable() -> None:
    ranked = [_officer(f"o{i}") for i in range(5)]
    sups = [_officer("sup")]
    w = routing.next_wave(ranked, sups, "ctrl-room", set(), level=0, first_wave=2, escalation_wave=2)
    assert w.kind == routing.OFFICERS and [t.officer_id for t in w.targets] == ["o0", "o1"]
    w = routing.next_wave(ranked, sups, "ctrl-room", {"o0", "o1"}, level=1, first_wave=2, escalation_wave=2)
    assert [t.officer_id for t in w.targets] == ["o2", "o3"]
    w = routing.next_wave(ranked, sups, "ctrl-room", {"o0", "o1", "o2", "o3"}, level=2, first_wave=2, escalation_wave=2)
    assert [t.officer_id for t in w.targets] == ["o4"]
    notified = {f"o{i}" for i in range(5)}
    w = routing.next_wave(ranked, sups, "ctrl-room", notified, level=3, first_wave=2, escalation_wave=2)
    assert w.kind == routing.SUPERVISOR
    assert [(t.officer_id, t.device_id) for t in w.targets] == [("sup", "dev-sup"), ("device:ctrl-room", "ctrl-room")]
    notified |= {"sup", "device:ctrl-room"}
    w = routing.next_wave(ranked, sups, "ctrl-room", notified, level=4, first_wave=2, escalation_wave=2,
                          supervisor_notified=True)
    assert w.kind == routing.UNREACHABLE and w.targets == ()


def test_new_officers_after_the_supervisor_wave_do_not_restart_escalation() -> None:
    w = routing.next_wave([_officer("late")], [], None, {"sup"}, level=3, first_wave=1, escalation_wave=1,
                          supervisor_notified=True)
    assert w.kind == routing.UNREACHABLE


def test_nobody_on_duty_is_unreachable_at_once() -> None:
    assert routing.next_wave([], [], None, set(), level=0, first_wave=2, escalation_wave=2).kind == routing.UNREACHABLE


# --- ingest's gate monitor ----------------------------------------------------------------


class _Audit:
    def __init__(self, fail: int = 0) -> None:
        self.records: list[tuple[str, bool, str]] = []
        self.fail = fail

    async def camera_changed(self, camera_id: str, *, on: bool, actor: str, deployment_id: str, reason: str) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker down")
        self.records.append((camera_id, on, reason))


def _cams() -> list[Camera]:
    return [Camera(id="c1", zone="z1", deployment_id="op", source="/dev/null"),
            Camera(id="c2", zone="z2", deployment_id="op", source="/dev/null")]


async def test_gate_is_closed_until_a_poll_says_otherwise_and_fails_closed() -> None:
    factory = MetricsFactory("ingest")
    active = factory.gauge("camera_active", "x", ("camera",))
    audit = _Audit()
    gate = GateMonitor(_cams(), GatingOptions(min_officers=1), audit=audit, camera_active=active)
    c1, c2 = _cams()
    assert not gate.is_open(c1) and not gate.is_open(c2)
    assert gate.decide({"z1": 1, "z2": 0}) and gate.is_open(c1) and not gate.is_open(c2)
    assert gate.decide({"z1": 1, "z2": 0}) == [], "no transition, nothing to audit"
    off = gate.decide(None)  # Redis unreachable
    assert [t.camera.id for t in off] == ["c1"] and not gate.is_open(c1)
    assert factory.registry.get_sample_value("lfr_camera_active", {"camera": "c1"}) == 0


async def test_gate_transitions_are_audited_and_retried_when_the_broker_is_down() -> None:
    audit = _Audit(fail=1)
    gate = GateMonitor(_cams(), GatingOptions(min_officers=2), audit=audit)
    gate._pending += gate.decide({"z1": 2, "z2": 1})
    await gate.flush_audit()
    assert audit.records == [] and len(gate._pending) == 1
    gate._pending += gate.decide({"z1": 0})
    await gate.flush_audit()
    assert [(c, on) for c, on, _ in audit.records] == [("c1", True), ("c1", False)]
    assert "2 available officer(s) in zone z1, minimum 2" in audit.records[0][2]


# --- the matcher checks again ------------------------------------------------------------------


class _Pipe:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts, self.calls = counts, []

    async def __aenter__(self) -> "_Pipe":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        return None

    def zcount(self, key: str, lo: str, hi: str) -> None:
        self.calls.append(key)

    async def execute(self) -> list[int]:
        return [self.counts.get(k, 0) for k in self.calls]


class GatedRedis(FakeRedis):
    def __init__(self, events: list[str], counts: dict[str, int]) -> None:
        super().__init__(events)
        self.counts = counts

    def pipeline(self, transaction: bool = True) -> _Pipe:
        return _Pipe(self.counts)


async def test_matcher_shreds_faces_of_a_camera_without_officers(tmp_path: Path) -> None:
    rig = _rig(tmp_path, min_officers=1)
    rig.matcher.redis = rig.redis = GatedRedis(rig.events, {})
    records = [Rec(FACES, 0, 0, _observation(rig, "would-match", 0.9))]
    assert len(rig.redis.data) == 1
    await rig.loop.process({("faces", 0): records})
    assert rig.redis.data == {}, "the gated face's key is deleted"
    assert not [t for t, _, _ in rig.producer.sent], "no match, no dead letter"
    reg = rig.matcher.ctx.metrics.registry
    assert _value(reg, "lfr_faces_gated_total", {"camera": "cam-1"}) == 1
    assert _value(reg, "lfr_nonmatches_discarded_total") == 0

    rig.redis.counts = {zone_available_key("zone-a"): 1}  # an officer went on duty
    await rig.loop.process({("faces", 0): [Rec(FACES, 0, 1, _observation(rig, "match", 0.9))]})
    assert [t for t, _, _ in rig.producer.sent] == ["lfr.matches.v1"]
