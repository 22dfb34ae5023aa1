"""Every refused gRPC call is counted (``lfr_grpc_refused_total{method,code}``) and,
for PERMISSION_DENIED and UNAUTHENTICATED, reaches the audit chain (action
``api.refused``: who, which method, why; never request contents) without
letting a caller flood it.

Per peer (the client certificate's CN, else the caller's address: whoever holds
the connection, whatever token it sends) and window (``grpc.refusals``):

- the first ``immediate_per_peer`` refusals are each appended at once, before
  the refusal is answered (details: method, code, reason, peer);
- the rest are only counted, and one record per peer and window (details:
  ``aggregated=true``, ``count``, ``first``/``last`` (unix seconds), ``methods``,
  ``code`` (the codes, comma-separated), ``reasons``, ``principals``) is appended
  by a background task at the window's end and at shutdown: never on the
  caller's path;
- at most ``max_peers`` peers are tracked; refusals from further peers share
  one aggregate (``peer=other``).

So a caller that loops on bad tokens costs a handful of records per window
instead of one audit-lock round trip per call. The audit writer starts on the
first audited refusal and takes the shared Redis audit lock (several services
append to one chain). An append that fails is logged as an error; the refusal
stands either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from services.common.audit import API_REFUSED
from services.common.settings import AuditSettings, GrpcRefusalSettings, KafkaSettings, RedisSettings

log = logging.getLogger(__name__)

AUDITED_CODES = frozenset({"PERMISSION_DENIED", "UNAUTHENTICATED"})
AUDIT_TIMEOUT_S = 10.0
OTHER_PEERS = "other"
MAX_NAMES = 16  # distinct methods / codes / reasons / principals kept per aggregate
MAX_NAME_CHARS = 120


@dataclasses.dataclass
class HeldRefusals:
    """The refusals of one peer (or of the overflow bucket) counted instead of written."""

    peer: str
    count: int = 0
    first: float = 0.0
    last: float = 0.0
    methods: set[str] = dataclasses.field(default_factory=set)
    codes: set[str] = dataclasses.field(default_factory=set)
    reasons: set[str] = dataclasses.field(default_factory=set)
    principals: set[str] = dataclasses.field(default_factory=set)

    def add(self, now: float, method: str, code: str, reason: str, principal: str) -> None:
        if not self.count:
            self.first = now
        self.count += 1
        self.last = now
        for names, value in ((self.methods, method), (self.codes, code), (self.reasons, reason),
                             (self.principals, principal)):
            if len(names) < MAX_NAMES:
                names.add(value[:MAX_NAME_CHARS])

    def details(self) -> dict[str, str]:
        def joined(names: set[str]) -> str:
            return ",".join(sorted(names))[:400]

        return {"aggregated": "true", "count": str(self.count), "peer": self.peer[:200],
                "first": f"{self.first:.3f}", "last": f"{self.last:.3f}", "methods": joined(self.methods),
                "code": joined(self.codes), "reasons": joined(self.reasons), "principals": joined(self.principals)}


class RefusalAggregator:
    """Decides, per peer and window, which refusals are written at once and which are counted.

    Pure bookkeeping (no I/O); memory is bounded by ``max_peers`` windows and aggregates
    plus the overflow bucket, each holding at most :data:`MAX_NAMES` names."""

    def __init__(self, settings: GrpcRefusalSettings, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._clock = clock
        self._wall = wall
        self._windows: dict[str, tuple[float, int]] = {}  # peer -> (window start, records written in it)
        self._held: dict[str, HeldRefusals] = {}
        self._other: HeldRefusals | None = None

    @property
    def tracked_peers(self) -> int:
        return len(self._windows)

    @property
    def held(self) -> int:
        """Refusals counted and not yet drained."""
        return sum(h.count for h in self._held.values()) + (self._other.count if self._other else 0)

    def admit(self, peer: str, method: str, code: str, reason: str, principal: str) -> bool:
        """True: write this refusal now. False: it was counted into the peer's aggregate."""
        now = self._clock()
        window = self._windows.get(peer)
        if window is None or now - window[0] >= self.settings.interval_s:
            if window is None and len(self._windows) >= self.settings.max_peers:
                self._forget_expired(now)
            if window is None and len(self._windows) >= self.settings.max_peers:
                if self._other is None:
                    self._other = HeldRefusals(OTHER_PEERS)
                self._other.add(self._wall(), method, code, reason, principal)
                return False
            window = (now, 0)
        start, written = window
        if written < self.settings.immediate_per_peer:
            self._windows[peer] = (start, written + 1)
            return True
        self._windows[peer] = window
        held = self._held.get(peer)
        if held is None:
            held = self._held[peer] = HeldRefusals(peer)
        held.add(self._wall(), method, code, reason, principal)
        return False

    def drain(self) -> list[HeldRefusals]:
        """Every aggregate held so far (the overflow bucket last); forgets them and expired windows."""
        out = [*self._held.values(), *([self._other] if self._other else [])]
        self._held, self._other = {}, None
        self._forget_expired(self._clock())
        return out

    def _forget_expired(self, now: float) -> None:
        self._windows = {p: w for p, w in self._windows.items()
                         if now - w[0] < self.settings.interval_s or p in self._held}


