"""The duty roster and device registry's pure rules (services/officers/roster.py) and
their rows in the roles table; the same rules on the real servers:
tests/integration/test_security_roles.py."""

from __future__ import annotations

import pytest
from lfr.v1 import officers_pb2

from services.common import roles
from services.officers.roster import MAX_ASSIGNMENT_S, Assignment, assignments_for, unassigned
from services.officers.state import StateError


def test_assignments_are_validated_and_expire() -> None:
    got = assignments_for("smith", ["z1", "z2", "z1", ""], 60, "sup", at_ms=1_000)
    assert [(a.zone, a.expires_ms, a.assigned_by) for a in got] == [("z1", 61_000, "sup"), ("z2", 61_000, "sup")]
    assert Assignment.from_redis("smith", b"z1", got[0].to_redis().encode()) == got[0]
    assert unassigned(["z1", "z3"], got, at_ms=60_999) == ["z3"]
    assert unassigned(["z1"], got, at_ms=61_000) == ["z1"], "an assignment lapses at its expiry"
    for zones, duration in (([], 60), (["../x"], 60), (["z"], 0), (["z"], MAX_ASSIGNMENT_S + 1)):
        with pytest.raises(StateError):
            assignments_for("smith", zones, duration, "sup", at_ms=0)
    with pytest.raises(StateError):
        assignments_for("smith,jones", ["z"], 60, "sup", at_ms=0)


def test_roster_and_registry_rpcs_are_for_supervisors_and_operators() -> None:
    new = [f"/lfr.v1.OfficerService/{m}" for m in ("AssignZones", "ListAssignments", "RevokeAssignment")] + \
          [f"/lfr.v1.DeviceService/{m}" for m in ("RegisterDevice", "UnregisterDevice")]
    for method in new:
        for role, allowed in (("supervisor", True), ("operator", True), ("officer", False), ("console", False),
                              ("auditor", False), ("service", False)):
            assert roles.decide(method, "x", frozenset({role}), frozenset()).allowed is allowed, (method, role)


def test_the_table_leaves_device_ownership_to_the_registry() -> None:
    """The SELF binding checks only officer_id; a device id that merely starts with the caller's id is
    no longer taken as theirs here (the officers service asks the registry, an exact match)."""
    sub = "/lfr.v1.DeviceService/Subscribe"
    prefix = officers_pb2.SubscribeRequest(device_id="smith-j-phone", officer_id="smith")
    decision = roles.decide(sub, "smith", frozenset({"officer"}), frozenset(), prefix)
    assert decision.allowed and decision.reason == "role officer"
    assert not roles.decide(sub, "smith", frozenset({"officer"}), frozenset(),
                            officers_pb2.SubscribeRequest(device_id="smith-j-phone", officer_id="jones")).allowed
