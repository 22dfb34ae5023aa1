"""Alert delivery and adjudication state in Redis.

Keys (all written by the officers service):

- ``lfr:alert:<alert_id>`` hash: the serialized ``Alert`` (with the live crop
  and the watchlist image), zone/camera/deployment/subject, ``state``,
  ``level`` (-1 until first routed), ``notified`` officers, ``devices``,
  ``deadline_ms``, ``acked_by``, ``confirmed`` officers, ``outcome``,
  ``two_person``, ``kept``/``case_ref``, ``retention_ms``. It also
  ``PEXPIREAT``s a little after its retention as a safety net, so crops go even
  if no purge task runs; confirmed into a case it is ``PERSIST``ed.
- ``lfr:alerts:deadlines`` sorted set: alert id -> ack deadline (ms); the
  escalation task claims due entries with ``ZREM`` (one replica wins).
- ``lfr:alerts:retention`` sorted set: alert id -> retention end (ms); the purge
  task claims due entries the same way.
- ``lfr:inbox:<device>`` sorted set: alert ids routed to the device -> routed ms.
- ``lfr:delivered:<device>:<alert_id>``: the delivery idempotency key,
  ``SET NX`` before an alert is written to the device's stream (deleted again
  if the write fails), so a device sees each alert at most once, across
  redeliveries, restarts and replicas.
- channel ``lfr:notify:<device>``: "your inbox changed" (replicas serving the
  device's stream wake up; they also poll).

Every multi-key change is one WATCH/MULTI/EXEC on the alert's hash.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from lfr.v1 import officers_pb2

from services.common.availability import as_text, now_ms

ALERT_PREFIX = "lfr:alert:"
DEADLINES = "lfr:alerts:deadlines"
RETENTION = "lfr:alerts:retention"
INBOX_PREFIX = "lfr:inbox:"
DELIVERED_PREFIX = "lfr:delivered:"
NOTIFY_PREFIX = "lfr:notify:"
SAFETY_MARGIN_MS = 60_000  # the hash's own expiry, after the purge's deadline

PENDING = officers_pb2.ALERT_STATE_PENDING
ACKNOWLEDGED = officers_pb2.ALERT_STATE_ACKNOWLEDGED
AWAITING_SECOND = officers_pb2.ALERT_STATE_AWAITING_SECOND
ADJUDICATED = officers_pb2.ALERT_STATE_ADJUDICATED
UNREACHABLE = officers_pb2.ALERT_STATE_UNREACHABLE

CONFIRMED = officers_pb2.ADJUDICATION_OUTCOME_CONFIRMED
REJECTED = officers_pb2.ADJUDICATION_OUTCOME_REJECTED
NO_ACTION = officers_pb2.ADJUDICATION_OUTCOME_NO_ACTION
OUTCOME_NAMES = {CONFIRMED: "confirmed", REJECTED: "rejected", NO_ACTION: "no_action"}


def alert_key(alert_id: str) -> str:
    return f"{ALERT_PREFIX}{alert_id}"


def inbox_key(device_id: str) -> str:
    return f"{INBOX_PREFIX}{device_id}"


def delivered_key(device_id: str, alert_id: str) -> str:
    return f"{DELIVERED_PREFIX}{device_id}:{alert_id}"


def notify_channel(device_id: str) -> str:
    return f"{NOTIFY_PREFIX}{device_id}"


def _list(v: str) -> list[str]:
    return [x for x in v.split(",") if x]


@dataclasses.dataclass
class AlertRecord:
    alert_id: str
    zone: str = ""
    camera_id: str = ""
    deployment_id: str = ""
    subject_id: str = ""
    state: int = PENDING
    level: int = -1
    notified: list[str] = dataclasses.field(default_factory=list)
    devices: list[str] = dataclasses.field(default_factory=list)
    supervisor_notified: bool = False
    deadline_ms: int = 0
    acked_by: str = ""
    confirmed: list[str] = dataclasses.field(default_factory=list)
    outcome: int = 0
    adjudicated_by: str = ""
    two_person: bool = False
    kept: bool = False
    case_ref: str = ""
    created_ms: int = 0
    retention_ms: int = 0

    @property
    def terminal(self) -> bool:
        return self.state in (ADJUDICATED, UNREACHABLE)

    def to_redis(self) -> dict[str, str]:
        return {
            "zone": self.zone, "camera": self.camera_id, "deployment": self.deployment_id,
            "subject": self.subject_id, "state": str(self.state), "level": str(self.level),
            "notified": ",".join(self.notified), "devices": ",".join(self.devices),
            "sup": "1" if self.supervisor_notified else "0", "deadline_ms": str(self.deadline_ms),
            "acked_by": self.acked_by, "confirmed": ",".join(self.confirmed), "outcome": str(self.outcome),
            "adjudicated_by": self.adjudicated_by, "two_person": "1" if self.two_person else "0",
            "kept": "1" if self.kept else "0", "case_ref": self.case_ref,
            "created_ms": str(self.created_ms), "retention_ms": str(self.retention_ms),
        }

    @classmethod
    def from_redis(cls, alert_id: str, raw: dict[Any, Any]) -> "AlertRecord":
        d = {as_text(k): as_text(v) for k, v in raw.items() if as_text(k) != "alert"}
        return cls(
            alert_id=alert_id, zone=d.get("zone", ""), camera_id=d.get("camera", ""),
            deployment_id=d.get("deployment", ""), subject_id=d.get("subject", ""),
            state=int(d.get("state") or PENDING), level=int(d.get("level") or -1),
            notified=_list(d.get("notified", "")), devices=_list(d.get("devices", "")),
            supervisor_notified=d.get("sup") == "1", deadline_ms=int(d.get("deadline_ms") or 0),
            acked_by=d.get("acked_by", ""), confirmed=_list(d.get("confirmed", "")),
            outcome=int(d.get("outcome") or 0), adjudicated_by=d.get("adjudicated_by", ""),
            two_person=d.get("two_person") == "1", kept=d.get("kept") == "1", case_ref=d.get("case_ref", ""),
            created_ms=int(d.get("created_ms") or 0), retention_ms=int(d.get("retention_ms") or 0),
        )

    def status(self) -> officers_pb2.AlertStatus:
        return officers_pb2.AlertStatus(
            alert_id=self.alert_id, state=self.state, outcome=self.outcome, escalation_level=max(self.level, 0),
            notified_officers=self.notified, devices=self.devices, acknowledged_by=self.acked_by,
            confirmed_by=self.confirmed, two_person_confirmation=self.two_person, kept=self.kept,
            case_ref=self.case_ref, retention_until_unix_ns=self.retention_ms * 1_000_000, zone=self.zone,
            camera_id=self.camera_id, subject_id=self.subject_id,
        )


class TransitionError(ValueError):
    """Not allowed in the alert's state (the message says why)."""


