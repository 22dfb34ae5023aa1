"""``AuditService`` (Tail, Verify): the audit log read and verified over gRPC.

Served by the watchlist service (which owns the audit reader and re-verifies the
chain on a timer), so that the operator console and auditors' tools read the
audit through an API like every other system, never from Kafka directly.
Records hold ids, hashes and decisions only (see services.common.audit).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from lfr.v1 import audit_pb2, audit_pb2_grpc

from services.common.audit import AuditError, VerifyOptions, read_records, verify_topic
from services.common.errors import log_failure
from services.common.kafka import client_kwargs
from services.common.settings import AuditSettings, KafkaSettings

log = logging.getLogger(__name__)
SERVICE_NAME = "lfr.v1.AuditService"
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
FILTER_SCAN = 5000  # records scanned back from the end when a filter is given


async def end_offset(kafka: KafkaSettings, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    probe = AIOKafkaConsumer(**client_kwargs(kafka, "audit-api"), enable_auto_commit=False, group_id=None)
    await probe.start()
    try:
        if topic not in await probe.topics():
            raise AuditError(f"topic {topic} does not exist")
        tp = TopicPartition(topic, 0)
        return int((await probe.end_offsets([tp]))[tp])
    finally:
        await probe.stop()


def _matches(rec: audit_pb2.AuditRecord, req: audit_pb2.TailAuditRequest) -> bool:
    if req.action_prefix and not rec.action.startswith(req.action_prefix):
        return False
    return not req.deployment_id or rec.deployment_id == req.deployment_id


async def tail(kafka: KafkaSettings, topic: str, req: audit_pb2.TailAuditRequest) -> audit_pb2.TailAuditResponse:
    limit = min(req.limit or DEFAULT_LIMIT, MAX_LIMIT)
    end = await end_offset(kafka, topic)
    filtered = bool(req.action_prefix or req.deployment_id)
    start = max(0, end - (max(limit, FILTER_SCAN) if filtered else limit))
    entries: list[audit_pb2.AuditEntry] = []
    if end > start:
        async for offset, value in read_records(kafka, topic, start=start):
            if offset >= end:
                break
            try:
                rec = audit_pb2.AuditRecord.FromString(value or b"")
            except Exception:  # a damaged record: Verify reports it; Tail skips it
                continue
            if _matches(rec, req):
                entries.append(audit_pb2.AuditEntry(offset=offset, record=rec))
    return audit_pb2.TailAuditResponse(entries=entries[-limit:], end_offset=end)


def unavailable(reference: str) -> str:
    """What a caller reads when the audit log cannot be read (the cause is in the service log)."""
    return (f"audit log unavailable: retry later; if it persists, give the operator reference {reference} "
            f"(the service log names the cause)")


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    """``kafka`` and ``topic`` are the audit log's; ``audit`` says where the keyring and the checkpoints are
    (the same verification as ``lfr audit verify``); ``on_verified(ok)`` updates lfr_audit_chain_ok."""

    def __init__(self, kafka: KafkaSettings, topic: str, audit: AuditSettings,
                 on_verified: Callable[[bool], None] | None = None) -> None:
        self.kafka = kafka
        self.topic = topic
        self.audit = audit
        self.on_verified = on_verified
        self._verify_lock = asyncio.Lock()

    async def Tail(self, request: audit_pb2.TailAuditRequest, context: Any) -> audit_pb2.TailAuditResponse:  # noqa: N802
        try:
            return await tail(self.kafka, self.topic, request)
        except Exception as e:  # AuditError or a Kafka client error (many types): logged, never echoed
            if type(e).__name__ in ("AbortError", "InternalError", "UsageError"):
                raise
            await context.abort(grpc.StatusCode.UNAVAILABLE, unavailable(log_failure(log, "audit tail failed", e)))
        raise AssertionError("unreachable")

    async def Verify(self, request: audit_pb2.VerifyAuditRequest, context: Any) -> audit_pb2.VerifyAuditResponse:  # noqa: N802
        try:
            async with self._verify_lock:  # one full read at a time
                options = VerifyOptions.from_settings(self.audit, allow_empty=request.allow_empty)
                result = await verify_topic(self.kafka, self.topic, options)
        except Exception as e:  # AuditError or a Kafka client error (many types): logged, never echoed
            if type(e).__name__ in ("AbortError", "InternalError", "UsageError"):
                raise
            await context.abort(grpc.StatusCode.UNAVAILABLE, unavailable(log_failure(log, "audit verify failed", e)))
            raise AssertionError("unreachable") from e
        if self.on_verified is not None:
            self.on_verified(result.ok)
        return audit_pb2.VerifyAuditResponse(
            ok=result.ok, records=result.records,
            last_seq=-1 if result.last_seq is None else result.last_seq,
            broken_offset=-1 if result.broken_offset is None else result.broken_offset,
            broken_seq=-1 if result.broken_seq is None else result.broken_seq,
            reason=result.reason, summary=result.summary(), verified_unix_ns=time.time_ns())
