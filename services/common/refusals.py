"""Every refused gRPC call is counted (``lfr_grpc_refused_total{method,code}``) and,
for PERMISSION_DENIED and UNAUTHENTICATED, appended to the audit chain
(action ``api.refused``: who, which method, why; never request contents).

The audit writer starts on the first refusal and takes the shared Redis audit
lock (several services append to one chain). An append that fails is logged as
an error; the refusal stands either way.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from services.common.settings import KafkaSettings, RedisSettings

log = logging.getLogger(__name__)

API_REFUSED = "api.refused"
AUDITED_CODES = frozenset({"PERMISSION_DENIED", "UNAUTHENTICATED"})
AUDIT_TIMEOUT_S = 10.0


class RefusalRecorder:
    def __init__(self, service: str, kafka: KafkaSettings, redis: RedisSettings, topic: str, metrics: Any) -> None:
        self.service = service
        self.kafka = kafka
        self.redis_settings = redis
        self.topic = topic
        self.counter = metrics.counter("grpc_refused_total", "gRPC calls refused by the interceptor",
                                       ("method", "code"))
        self._writer: Any = None
        self._redis: Any = None
        self._lock = asyncio.Lock()

    async def _start(self) -> Any:
        async with self._lock:
            if self._writer is None:
                from services.common import clients
                from services.common.audit import AuditWriter

                self._redis = await clients.connect_redis(self.redis_settings)
                writer = AuditWriter(self.kafka, self.service, topic=self.topic, redis=self._redis)
                await writer.start()
                self._writer = writer
            return self._writer

    async def __call__(self, method: str, identity: Any, code: str, reason: str) -> None:
        self.counter.labels(method, code).inc()
        log.warning("grpc call refused", extra={"method": method, "principal": identity.principal,
                                                 "via": identity.via, "code": code, "reason": reason[:200]})
        if code not in AUDITED_CODES:
            return
        async def append() -> None:
            writer = await self._start()
            await writer.record(API_REFUSED, actor=identity.principal, details={
                "method": method[:200], "code": code, "reason": reason[:400], "mechanism": identity.mechanism,
                "via": identity.via, "roles": ",".join(sorted(identity.roles))[:200]})

        await asyncio.wait_for(append(), timeout=AUDIT_TIMEOUT_S)

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
