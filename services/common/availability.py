"""Officer availability in Redis, the reading side: THE key layout, the officer record, the
gating rule and its options, and the read-only helpers that ingest, the matcher, the console and
the officers service use (``camera_may_run``, ``zone_counts``, ``available_officers``, ...).
The officers service is the only writer (transitions and the atomic store:
:mod:`services.officers.state`).

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
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from typing import Any

from pydantic import Field

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


# --- read-only helpers (ingest, matcher, console, officers) ---------------------------------


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
