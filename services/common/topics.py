"""Every Kafka topic of the platform, declared once, as data.

``TOPICS`` is the single source of truth for names, partitions and topic
configs; ``ensure_topics`` makes a broker match it (creates what is missing,
ALTERs the config of what exists, grows partitions) and is idempotent.

Privacy: frames and faces of non-matching people must not linger in the
broker, so those topics keep data for at most 60 s, roll a segment every 10 s
(only closed segments can be deleted), stamp records with the broker's clock
(a producer's future timestamp cannot extend retention) and remove deleted
segment files after 1 s. The audit topic is kept forever and never compacted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger("lfr.topics")

SECOND_MS = 1000
HOUR_MS = 3600 * SECOND_MS
DAY_MS = 24 * HOUR_MS

# Kafka error codes ensure_topics tolerates
_NO_ERROR = 0
_TOPIC_ALREADY_EXISTS = 36


class TopicSpec(BaseModel):
    """One topic: its name, partitions and the topic-level configs it must have."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^lfr\.[a-z]+(\.[a-z]+)*\.v[0-9]+$", description="topic name, versioned")
    partitions: int = Field(ge=1, le=256, description="partition count (only ever grown)")
    replication_factor: int = Field(default=1, ge=1, le=5, description="1 on the local single-node stack")
    retention_ms: int = Field(ge=-1, description="retention.ms; -1 keeps records forever")
    segment_ms: int = Field(ge=1000, description="segment.ms; retention only deletes closed segments")
    cleanup_policy: Literal["delete", "compact", "compact,delete"] = Field(
        default="delete", description="cleanup.policy")
    max_message_bytes: int = Field(default=1_048_588, ge=1024, le=64 * 1024 * 1024,
                                   description="max.message.bytes (record batch size limit)")
    extra: dict[str, str] = Field(default_factory=dict, description="any other topic-level config")
    description: str = Field(default="", description="what flows on it")

    def configs(self) -> dict[str, str]:
        """The topic-level configs as Kafka expects them (all strings)."""
        out = {
            "retention.ms": str(self.retention_ms),
            "segment.ms": str(self.segment_ms),
            "cleanup.policy": self.cleanup_policy,
            "max.message.bytes": str(self.max_message_bytes),
        }
        out.update(self.extra)
        return out


# short-lived biometric data: deleted by the broker within ~75 s of arrival
_EPHEMERAL = {
    "message.timestamp.type": "LogAppendTime",
    "file.delete.delay.ms": "1000",
    "retention.bytes": "-1",
}

FRAMES = TopicSpec(
    name="lfr.frames.v1", partitions=6, retention_ms=60 * SECOND_MS, segment_ms=10 * SECOND_MS,
    max_message_bytes=4 * 1024 * 1024, extra=_EPHEMERAL,
    description="camera frames (JPEG), keyed by camera id")
FACES = TopicSpec(
    name="lfr.faces.v1", partitions=6, retention_ms=60 * SECOND_MS, segment_ms=10 * SECOND_MS,
    max_message_bytes=2 * 1024 * 1024, extra=_EPHEMERAL,
    description="face observations with embeddings, keyed by camera id")
MATCHES = TopicSpec(
    name="lfr.matches.v1", partitions=3, retention_ms=DAY_MS, segment_ms=HOUR_MS,
    description="match candidates against the active watchlist")
ALERTS = TopicSpec(
    name="lfr.alerts.v1", partitions=3, retention_ms=DAY_MS, segment_ms=HOUR_MS,
    description="alerts routed to available officers for adjudication")
DLQ = TopicSpec(
    name="lfr.dlq.v1", partitions=1, retention_ms=7 * DAY_MS, segment_ms=DAY_MS,
    max_message_bytes=4 * 1024 * 1024,
    description="rejected input with a reason (dead letters)")
AUDIT = TopicSpec(
    name="lfr.audit.v1", partitions=1, retention_ms=-1, segment_ms=7 * DAY_MS,
    extra={"retention.bytes": "-1"},
    description="tamper-evident audit chain: one partition (total order), kept forever, never compacted")

TOPICS: tuple[TopicSpec, ...] = (FRAMES, FACES, MATCHES, ALERTS, DLQ, AUDIT)


def private_specs(kind: str, tag: str, roles: Sequence[str] | None = None,
                  max_partitions: int | None = None) -> dict[str, TopicSpec]:
    """A test's or a benchmark's own copies of the platform's topics (their configs, at most ``max_partitions``
    partitions each), named ``lfr.<kind>.<tag>.<role>.v1`` so that no other run reads them; by role (``frames``,
    ``faces``, ... as in ``lfr.frames.v1``), only ``roles`` when given. Never validated as names: a tag may
    hold digits."""
    by_role = {spec.name.split(".")[1]: spec for spec in TOPICS}
    out: dict[str, TopicSpec] = {}
    for role in roles if roles is not None else by_role:
        spec = by_role[role]
        partitions = spec.partitions if max_partitions is None else min(spec.partitions, max_partitions)
        out[role] = spec.model_copy(update={"name": f"lfr.{kind}.{tag}.{role}.v1", "partitions": partitions})
    return out