@dataclasses.dataclass(frozen=True)
class Writes:
    """Extra writes that go in the same transaction as the alert's new record."""

    deadline_ms: int | None = None  # set the escalation deadline; 0 removes it
    inbox: tuple[str, ...] = ()      # devices the alert is routed to now
    keep: bool = False               # confirmed into a case: persist, leave retention


class AlertStore:
    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def create(self, alert_bytes: bytes, record: AlertRecord) -> bool:
        """Store a new alert (one atomic script); False when it exists already (a redelivery)."""
        args: list[Any] = [record.retention_ms + SAFETY_MARGIN_MS, record.retention_ms, record.alert_id]
        for k, v in record.to_redis().items():
            args += [k, v]
        args += ["alert", alert_bytes]
        return bool(await self.redis.eval(_CREATE, 2, alert_key(record.alert_id), RETENTION, *args))

    async def get(self, alert_id: str) -> AlertRecord | None:
        raw = await self.redis.hgetall(alert_key(alert_id))
        if not raw or b"state" not in raw:
            return None
        return AlertRecord.from_redis(alert_id, raw)

    async def alert_bytes(self, alert_id: str) -> bytes | None:
        v = await self.redis.hget(alert_key(alert_id), "alert")
        return bytes(v) if v is not None else None

    async def update(self, alert_id: str,
                     change: Callable[[AlertRecord], Awaitable[tuple[AlertRecord, Writes]] | tuple[AlertRecord, Writes]]
                     ) -> tuple[AlertRecord, AlertRecord]:
        """Apply ``change(record) -> (new record, writes)`` atomically; (old, new).
        Raises KeyError when the alert does not exist (purged or never raised)."""
        import inspect

        from redis.exceptions import WatchError

        key = alert_key(alert_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.hgetall(key)
                    if not raw or b"state" not in raw:
                        raise KeyError(alert_id)
                    old = AlertRecord.from_redis(alert_id, raw)
                    result = change(dataclasses.replace(old))
                    new, writes = await result if inspect.isawaitable(result) else result
                    pipe.multi()
                    pipe.hset(key, mapping=new.to_redis())
                    if writes.deadline_ms is not None:
                        if writes.deadline_ms > 0:
                            pipe.zadd(DEADLINES, {alert_id: writes.deadline_ms})
                        else:
                            pipe.zrem(DEADLINES, alert_id)
                    at = now_ms()
                    for device in writes.inbox:
                        pipe.zadd(inbox_key(device), {alert_id: at})
                        pipe.pexpireat(inbox_key(device), new.retention_ms + SAFETY_MARGIN_MS)
                    if writes.keep:
                        pipe.persist(key)
                        pipe.zrem(RETENTION, alert_id)
                    for device in writes.inbox:
                        pipe.publish(notify_channel(device), alert_id)
                    await pipe.execute()
                    return old, new
                except WatchError:
                    continue

    async def claim_due(self, zset: str, limit: int = 100) -> list[str]:
        """Due members of ``zset`` that this caller removed (so it alone handles them)."""
        due = await self.redis.zrangebyscore(zset, "-inf", now_ms(), start=0, num=limit)
        claimed = []
        for member in due:
            if await self.redis.zrem(zset, member):
                claimed.append(as_text(member))
        return claimed

    async def inbox(self, device_id: str) -> list[str]:
        return [as_text(m) for m in await self.redis.zrange(inbox_key(device_id), 0, -1)]

    async def claim_delivery(self, device_id: str, alert_id: str, ttl_ms: int) -> bool:
        return bool(await self.redis.set(delivered_key(device_id, alert_id), "1", nx=True, px=max(ttl_ms, 1000)))

    async def release_delivery(self, device_id: str, alert_id: str) -> None:
        await self.redis.delete(delivered_key(device_id, alert_id))

    async def drop_from_inbox(self, device_id: str, alert_id: str) -> None:
        await self.redis.zrem(inbox_key(device_id), alert_id)

    async def purge(self, record: AlertRecord, pass_key: str | None) -> None:
        """Delete the alert, its crops and its delivery bookkeeping."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(alert_key(record.alert_id))
            pipe.zrem(DEADLINES, record.alert_id)
            pipe.zrem(RETENTION, record.alert_id)
            for device in record.devices:
                pipe.zrem(inbox_key(device), record.alert_id)
                pipe.delete(delivered_key(device, record.alert_id))
            await pipe.execute()
        if pass_key:
            await self.redis.eval(_DROP_PASS_CROP, 1, pass_key, record.alert_id)


_CREATE = """
if redis.call('HEXISTS', KEYS[1], 'state') == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
redis.call('PEXPIREAT', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

# the alerts service's pass record keeps the best crop while the pass lasts: drop it with the alert
_DROP_PASS_CROP = """
if redis.call('HGET', KEYS[1], 'alert_id') == ARGV[1] then
  return redis.call('HDEL', KEYS[1], 'best_crop')
end
return 0
"""
