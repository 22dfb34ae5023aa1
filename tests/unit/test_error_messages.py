"""gRPC errors never echo raw exception text to callers: the watchlist
servicer on an in-process gRPC server, its core made to fail the ways a dependency fails
(an unexpected client error, Triton, the audit log), and the audit API (Tail, Verify) with
its reads failing. The caller gets UNAVAILABLE with a
fixed message that says what to do and names a reference; the exception's text (paths,
hosts, collection names) is only in the service log, under the same reference."""

from __future__ import annotations

import logging
import re
from typing import Any

import grpc
import pytest
from lfr.v1 import watchlist_pb2, watchlist_pb2_grpc

from services.common.audit import AuditError
from services.common.errors import log_failure
from services.common.grpc_server import GrpcServer, allow_all
from services.common.settings import GrpcServerSettings
from services.common.triton_client import TritonError
from services.watchlist.server import WatchlistServicer

SECRET = "milvus at 10.20.30.40:19530 refused collection lfr_watchlists_prod (/srv/keys/audit.key)"


class FailingCore:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def list(self, request: Any, deadline: Any) -> Any:
        raise self.error


@pytest.mark.parametrize("error, says", [
    (RuntimeError(SECRET), "the watchlist service could not complete the call"),
    (TritonError(SECRET), "face models unavailable"),
    (AuditError(SECRET), "audit log unavailable, action not taken"),
])
async def test_the_caller_gets_a_fixed_message_and_the_log_the_detail(
        error: Exception, says: str, caplog: pytest.LogCaptureFixture) -> None:
    server = GrpcServer(GrpcServerSettings().model_copy(update={"port": 0}), required_roles=allow_all)
    server.add(watchlist_pb2_grpc.add_WatchlistServiceServicer_to_server,
               WatchlistServicer(lambda: FailingCore(error)), "lfr.v1.WatchlistService")  # type: ignore[arg-type,return-value]
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            with caplog.at_level(logging.ERROR), pytest.raises(grpc.aio.AioRpcError) as err:
                await watchlist_pb2_grpc.WatchlistServiceStub(channel).ListWatchlists(
                    watchlist_pb2.ListWatchlistsRequest(), timeout=10)
    finally:
        await server.stop(0)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    message = err.value.details() or ""
    assert message.startswith(says) and "retry later" in message, message
    for leak in ("10.20.30.40", "lfr_watchlists_prod", "/srv/keys", type(error).__name__):
        assert leak not in message, message
    reference = re.search(r"reference ([0-9a-f]{12})", message)
    assert reference, message
    logged = [r for r in caplog.records if getattr(r, "reference", None) == reference.group(1)]
    assert logged and SECRET in logged[0].error  # type: ignore[attr-defined]


def test_log_failure_returns_a_fresh_reference(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test")
    with caplog.at_level(logging.ERROR):
        refs = {log_failure(log, "failed", ValueError("x")) for _ in range(3)}
    assert len(refs) == 3 and all(re.fullmatch(r"[0-9a-f]{12}", r) for r in refs)
    assert [r.error for r in caplog.records] == ["ValueError: x"] * 3  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["Tail", "Verify"])
async def test_the_audit_api_answers_a_fixed_message(method: str, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    from lfr.v1 import audit_pb2, audit_pb2_grpc

    from services.common.settings import AuditSettings, KafkaSettings
    from services.watchlist import audit_service

    async def fail(*args: Any, **kwargs: Any) -> Any:
        raise AuditError(SECRET)

    monkeypatch.setattr(audit_service, "tail", fail)
    monkeypatch.setattr(audit_service, "verify_topic", fail)
    server = GrpcServer(GrpcServerSettings().model_copy(update={"port": 0}), required_roles=allow_all)
    server.add(audit_pb2_grpc.add_AuditServiceServicer_to_server,
               audit_service.AuditServicer(KafkaSettings(), "t", AuditSettings()), audit_service.SERVICE_NAME)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = audit_pb2_grpc.AuditServiceStub(channel)
            call = stub.Tail(audit_pb2.TailAuditRequest(limit=1), timeout=10) if method == "Tail" else \
                stub.Verify(audit_pb2.VerifyAuditRequest(), timeout=10)
            with caplog.at_level(logging.ERROR), pytest.raises(grpc.aio.AioRpcError) as err:
                await call
    finally:
        await server.stop(0)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    message = err.value.details() or ""
    assert message.startswith("audit log unavailable: retry later") and "lfr_watchlists_prod" not in message
    reference = re.search(r"reference ([0-9a-f]{12})", message)
    assert reference and any(getattr(r, "reference", None) == reference.group(1) and SECRET in r.error  # type: ignore[attr-defined]
                             for r in caplog.records)
