"""Refusals cannot flood the audit log, on the real servers: the
watchlist service as a subprocess on mTLS (Kafka, Redis, Milvus, Triton of the local
stack), its audit chain on a topic of its own.

A caller holding any client certificate (a curious officer's) sends 1,000 calls with a
bad bearer token in one burst. Every call is refused UNAUTHENTICATED, but the audit
topic gains only the per-peer immediate records plus one aggregate carrying the count;
and a legitimate audited action (CreateWatchlist) made during the burst takes about as
long as without it."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from lfr.v1 import audit_pb2, watchlist_pb2, watchlist_pb2_grpc

from topics_support import private_topics_blocking
from watchlist_support import watchlist_service
from services.common.audit import WATCHLIST_CREATE, read_records
from services.common.grpc_client import ClientTls, aio_channel
from services.common.refusals import API_REFUSED
from services.common.settings import GrpcRefusalSettings, KafkaSettings
from services.common.topics import AUDIT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

GRPC_PORT, METRICS_PORT = 51077, 10127
BOOTSTRAP = "127.0.0.1:9092"
INTERVAL_S = 4.0
BURST = 1000


@pytest.fixture(scope="module")
def audit_topic() -> Iterator[str]:
    name = f"lfr.itest.flood{uuid.uuid4().hex[:8]}.audit.v1"
    with private_topics_blocking([AUDIT.model_copy(update={"name": name})], BOOTSTRAP):
        yield name


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, audit_topic: str) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("flood") / "watchlist.log"
    with watchlist_service(GRPC_PORT, METRICS_PORT, log, {
            "LFR_WATCHLIST__AUDIT_TOPIC": audit_topic, "LFR_GRPC__AUTH__AUDIT_TOPIC": audit_topic,
            "LFR_GRPC__REFUSALS__INTERVAL_S": str(INTERVAL_S)}, no_tracebacks=True):
        yield log


def _create_request(tag: str) -> watchlist_pb2.CreateWatchlistRequest:
    now = time.time_ns()
    return watchlist_pb2.CreateWatchlistRequest(
        name="flood test", deployment_id=f"itest-flood-{tag}", authorisation_ref=f"FLOOD-{tag}",
        authorising_officer="Supt Test", purpose="integration test", criteria="test subjects",
        valid_from_unix_ns=now - 10**9, valid_until_unix_ns=now + 3600 * 10**9)


async def _records(topic: str) -> list[audit_pb2.AuditRecord]:
    return [audit_pb2.AuditRecord.FromString(v)
            async for _, v in read_records(KafkaSettings(bootstrap=BOOTSTRAP), topic) if v]


async def test_a_burst_of_bad_tokens_leaves_a_handful_of_records_and_audited_actions_keep_their_latency(
        service: Path, audit_topic: str) -> None:
    target = f"127.0.0.1:{GRPC_PORT}"
    manager = aio_channel(target, tls=ClientTls.for_identity("manager"))
    rogue = aio_channel(target, tls=ClientTls.for_identity("officer-1"))
    try:
        legit = watchlist_pb2_grpc.WatchlistServiceStub(manager)
        bad = watchlist_pb2_grpc.WatchlistServiceStub(rogue)

        async def create(tag: str) -> float:
            t0 = time.perf_counter()
            await legit.CreateWatchlist(_create_request(tag), timeout=30)
            return time.perf_counter() - t0

        await create("warmup")
        baseline = statistics.median([await create(f"base{i}") for i in range(3)])

        refused: list[grpc.StatusCode] = []

        async def bad_call(i: int) -> None:
            try:
                await bad.ListWatchlists(watchlist_pb2.ListWatchlistsRequest(page_size=1), timeout=60,
                                         metadata=(("authorization", f"Bearer lfr1.forged{i}.x"),))
            except grpc.aio.AioRpcError as e:
                refused.append(e.code())

        burst = asyncio.gather(*(bad_call(i) for i in range(BURST)))
        while len(refused) < 50:  # the burst is under way
            await asyncio.sleep(0.01)
        during = [await create(f"burst{i}") for i in range(3)]
        await burst
        assert refused == [grpc.StatusCode.UNAUTHENTICATED] * BURST
        assert max(during) < 3 * baseline + 1.0, (baseline, during)

        # the aggregate is written in the background within a window or two
        deadline = time.monotonic() + 4 * INTERVAL_S + 20
        while True:
            records = await _records(audit_topic)
            api_refused = [r for r in records if r.action == API_REFUSED]
            counted = sum(int(r.details.get("count", "1")) for r in api_refused)
            if counted >= BURST or time.monotonic() > deadline:
                break
            await asyncio.sleep(1)
    finally:
        await manager.close()
        await rogue.close()

    immediate = GrpcRefusalSettings().immediate_per_peer
    assert counted == BURST, [dict(r.details) for r in api_refused]
    assert len(api_refused) <= 2 * immediate + 2, len(api_refused)  # a burst may straddle two windows
    aggregates = [r for r in api_refused if r.details.get("aggregated") == "true"]
    assert aggregates and all(r.details["peer"] == "cert:officer-1" and r.details["code"] == "UNAUTHENTICATED"
                              and r.details["methods"] == "/lfr.v1.WatchlistService/ListWatchlists"
                              for r in aggregates)
    assert max(int(r.details["count"]) for r in aggregates) >= BURST - 2 * immediate
    assert sum(r.action == WATCHLIST_CREATE for r in records) == 7