class TopicError(RuntimeError):
    """The broker refused to create or configure a declared topic."""


def _check(errors: list[tuple[str, int, str | None]], what: str, ok: tuple[int, ...] = (_NO_ERROR,)) -> None:
    bad = [(name, code, msg) for name, code, msg in errors if code not in ok]
    if bad:
        raise TopicError(f"{what} failed: " + "; ".join(f"{n}: error {c} {m or ''}".strip() for n, c, m in bad))


async def ensure_topics(bootstrap: str, specs: tuple[TopicSpec, ...] = TOPICS,
                        timeout_s: float = 30.0) -> dict[str, list[str]]:
    """Create missing topics and bring existing ones to the declared configs.

    Returns the topic names per outcome: ``created``, ``altered``, ``unchanged``.
    Raises :class:`TopicError` when the broker refuses, ``aiokafka`` errors when
    it cannot be reached.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    report: dict[str, list[str]] = {"created": [], "altered": [], "unchanged": []}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000),
                                client_id="lfr-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            resp = await admin.create_topics(
                [NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs()) for s in missing])
            _check([(e[0], e[1], e[2] if len(e) > 2 else None) for e in resp.topic_errors], "create topics",
                   ok=(_NO_ERROR, _TOPIC_ALREADY_EXISTS))
            report["created"] = [s.name for s in missing]
            log.info("created topics %s", report["created"])
        present = [s for s in specs if s.name in existing]
        if present:
            await _align(admin, present, report)
        await _wait_leaders(admin, [s.name for s in specs], timeout_s)
    finally:
        await admin.close()
    return report


async def _align(admin: AIOKafkaAdminClient, specs: list[TopicSpec], report: dict[str, list[str]]) -> None:
    """ALTER configs and grow partitions of topics that already exist."""
    from aiokafka.admin import NewPartitions
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    described = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs])
    current: dict[str, dict[str, str]] = {}
    for resp in described:
        for err, msg, _rtype, rname, entries in resp.resources:
            _check([(rname, err, msg)], "describe configs")
            current[rname] = {e[0]: e[1] for e in entries}
    to_alter = [s for s in specs
                if any(current.get(s.name, {}).get(k) != v for k, v in s.configs().items())]
    if to_alter:
        # AlterConfigs (non-incremental) sets exactly the declared overrides and drops any others
        for resp in await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, s.name, configs=s.configs()) for s in to_alter]):
            _check([(r[3], r[0], r[1]) for r in resp.resources], "alter configs")
        log.info("altered topic configs %s", [s.name for s in to_alter])
    counts = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics([s.name for s in specs])}
    grow = {s.name: NewPartitions(s.partitions) for s in specs if counts.get(s.name, s.partitions) < s.partitions}
    for s in specs:
        if counts.get(s.name, s.partitions) > s.partitions:
            log.warning("topic %s has %d partitions, declared %d (Kafka cannot shrink)",
                        s.name, counts[s.name], s.partitions)
    if grow:
        resp = await admin.create_partitions(grow)
        _check([(r[0], r[1], r[2]) for r in resp.topic_errors], "create partitions")
        log.info("grew partitions of %s", sorted(grow))
    altered = {s.name for s in to_alter} | set(grow)
    report["altered"] = sorted(altered)
    report["unchanged"] = [s.name for s in specs if s.name not in altered]


async def _wait_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float) -> None:
    """Topic creation is asynchronous: wait until every partition has a leader."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        topics = await admin.describe_topics(names)
        ready = all(t["error_code"] == _NO_ERROR and t["partitions"]
                    and all(p["leader"] >= 0 for p in t["partitions"]) for t in topics)
        if ready and len(topics) == len(names):
            return
        if loop.time() > deadline:
            raise TopicError(f"topics {names} have no leaders after {timeout_s:.0f} s")
        await asyncio.sleep(0.2)


async def delete_topics(bootstrap: str, names: Sequence[str], *, wait_s: float = 0.0,
                        request_timeout_s: float = 10.0) -> list[str]:
    """Delete the named topics (tests and benchmarks clean up their private topics with it).

    With ``wait_s`` 0 it only asks the broker (a name that does not exist is
    ignored). With ``wait_s`` > 0 it deletes those that exist and waits up to
    ``wait_s`` for the broker to remove them (deletion is asynchronous).
    Returns the names still present: empty when all are gone or when it did
    not wait.
    """
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(request_timeout_s * 1000))
    await admin.start()
    try:
        if wait_s <= 0:
            await admin.delete_topics(list(names))
            return []
        existing = set(await admin.list_topics())
        if gone := [n for n in names if n in existing]:
            await admin.delete_topics(gone)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            existing = set(await admin.list_topics())
            left = [n for n in names if n in existing]
            if not left or loop.time() > deadline:
                return left
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
