"""Officer availability in Redis: THE key layout, the pure state transitions, and
the read-only helpers that ingest, the matcher and the alerts/officers services
import (``camera_may_run``, ``available_officers``, ``zone_counts``).

Key layout (every key the officers feature writes; alert keys in
:mod:`services.officers.alert_store`, the duty roster and device registry in
:mod:`services.officers.roster`):

- ``lfr:officer:<officer_id>`` hash: zones (comma-separated), device, status,
  supervisor, lat/lon/acc (empty when unknown), hb_ms, expires_ms. It EXPIREs
  with the heartbeat TTL, so an officer whose app falls silent disappears.
- ``lfr:zone:<zone>:available`` sorted set: officer id -> availability expiry
  (unix ms). Only officers with status AVAILABLE who are not supervisors. THE
  gating input: ``ZCOUNT key <now> +inf`` is the number of officers a camera of
  the zone can count on, one O(log n) call.
- ``lfr:zone:<zone>:supervisors`` sorted set: on-duty supervisors (available).
- ``lfr:zone:<zone>:on_duty`` sorted set: every on-duty officer of the zone
  (any status), for listings.
- ``lfr:officers`` sorted set: every on-duty officer -> expiry.
- ``lfr:zones`` set: every zone an officer ever went on duty in (for metrics).

Expiry is a score, not a key TTL, so a lapsed officer stops counting at the
exact millisecond its TTL ends even before anyone cleans the set; writers
remove lapsed members (``ZREMRANGEBYSCORE -inf <now>``) as they go.

Updates are atomic per officer: read the hash under ``WATCH``, compute the new
record with the pure functions below, write hash and set memberships in one
``MULTI/EXEC`` (retried when another writer touched the officer).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import Field

from services.common import ids
from services.common.settings import Section

OFFICER_PREFIX = "lfr:officer:"
ZONE_PREFIX = "lfr:zone:"
ALL_OFFICERS = "lfr:officers"
ZONES = "lfr:zones"

AVAILABLE = "available"
BUSY = "busy"
OFF_DUTY = "off_duty"
STATUSES = (AVAILABLE, BUSY, OFF_DUTY)


class GatingOptions(Section):
    """Camera gating, shared by ingest (enforces) and the matcher (checks again)."""

    min_officers: int = Field(
        1, ge=0, le=1000,
        description="a camera runs only while at least this many AVAILABLE officers are on duty in its zone "
                    "(0 turns gating off: benchmarks only, never in an operation)",
    )
    poll_interval_s: float = Field(
        0.5, gt=0, le=10, description="how often ingest re-reads availability (frames flow within this + one frame)"
    )


def officer_key(officer_id: str) -> str:
    return f"{OFFICER_PREFIX}{officer_id}"


def zone_available_key(zone: str) -> str:
    return f"{ZONE_PREFIX}{zone}:available"


def zone_supervisors_key(zone: str) -> str:
    return f"{ZONE_PREFIX}{zone}:supervisors"


def zone_on_duty_key(zone: str) -> str:
    return f"{ZONE_PREFIX}{zone}:on_duty"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclasses.dataclass(frozen=True)
class Location:
    lat: float
    lon: float
    accuracy_m: float = 0.0


@dataclasses.dataclass(frozen=True)
class Officer:
    officer_id: str
    zones: tuple[str, ...]
    device_id: str
    status: str = AVAILABLE
    supervisor: bool = False
    location: Location | None = None
    heartbeat_ms: int = 0
    expires_ms: int = 0

    def alive(self, at_ms: int) -> bool:
        return self.expires_ms > at_ms

    def to_redis(self) -> dict[str, str]:
        loc = self.location
        return {
            "zones": ",".join(self.zones),
            "device": self.device_id,
            "status": self.status,
            "supervisor": "1" if self.supervisor else "0",
            "lat": "" if loc is None else repr(loc.lat),
            "lon": "" if loc is None else repr(loc.lon),
            "acc": "" if loc is None else repr(loc.accuracy_m),
            "hb_ms": str(self.heartbeat_ms),
            "expires_ms": str(self.expires_ms),
        }

    @classmethod
    def from_redis(cls, officer_id: str, raw: dict[Any, Any]) -> "Officer":
        d = {as_text(k): as_text(v) for k, v in raw.items()}
        loc = None
        if d.get("lat") and d.get("lon"):
            loc = Location(float(d["lat"]), float(d["lon"]), float(d.get("acc") or 0.0))
        return cls(
            officer_id=officer_id,
            zones=tuple(z for z in d.get("zones", "").split(",") if z),
            device_id=d.get("device", ""),
            status=d.get("status", AVAILABLE),
            supervisor=d.get("supervisor") == "1",
            location=loc,
            heartbeat_ms=int(d.get("hb_ms") or 0),
            expires_ms=int(d.get("expires_ms") or 0),
        )


def as_text(v: Any) -> str:
    """A Redis reply (bytes or not) as str."""
    return v.decode() if isinstance(v, bytes) else str(v)


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


# --- read-only helpers (ingest, matcher, alerts, officers) ----------------------------------


async def available_count(redis: Any, zone: str, at_ms: int | None = None) -> int:
    at = now_ms() if at_ms is None else at_ms
    return int(await redis.zcount(zone_available_key(zone), f"({at}", "+inf"))


async def zone_counts(redis: Any, zones: Iterable[str], at_ms: int | None = None) -> dict[str, int]:
    """Available officers per zone, one round trip."""
    at = now_ms() if at_ms is None else at_ms
    zs = sorted(set(zones))
    if not zs:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for z in zs:
            pipe.zcount(zone_available_key(z), f"({at}", "+inf")
        counts = await pipe.execute()
    return {z: int(c) for z, c in zip(zs, counts)}


def may_run(count: int, min_officers: int) -> bool:
    return min_officers <= 0 or count >= min_officers


async def camera_may_run(redis: Any, zone: str, min_officers: int) -> bool:
    """THE gating rule: at least ``min_officers`` available officers on duty in the zone."""
    if min_officers <= 0:
        return True
    return may_run(await available_count(redis, zone), min_officers)


async def _officers_in(redis: Any, set_key: str, at_ms: int) -> list[Officer]:
    ids = [as_text(m) for m in await redis.zrangebyscore(set_key, f"({at_ms}", "+inf")]
    if not ids:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for oid in ids:
            pipe.hgetall(officer_key(oid))
        raws = await pipe.execute()
    out = [Officer.from_redis(oid, raw) for oid, raw in zip(ids, raws) if raw]
    return [o for o in out if o.alive(at_ms)]


async def available_officers(redis: Any, zone: str, at_ms: int | None = None) -> list[Officer]:
    """Available, non-supervisor officers on duty in the zone (unordered)."""
    at = now_ms() if at_ms is None else at_ms
    return [o for o in await _officers_in(redis, zone_available_key(zone), at) if o.status == AVAILABLE]


async def available_supervisors(redis: Any, zone: str, at_ms: int | None = None) -> list[Officer]:
    at = now_ms() if at_ms is None else at_ms
    return [o for o in await _officers_in(redis, zone_supervisors_key(zone), at) if o.status == AVAILABLE]


async def on_duty_officers(redis: Any, zone: str = "", at_ms: int | None = None) -> list[Officer]:
    at = now_ms() if at_ms is None else at_ms
    key = zone_on_duty_key(zone) if zone else ALL_OFFICERS
    return sorted(await _officers_in(redis, key, at), key=lambda o: o.officer_id)


async def known_zones(redis: Any) -> set[str]:
    return {as_text(z) for z in await redis.smembers(ZONES)}


def distance_m(a: Location, lat: float, lon: float) -> float:
    """Great-circle distance (haversine), metres."""
    r = 6_371_000.0
    p1, p2 = math.radians(a.lat), math.radians(lat)
    dp, dl = p2 - p1, math.radians(lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(h)))
