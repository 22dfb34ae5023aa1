"""Officer availability, the writing side: the pure state transitions and the atomic
store. The officers service is the only writer; the key layout, the officer record, the
gating rule and the read-only helpers that every service uses live in
:mod:`services.common.availability`.

Updates are atomic per officer: read the hash under ``WATCH``, compute the new
record with the pure functions below, write hash and set memberships in one
``MULTI/EXEC`` (retried when another writer touched the officer).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from services.common import ids
from services.common.availability import (
    ALL_OFFICERS, AVAILABLE, OFF_DUTY, STATUSES, ZONES, Location, Officer, now_ms, officer_key, zone_available_key,
    zone_on_duty_key, zone_supervisors_key,
)


class StateError(ValueError):
    """A transition that is not allowed (unknown officer, bad status, no zones)."""


# --- pure transitions -------------------------------------------------------------


def check_id(kind: str, value: str) -> str:
    """Ids become Redis keys, audit fields and log fields: the one rule of services/common/ids.py
    (a short, plain identifier; the bad value is never echoed back), as a StateError."""
    try:
        return ids.check_id(kind, value)
    except ids.InvalidId as e:
        raise StateError(str(e)) from None


def go_on_duty(officer_id: str, zones: Sequence[str], device_id: str, *, at_ms: int, ttl_ms: int,
               location: Location | None = None, supervisor: bool = False) -> Officer:
    zs = tuple(dict.fromkeys(z for z in zones if z))
    if not officer_id or not zs or not device_id:
        raise StateError("officer id, at least one zone and a device id are required")
    check_id("officer_id", officer_id)
    check_id("device_id", device_id)
    for z in zs:
        check_id("zone", z)
    return Officer(officer_id, zs, device_id, AVAILABLE, supervisor, location, at_ms, at_ms + ttl_ms)


def heartbeat(old: Officer | None, *, at_ms: int, ttl_ms: int, location: Location | None = None,
              zones: Sequence[str] = ()) -> Officer:
    if old is None or not old.alive(at_ms):
        raise StateError("officer is not on duty (availability lapsed or never started): go on duty again")
    zs = tuple(dict.fromkeys(z for z in zones if z)) or old.zones
    return dataclasses.replace(old, zones=zs, location=location or old.location, heartbeat_ms=at_ms,
                               expires_ms=at_ms + ttl_ms)


def set_status(old: Officer | None, status: str, *, at_ms: int, ttl_ms: int) -> Officer | None:
    """The new record; None means off duty (everything removed)."""
    if status not in STATUSES:
        raise StateError(f"unknown status {status!r}")
    if old is None or not old.alive(at_ms):
        if status == OFF_DUTY:
            return None
        raise StateError("officer is not on duty: go on duty first")
    if status == OFF_DUTY:
        return None
    return dataclasses.replace(old, status=status, heartbeat_ms=at_ms, expires_ms=at_ms + ttl_ms)


def memberships(officer: Officer | None) -> dict[str, int]:
    """Sorted set -> score (expiry ms) the officer must be in; {} when off duty."""
    if officer is None:
        return {}
    out = {ALL_OFFICERS: officer.expires_ms}
    for z in officer.zones:
        out[zone_on_duty_key(z)] = officer.expires_ms
        if officer.status == AVAILABLE:
            out[zone_supervisors_key(z) if officer.supervisor else zone_available_key(z)] = officer.expires_ms
    return out


def plan(old: Officer | None, new: Officer | None) -> tuple[list[str], dict[str, int]]:
    """(sets to leave, set -> score to join) for the change old -> new."""
    before, after = memberships(old), memberships(new)
    return sorted(k for k in before if k not in after), after


# --- the store (writers: the officers service) ----------------------------------------


class OfficerStore:
    """Atomic officer updates (WATCH/MULTI/EXEC) and reads."""

    def __init__(self, redis: Any, ttl_s: float) -> None:
        self.redis = redis
        self.ttl_ms = int(ttl_s * 1000)

    async def get(self, officer_id: str) -> Officer | None:
        raw = await self.redis.hgetall(officer_key(officer_id))
        return Officer.from_redis(officer_id, raw) if raw else None

    async def update(self, officer_id: str, change: Any) -> tuple[Officer | None, Officer | None]:
        """Apply ``change(old, at_ms) -> new | None`` atomically; returns (old, new)."""
        from redis.exceptions import WatchError

        key = officer_key(officer_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hgetall(key)
                    at = now_ms()
                    old = Officer.from_redis(officer_id, raw) if raw else None
                    if old is not None and not old.alive(at):
                        old_live: Officer | None = None
                    else:
                        old_live = old
                    new = change(old_live, at)
                    leave, join = plan(old, new)  # leave the lapsed record's sets too
                    pipe.multi()
                    for set_key in leave:
                        pipe.zrem(set_key, officer_id)
                    for set_key, score in join.items():
                        pipe.zadd(set_key, {officer_id: score})
                        pipe.zremrangebyscore(set_key, "-inf", at)  # lapsed members of the sets we touch
                    if new is None:
                        pipe.delete(key)
                    else:
                        pipe.delete(key)
                        pipe.hset(key, mapping=new.to_redis())
                        pipe.pexpireat(key, new.expires_ms)
                        pipe.sadd(ZONES, *new.zones)
                    await pipe.execute()
                    return old_live, new
                except WatchError:
                    continue


def distance_m(a: Location, lat: float, lon: float) -> float:
    """Great-circle distance (haversine), metres."""
    r = 6_371_000.0
    p1, p2 = math.radians(a.lat), math.radians(lat)
    dp, dl = p2 - p1, math.radians(lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(h)))
