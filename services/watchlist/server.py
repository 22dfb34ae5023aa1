"""gRPC plumbing of the watchlist service: the servicer (status codes, deadlines,
the caller's identity), the reaper and the audit-chain check, and ``setup``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from lfr.v1 import watchlist_pb2_grpc

from services.common import clients
from services.common.audit import AuditError, AuditWriter, VerifyOptions, verify_topic
from services.common.errors import log_failure
from services.common.grpc_server import current_identity
from services.common.service import ServiceContext
from services.common.triton_client import TritonClient, TritonClientSettings, TritonError
from services.face.pipeline import face_models
from services.watchlist.config import WatchlistSettings
from services.watchlist.service import Refusal, WatchlistCore, WatchlistLocks
from services.watchlist.store import Store

log = logging.getLogger(__name__)
SERVICE_NAME = "lfr.v1.WatchlistService"


def _deadline(context: Any) -> float | None:
    remaining = context.time_remaining()
    return None if remaining is None else asyncio.get_running_loop().time() + remaining


async def _answer(context: Any, call: Callable[[], Awaitable[Any]]) -> Any:
    """Run a handler; map what can go wrong to a status code with a clear message."""
    try:
        return await call()
    except Refusal as e:
        await context.abort(e.code, e.message)
    except TimeoutError:
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded before the work was done")
    # the detail goes to the log under a reference; the caller gets a fixed message naming it, never the
    # exception's text (paths, hosts, key names, queries)
    except TritonError as e:
        ref = log_failure(log, "face models unavailable", e)
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"face models unavailable, nothing enrolled: retry later; "
                                                         f"if it persists, give the operator reference {ref}")
    except AuditError as e:
        ref = log_failure(log, "audit log unavailable", e)
        await context.abort(grpc.StatusCode.UNAVAILABLE, f"audit log unavailable, action not taken: retry later; "
                                                         f"if it persists, give the operator reference {ref}")
    except Exception as e:  # Milvus/Kafka client errors have many types
        if type(e).__name__ in ("AbortError", "InternalError", "UsageError"):  # grpc's own control flow
            raise
        ref = log_failure(log, "call failed", e, traceback=True)
        await context.abort(grpc.StatusCode.UNAVAILABLE,
                            "the watchlist service could not complete the call: "
                            f"retry later; if it persists, give the operator reference {ref}")


class WatchlistServicer(watchlist_pb2_grpc.WatchlistServiceServicer):
    def __init__(self, core: Callable[[], WatchlistCore | None]) -> None:
        self._core = core

    def _ready(self) -> WatchlistCore:
        core = self._core()
        if core is None:
            raise Refusal(grpc.StatusCode.UNAVAILABLE, "watchlist service is still connecting to its dependencies")
        return core

    async def CreateWatchlist(self, request: Any, context: Any) -> Any:
        return await _answer(context, lambda: self._ready().create(
            request, current_identity.get().principal, _deadline(context)))

    async def EnrolSubject(self, request: Any, context: Any) -> Any:
        return await _answer(context, lambda: self._ready().enrol(
            request, current_identity.get().principal, _deadline(context)))

    async def RemoveSubject(self, request: Any, context: Any) -> Any:
        return await _answer(context, lambda: self._ready().remove(
            request, current_identity.get().principal, _deadline(context)))

    async def ListWatchlists(self, request: Any, context: Any) -> Any:
        return await _answer(context, lambda: self._ready().list(request, _deadline(context)))

    async def GetWatchlist(self, request: Any, context: Any) -> Any:
        return await _answer(context, lambda: self._ready().get(request, _deadline(context)))

    async def CloseWatchlist(self, request: Any, context: Any) -> Any:
        return await _answer(context, lambda: self._ready().close(
            request, current_identity.get().principal, _deadline(context)))

    async def BulkImport(self, request_iterator: Any, context: Any) -> Any:
        return await _answer(context, lambda: self._ready().bulk_import(
            request_iterator, current_identity.get().principal, _deadline(context)))

    async def ReembedWatchlist(self, request: Any, context: Any) -> Any:
        return await _answer(context, lambda: self._ready().reembed(
            request, current_identity.get().principal, _deadline(context)))


class WatchlistRuntime:
    """Connections (Milvus, Triton, Kafka + Redis for the audit writer) and background tasks."""

    def __init__(self, ctx: ServiceContext, settings: WatchlistSettings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.core: WatchlistCore | None = None
        self.milvus: Any = None
        self.redis: Any = None
        self.triton: TritonClient | None = None
        self.audit: AuditWriter | None = None
        audit_counter = ctx.metrics.counter("audit_records_total", "audit records appended", ("action",))
        self.chain_ok = ctx.metrics.gauge("audit_chain_ok", "1 when the last audit chain verification passed")
        self._on_record = lambda action: audit_counter.labels(action).inc()
        limit_counter = ctx.metrics.counter(
            "enrolment_images_refused_total", "enrolment requests refused by an image limit", ("reason",))
        self._on_limit = lambda reason: limit_counter.labels(reason).inc()
        self.stranded = ctx.metrics.gauge(
            "watchlists_on_other_embedder", "open watchlists whose faces were made with another embedder than the "
                                            "active one (they cannot match until moved with ReembedWatchlist)")
        ctx.add_dependency("milvus", self._check_milvus)
        ctx.add_dependency("triton", self._check_triton)
        ctx.add_dependency("kafka", self._check_kafka)
        ctx.add_dependency("redis", self._check_redis)

    async def _check_milvus(self) -> None:
        if self.milvus is None:
            raise ConnectionError("not connected")
        await clients.check_milvus(self.milvus, self.settings.milvus.timeout_s)

    async def _check_triton(self) -> None:
        if self.triton is None or not await self.triton.server_ready():
            raise ConnectionError("triton not ready")

    async def _check_kafka(self) -> None:
        if self.audit is None or self.audit.producer is None:
            raise ConnectionError("not connected")
        await clients.check_kafka(self.audit.producer)

    async def _check_redis(self) -> None:
        if self.redis is None:
            raise ConnectionError("not connected")
        await clients.check_redis(self.redis)

    async def _connect(self) -> bool:
        from services.face.pipeline import FacePipeline

        s = self.settings
        if self.redis is None:
            self.redis = await clients.connect_redis(s.redis)
        if self.milvus is None:
            self.milvus = await clients.connect_milvus(s.milvus)
        if self.triton is None:
            self.triton = TritonClient(TritonClientSettings.from_section(s.triton))
        await self.triton.wait_ready(list(face_models(s.face)), timeout_s=s.triton.timeout_s)
        if self.audit is None:
            self.audit = AuditWriter.from_settings(s.kafka, "watchlist", s.audit, topic=s.watchlist.audit_topic,
                                                   redis=self.redis, on_record=self._on_record, instance=s.instance)
        await self.audit.start()
        store = Store(self.milvus, s.milvus.timeout_s, s.watchlist.local_engine_file, s.watchlist.compact_wait_s,
                      s.face.embedder)
        await asyncio.to_thread(store.ensure)
        locks = WatchlistLocks(self.redis, s.watchlist.lock_lease_s, s.watchlist.lock_wait_s)
        self.core = WatchlistCore(s, store, FacePipeline(self.triton, s.face), self.audit, self._on_limit, locks)
        await self._report_other_embedders(self.core, warn=True)
        return True

    async def _report_other_embedders(self, core: WatchlistCore, warn: bool) -> None:
        """Open watchlists built with another embedder than the active one cannot match: lfr_watchlists_on_
        other_embedder counts them (refreshed each reaper round while other embedders' collections exist) and,
        at start, a warning names them with the way out."""
        stranded = await core.on_other_embedders()
        self.stranded.set(sum(len(ids) for ids in stranded.values()))
        for embedder, ids in stranded.items() if warn else ():
            log.warning("open watchlists were built with another embedder and cannot match until moved: "
                        "lfr watchlist reembed ID --reason ...", extra={
                            "embedder": embedder, "active_embedder": core.store.embedder, "watchlists": ids[:20],
                            "count": len(ids)})

    async def run(self) -> None:
        try:
            if await self.ctx.connect("watchlist dependencies", self._connect) is None:
                return
            log.info("connected", extra={"service": self.ctx.name})
            self.ctx.refresh_health()
            await asyncio.gather(self._reaper(), self._verifier())
        finally:
            await self.close()

    async def _sleep(self, seconds: float) -> bool:
        """Wait; False once stop is set."""
        try:
            await asyncio.wait_for(self.ctx.stop.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    async def _reaper(self) -> None:
        interval = self.settings.watchlist.reaper_interval_s
        while True:
            assert self.core is not None
            try:
                n = await self.core.reap_once()
                if n:
                    log.info("reaper destroyed expired watchlists", extra={"count": n})
                if self.core.store.others:
                    await self._report_other_embedders(self.core, warn=False)
            except Exception as e:  # Milvus/Kafka down: try again next round
                log.warning("reaper round failed", extra={"error": f"{type(e).__name__}: {e}"})
            if not await self._sleep(interval):
                return

    async def _verifier(self) -> None:
        interval = self.settings.watchlist.audit_verify_interval_s
        if interval <= 0:
            return
        # an empty log without checkpoints is a new one here (every writer checkpoints its first append, so a
        # log emptied later still fails); `lfr audit verify` and the Verify RPC say so only when told
        options = VerifyOptions.from_settings(self.settings.audit, allow_empty=True)
        while True:
            try:
                result = await verify_topic(self.settings.kafka, self.settings.watchlist.audit_topic, options)
                self.chain_ok.set(1 if result.ok else 0)
                if not result.ok:
                    log.error("audit chain broken", extra={"detail": result.summary()})
            except AuditError as e:  # no keyring, no topic: nothing verified is not OK
                self.chain_ok.set(0)
                log.error("audit chain cannot be verified", extra={"error": str(e)})
            except Exception as e:  # Kafka down: keep the last value
                log.warning("audit verification failed to run", extra={"error": f"{type(e).__name__}: {e}"})
            if not await self._sleep(interval):
                return

    async def close(self) -> None:
        self.core = None
        if self.audit is not None:
            await self.audit.close()
        if self.triton is not None:
            await self.triton.close()
        if self.redis is not None:
            await self.redis.aclose()
        if self.milvus is not None:
            self.milvus.close()


async def setup(ctx: ServiceContext, settings: WatchlistSettings) -> None:
    runtime = WatchlistRuntime(ctx, settings)
    ctx.grpc.add(watchlist_pb2_grpc.add_WatchlistServiceServicer_to_server,
                 WatchlistServicer(lambda: runtime.core), SERVICE_NAME)
    # the audit log read and verified over gRPC (operator console, auditors' tools)
    from lfr.v1 import audit_pb2_grpc

    from services.watchlist.audit_service import SERVICE_NAME as AUDIT_SERVICE
    from services.watchlist.audit_service import AuditServicer

    ctx.grpc.add(audit_pb2_grpc.add_AuditServiceServicer_to_server,
                 AuditServicer(settings.kafka, settings.watchlist.audit_topic, settings.audit,
                               lambda ok: runtime.chain_ok.set(1 if ok else 0)), AUDIT_SERVICE)
    ctx.spawn(runtime.run(), "watchlist")
