"""Who may do what as an officer, in Redis: the duty roster (which zones an officer
may go on duty in, until when, assigned by whom) and the device registry (which
officer a device belongs to). Written only by the officers service's
``OfficerService.AssignZones`` / ``RevokeAssignment`` and
``DeviceService.RegisterDevice`` / ``UnregisterDevice`` (roles supervisor,
operator; audited), and by the local launcher (:class:`services.cli.launch.DutyOfficer`).

Key layout:

- ``lfr:roster:<officer_id>`` hash: zone -> ``<expires_ms>,<assigned_ms>,<assigned_by>``.
  An entry counts until its expiry (a value, so it lapses at the exact
  millisecond); writers drop lapsed entries as they go and the key
  ``PEXPIREAT``s with its latest entry.
- ``lfr:rostered`` set: officer ids with a roster entry (for listings).
- ``lfr:device:<device_id>`` hash: officer, by (who registered it), at_ms.

Ownership is an exact match: a device belongs to the officer the registry names,
never to an officer whose id is a prefix of the device id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from services.common.availability import as_text, now_ms
from services.officers.state import StateError, check_id

ROSTER_PREFIX = "lfr:roster:"
ROSTERED = "lfr:rostered"
DEVICE_PREFIX = "lfr:device:"
MAX_ASSIGNMENT_S = 7 * 86_400
MAX_ZONES = 64


def roster_key(officer_id: str) -> str:
    return f"{ROSTER_PREFIX}{officer_id}"


def device_key(device_id: str) -> str:
    return f"{DEVICE_PREFIX}{device_id}"


@dataclasses.dataclass(frozen=True)
class Assignment:
    """One roster entry: ``officer_id`` may go on duty in ``zone`` until ``expires_ms``."""

    officer_id: str
    zone: str
    expires_ms: int
    assigned_ms: int
    assigned_by: str

    def alive(self, at_ms: int) -> bool:
        return self.expires_ms > at_ms

    def to_redis(self) -> str:
        return f"{self.expires_ms},{self.assigned_ms},{self.assigned_by}"

    @classmethod
    def from_redis(cls, officer_id: str, zone: Any, value: Any) -> "Assignment":
        expires, assigned, by = as_text(value).split(",", 2)
        return cls(officer_id, as_text(zone), int(expires), int(assigned), by)


@dataclasses.dataclass(frozen=True)
class Device:
    device_id: str
    officer_id: str
    registered_by: str
    registered_ms: int


def assignments_for(officer_id: str, zones: Sequence[str], duration_s: float, by: str, at_ms: int) -> list[Assignment]:
    """The entries an AssignZones call makes (pure: validates every id and the duration)."""
    check_id("officer_id", officer_id)
    zs = list(dict.fromkeys(z for z in zones if z))
    if not zs:
        raise StateError("at least one zone is required")
    if len(zs) > MAX_ZONES:
        raise StateError(f"at most {MAX_ZONES} zones per assignment ({len(zs)} given)")
    for z in zs:
        check_id("zone", z)
    if not 1 <= duration_s <= MAX_ASSIGNMENT_S:
        raise StateError(f"duration_s must be 1 s to {MAX_ASSIGNMENT_S} s (7 days); {duration_s:g} given")
    return [Assignment(officer_id, z, at_ms + int(duration_s * 1000), at_ms, by) for z in zs]


def unassigned(zones: Iterable[str], assigned: Iterable[Assignment], at_ms: int) -> list[str]:
    """The zones of ``zones`` that no live assignment covers (in order)."""
    live = {a.zone for a in assigned if a.alive(at_ms)}
    return [z for z in dict.fromkeys(zones) if z and z not in live]


class Roster:
    """Reads and writes of the roster and the device registry."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    # --- assignments ---------------------------------------------------------------------

    async def assigned(self, officer_id: str, at_ms: int | None = None) -> list[Assignment]:
        """The officer's live assignments, by zone."""
        at = now_ms() if at_ms is None else at_ms
        return sorted((a for a in await self.assigned_raw(officer_id) if a.alive(at)), key=lambda a: a.zone)

    async def assign(self, entries: Sequence[Assignment]) -> None:
        """Add or replace entries (one officer's); lapsed ones of that officer are dropped."""
        if not entries:
            return
        officer_id = entries[0].officer_id
        key = roster_key(officer_id)
        at = min(a.assigned_ms for a in entries)
        new = {a.zone: a for a in entries}
        kept = [a for a in await self.assigned_raw(officer_id) if a.zone not in new]
        lapsed = [a.zone for a in kept if not a.alive(at)]
        latest = max(a.expires_ms for a in [*entries, *kept] if a.zone not in lapsed)
        async with self.redis.pipeline(transaction=True) as pipe:
            if lapsed:
                pipe.hdel(key, *lapsed)
            pipe.hset(key, mapping={z: a.to_redis() for z, a in new.items()})
            pipe.pexpireat(key, latest)
            pipe.sadd(ROSTERED, officer_id)
            await pipe.execute()

    async def assigned_raw(self, officer_id: str) -> list[Assignment]:
        raw = await self.redis.hgetall(roster_key(officer_id))
        return [Assignment.from_redis(officer_id, z, v) for z, v in raw.items()]

    async def revoke(self, officer_id: str, zones: Sequence[str] = ()) -> list[str]:
        """Remove the officer's entries for ``zones`` (empty: every zone); returns the zones removed."""
        key = roster_key(officer_id)
        present = [a.zone for a in await self.assigned_raw(officer_id)]
        gone = [z for z in present if not zones or z in zones]
        if gone:
            await self.redis.hdel(key, *gone)
        if not await self.redis.exists(key):
            await self.redis.srem(ROSTERED, officer_id)
        return gone

    async def officers(self) -> list[str]:
        """Officers with a roster entry (those whose entries all lapsed are dropped from the index)."""
        ids = sorted(as_text(o) for o in await self.redis.smembers(ROSTERED))
        alive = [oid for oid in ids if await self.redis.exists(roster_key(oid))]
        stale = [oid for oid in ids if oid not in alive]
        if stale:
            await self.redis.srem(ROSTERED, *stale)
        return alive

    # --- devices ---------------------------------------------------------------------

    async def device(self, device_id: str) -> Device | None:
        raw = {as_text(k): as_text(v) for k, v in (await self.redis.hgetall(device_key(device_id))).items()}
        if not raw.get("officer"):
            return None
        return Device(device_id, raw["officer"], raw.get("by", ""), int(raw.get("at_ms") or 0))

    async def register(self, device_id: str, officer_id: str, by: str, at_ms: int | None = None) -> Device:
        check_id("device_id", device_id)
        check_id("officer_id", officer_id)
        dev = Device(device_id, officer_id, by, now_ms() if at_ms is None else at_ms)
        await self.redis.hset(device_key(device_id), mapping={"officer": officer_id, "by": by,
                                                              "at_ms": str(dev.registered_ms)})
        return dev

    async def unregister(self, device_id: str) -> Device | None:
        """Remove the device; returns what it was (None: it was not registered)."""
        dev = await self.device(device_id)
        if dev is not None:
            await self.redis.delete(device_key(device_id))
        return dev

    async def owner(self, device_id: str) -> str | None:
        """The officer the device is registered to (exact match), None when it is not registered."""
        dev = await self.device(device_id)
        return None if dev is None else dev.officer_id
