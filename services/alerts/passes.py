"""Passes: one alert per subject per camera per pass.

A *pass* is a run of matches of one subject on one camera whose capture times
are never more than ``window`` apart. The first match of a pass raises the
alert at once (frame-to-alert latency is what officers feel); every later match
in the pass extends it (``last_seen``), counts, and may raise the best score
(the best crop and box are kept with it), but emits nothing: a device sees ONE
alert per pass. A match captured more than ``window`` after the pass's last
sighting starts a new pass, hence a new alert.

Windows are measured on capture times (the frames' clock), not on when the
alerts service happens to process them, so a backlog or a restart does not
split or merge passes. The state lives in Redis (``lfr:pass:<camera>:<subject>``,
:func:`services.common.pass_keys.pass_key`, expiring ``ttl`` after the last sighting),
so a restarted service or several replicas continue the same pass instead of raising it again.

The alert id is derived from (camera, subject, first observation id): a
redelivered first match yields the same id, which is the alert's idempotency
key downstream (Kafka record key, device delivery ids in the officers issue).
:func:`aggregate` is the whole decision, pure; the stores only persist it.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Protocol


def alert_id_for(camera_id: str, subject_id: str, first_observation_id: str) -> str:
    """Deterministic: the same first match always names the same alert."""
    return hashlib.sha256(f"{camera_id}\0{subject_id}\0{first_observation_id}".encode()).hexdigest()[:32]


@dataclasses.dataclass(frozen=True)
class Sighting:
    """One match, as the pass logic sees it (the crop travels separately)."""

    camera_id: str
    subject_id: str
    observation_id: str
    capture_ns: int
    score: float
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


@dataclasses.dataclass(frozen=True)
class PassState:
    alert_id: str
    first_seen_ns: int
    last_seen_ns: int
    best_score: float
    best_observation_id: str
    best_box: tuple[float, float, float, float]
    match_count: int
    emitted: bool = False

    def to_redis(self) -> dict[str, str]:
        return {
            "alert_id": self.alert_id,
            "first_ns": str(self.first_seen_ns),
            "last_ns": str(self.last_seen_ns),
            "best_score": repr(self.best_score),
            "best_obs": self.best_observation_id,
            "best_box": ",".join(repr(v) for v in self.best_box),
            "count": str(self.match_count),
            "emitted": "1" if self.emitted else "0",
        }

    @classmethod
    def from_redis(cls, raw: dict[Any, Any]) -> "PassState":
        d = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
             for k, v in raw.items()}
        box = tuple(float(v) for v in d.get("best_box", "0,0,0,0").split(","))
        return cls(
            alert_id=d["alert_id"],
            first_seen_ns=int(d["first_ns"]),
            last_seen_ns=int(d["last_ns"]),
            best_score=float(d["best_score"]),
            best_observation_id=d["best_obs"],
            best_box=(box + (0.0, 0.0, 0.0, 0.0))[:4],  # type: ignore[arg-type]
            match_count=int(d["count"]),
            emitted=d.get("emitted") == "1",
        )


@dataclasses.dataclass(frozen=True)
class PassUpdate:
    state: PassState
    new_pass: bool  # this sighting opened a pass
    improved: bool  # this sighting is now the pass's best


def aggregate(state: PassState | None, s: Sighting, window_ns: int) -> PassUpdate:
    """The pass decision for one sighting, given the camera/subject's current pass (or None)."""
    if state is None or s.capture_ns - state.last_seen_ns > window_ns:
        fresh = PassState(
            alert_id=alert_id_for(s.camera_id, s.subject_id, s.observation_id),
            first_seen_ns=s.capture_ns, last_seen_ns=s.capture_ns,
            best_score=s.score, best_observation_id=s.observation_id, best_box=s.box,
            match_count=1, emitted=False,
        )
        return PassUpdate(fresh, new_pass=True, improved=True)
    improved = s.score > state.best_score
    updated = dataclasses.replace(
        state,
        first_seen_ns=min(state.first_seen_ns, s.capture_ns),
        last_seen_ns=max(state.last_seen_ns, s.capture_ns),
        match_count=state.match_count + 1,
        **({"best_score": s.score, "best_observation_id": s.observation_id, "best_box": s.box} if improved else {}),
    )
    return PassUpdate(updated, new_pass=False, improved=improved)


class PassStore(Protocol):
    """Persists passes; ``apply`` must be atomic per key."""

    async def apply(self, key: str, sighting: Sighting, window_ns: int, ttl_ms: int, crop: bytes) -> PassUpdate:
        """Run :func:`aggregate` on the stored state and store the result (best crop with it)."""
        ...

    async def mark_emitted(self, key: str, alert_id: str, ttl_ms: int) -> None:
        """Record that the pass's alert is published (only if the pass is still ``alert_id``'s)."""
        ...

    async def best_crop(self, key: str) -> bytes:
        ...


_MARK_EMITTED = """
if redis.call('HGET', KEYS[1], 'alert_id') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'emitted', '1')
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

_FIELDS = ("alert_id", "first_ns", "last_ns", "best_score", "best_obs", "best_box", "count", "emitted")


class RedisPassStore:
    """Pass state in a Redis hash per (camera, subject); updates are WATCH/MULTI transactions."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def apply(self, key: str, sighting: Sighting, window_ns: int, ttl_ms: int, crop: bytes) -> PassUpdate:
        from redis.exceptions import WatchError

        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    values = await pipe.hmget(key, list(_FIELDS))
                    state = PassState.from_redis(dict(zip(_FIELDS, values))) if values[0] is not None else None
                    update = aggregate(state, sighting, window_ns)
                    pipe.multi()
                    if update.new_pass:
                        pipe.delete(key)  # an expired pass's leftovers (its crop) go with it
                    pipe.hset(key, mapping=update.state.to_redis())
                    if update.improved:
                        pipe.hset(key, "best_crop", crop)  # a matched face's crop: kept only for the pass
                    pipe.pexpire(key, ttl_ms)
                    await pipe.execute()
                    return update
                except WatchError:
                    continue  # another replica touched the pass: re-read and re-decide

    async def mark_emitted(self, key: str, alert_id: str, ttl_ms: int) -> None:
        await self._redis.eval(_MARK_EMITTED, 1, key, alert_id, ttl_ms)

    async def best_crop(self, key: str) -> bytes:
        return bytes(await self._redis.hget(key, "best_crop") or b"")