class RefusalRecorder:
    """The refusal hook of every service's gRPC server (``services/common/service.py``)."""

    def __init__(self, service: str, kafka: KafkaSettings, redis: RedisSettings, topic: str, metrics: Any,
                 settings: GrpcRefusalSettings | None = None, audit: AuditSettings | None = None,
                 instance: str | None = None) -> None:
        self.service = service
        self.audit_settings = audit or AuditSettings()  # the service's audit signing key and checkpoints
        self.instance = instance  # this replica's checkpoint file (default the host name)
        self.kafka = kafka
        self.redis_settings = redis
        self.topic = topic
        self.counter = metrics.counter("grpc_refused_total", "gRPC calls refused by the interceptor",
                                       ("method", "code"))
        self.aggregated = metrics.counter("grpc_refusals_aggregated_total",
                                          "audited refusals counted into a per-peer aggregate instead of "
                                          "written one by one", ())
        self.aggregator = RefusalAggregator(settings or GrpcRefusalSettings())
        self._writer: Any = None
        self._redis: Any = None
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

    async def _start(self) -> Any:
        async with self._lock:
            if self._writer is None:
                from services.common import clients
                from services.common.audit import AuditWriter

                self._redis = await clients.connect_redis(self.redis_settings)
                writer = AuditWriter.from_settings(self.kafka, self.service, self.audit_settings, topic=self.topic,
                                                   redis=self._redis, instance=self.instance)
                await writer.start()
                self._writer = writer
            return self._writer

    async def __call__(self, method: str, identity: Any, code: str, reason: str, peer: str = "") -> None:
        self.counter.labels(method, code).inc()
        peer = peer or f"principal:{identity.principal}"
        extra = {"method": method, "principal": identity.principal, "via": identity.via, "peer": peer, "code": code,
                 "reason": reason[:200]}
        if code not in AUDITED_CODES:
            log.warning("grpc call refused", extra=extra)
            return
        if not self.aggregator.admit(peer, method, code, reason, identity.principal):
            self.aggregated.inc()
            log.debug("grpc call refused (aggregated)", extra=extra)
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush_every_interval(), name="refusals-flush")
            return
        log.warning("grpc call refused", extra=extra)

        async def append() -> None:
            writer = await self._start()
            await writer.record(API_REFUSED, actor=identity.principal, details={
                "method": method[:200], "code": code, "reason": reason[:400], "mechanism": identity.mechanism,
                "via": identity.via, "roles": ",".join(sorted(identity.roles))[:200], "peer": peer[:200]})

        await asyncio.wait_for(append(), timeout=AUDIT_TIMEOUT_S)

    async def _flush_every_interval(self) -> None:
        """Writes the aggregates at each window's end; returns once a window held nothing, or at close."""
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=self.aggregator.settings.interval_s)
            if not await self.flush() or self._closing.is_set():
                return

    async def flush(self) -> int:
        """Append one record per held aggregate; returns how many were held. A failed append is
        logged with its count (the refusals themselves were answered long ago), and so is every
        aggregate after it, untried: the audit log is unreachable, and close must not wait on each."""
        held = self.aggregator.drain()
        failure = ""
        for h in held:
            actor = ",".join(sorted(h.principals))[:200] or "anonymous"
            try:
                if failure:
                    raise RuntimeError(f"not tried after {failure}")

                async def append(h: HeldRefusals = h, actor: str = actor) -> None:
                    writer = await self._start()
                    await writer.record(API_REFUSED, actor=actor, details=h.details())

                await asyncio.wait_for(append(), timeout=AUDIT_TIMEOUT_S)
            except Exception as e:  # say how many refusals went unrecorded
                failure = failure or f"{type(e).__name__}: {e}"
                log.error("aggregated refusals not audited", extra={"peer": h.peer, "count": h.count,
                                                                    "error": failure})
            else:
                log.warning("grpc calls refused (aggregated)", extra={
                    "peer": h.peer, "count": h.count, "principals": actor, "codes": ",".join(sorted(h.codes))})
        return len(held)

    async def close(self) -> None:
        """Stop the background flush, write what is still held, close the writer."""
        self._closing.set()
        if self._flusher is not None:
            await self._flusher
            self._flusher = None
        if self.aggregator.held:
            await self.flush()
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
