"""The refusal limiter/aggregator (services/common/refusals.py) with a fake clock, and the
recorder with a fake audit writer: per peer and window a few records at once, the rest
counted into one aggregate written in the background and at close; bounded memory."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.common.grpc_server import Identity
from services.common.metrics import MetricsFactory
from services.common.refusals import (
    API_REFUSED, MAX_NAMES, OTHER_PEERS, RefusalAggregator, RefusalRecorder,
)
from services.common.settings import GrpcRefusalSettings, GrpcServerSettings, KafkaSettings, RedisSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _aggregator(clock: Clock, **settings: Any) -> RefusalAggregator:
    return RefusalAggregator(GrpcRefusalSettings(**settings), clock=clock, wall=clock)


def test_a_peer_gets_its_immediate_records_then_is_counted() -> None:
    clock = Clock()
    agg = _aggregator(clock, interval_s=10, immediate_per_peer=3)
    admitted = [agg.admit("cert:x", "/m", "UNAUTHENTICATED", "invalid credentials", "anonymous")
                for _ in range(1000)]
    assert admitted[:3] == [True] * 3 and not any(admitted[3:])
    assert agg.held == 997
    # another peer has its own budget
    assert agg.admit("addr:ipv4:10.0.0.1", "/m", "PERMISSION_DENIED", "no role", "bob")
    held = agg.drain()
    assert [(h.peer, h.count) for h in held] == [("cert:x", 997)]
    details = held[0].details()
    assert details["count"] == "997" and details["aggregated"] == "true" and details["code"] == "UNAUTHENTICATED"
    assert details["methods"] == "/m" and details["principals"] == "anonymous"
    assert float(details["first"]) <= float(details["last"])
    assert agg.held == 0 and agg.drain() == []


def test_the_budget_renews_each_window() -> None:
    clock = Clock()
    agg = _aggregator(clock, interval_s=10, immediate_per_peer=2)
    assert [agg.admit("p", "/m", "PERMISSION_DENIED", "r", "a") for _ in range(3)] == [True, True, False]
    clock.now += 9.9
    assert not agg.admit("p", "/m", "PERMISSION_DENIED", "r", "a")
    clock.now += 0.2
    assert [agg.admit("p", "/m", "PERMISSION_DENIED", "r", "a") for _ in range(3)] == [True, True, False]
    assert [h.count for h in agg.drain()] == [3]


def test_zero_immediate_aggregates_everything() -> None:
    agg = _aggregator(Clock(), immediate_per_peer=0)
    assert not agg.admit("p", "/m", "PERMISSION_DENIED", "r", "a")
    assert agg.held == 1


def test_memory_is_bounded_peers_past_the_cap_share_one_bucket() -> None:
    clock = Clock()
    agg = _aggregator(clock, interval_s=10, immediate_per_peer=1, max_peers=5)
    for i in range(5):
        assert agg.admit(f"p{i}", "/m", "PERMISSION_DENIED", "r", f"user{i}")
    for i in range(5, 5000):
        assert not agg.admit(f"p{i}", f"/m{i}", "PERMISSION_DENIED", f"reason {i}", f"user{i}")
    assert agg.tracked_peers == 5
    held = agg.drain()
    assert [(h.peer, h.count) for h in held] == [(OTHER_PEERS, 4995)]
    assert len(held[0].methods) == MAX_NAMES and len(held[0].principals) == MAX_NAMES
    assert all(len(v) <= 512 for v in held[0].details().values())
    # windows expire: new peers are tracked again
    clock.now += 11
    assert agg.admit("p-new", "/m", "PERMISSION_DENIED", "r", "x")
    assert agg.tracked_peers == 1


def test_settings_have_bounds() -> None:
    from pydantic import ValidationError

    assert GrpcServerSettings().refusals == GrpcRefusalSettings()
    for bad in ({"interval_s": 0}, {"immediate_per_peer": -1}, {"max_peers": 0}, {"nope": 1}):
        with pytest.raises(ValidationError):
            GrpcRefusalSettings(**bad)


class FakeWriter:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, str]]] = []
        self.closed = False

    async def record(self, action: str, *, actor: str, details: dict[str, str]) -> None:
        self.records.append((action, actor, dict(details)))

    async def close(self) -> None:
        self.closed = True


def _recorder(**settings: Any) -> tuple[RefusalRecorder, FakeWriter]:
    recorder = RefusalRecorder("test", KafkaSettings(), RedisSettings(), "t", MetricsFactory("test"),
                               GrpcRefusalSettings(**settings))
    writer = FakeWriter()

    async def start() -> FakeWriter:
        recorder._writer = writer
        return writer

    recorder._start = start  # type: ignore[method-assign]
    return recorder, writer


ANON = Identity(principal="anonymous", mechanism="anonymous")


async def test_a_burst_leaves_the_immediate_records_and_one_aggregate_written_in_the_background() -> None:
    recorder, writer = _recorder(interval_s=0.3, immediate_per_peer=2)
    await asyncio.gather(*(recorder("/lfr.v1.X/Y", ANON, "UNAUTHENTICATED", "invalid credentials", "cert:rogue")
                           for _ in range(1000)))
    assert len(writer.records) == 2  # nothing else on the callers' path
    assert all("aggregated" not in d and d["peer"] == "cert:rogue" for _, _, d in writer.records)
    await asyncio.sleep(0.6)
    assert len(writer.records) == 3
    action, actor, details = writer.records[2]
    assert action == API_REFUSED and actor == "anonymous"
    assert details["count"] == "998" and details["peer"] == "cert:rogue" and details["code"] == "UNAUTHENTICATED"
    assert recorder.counter.labels("/lfr.v1.X/Y", "UNAUTHENTICATED")._value.get() == 1000
    assert recorder.aggregated._value.get() == 998
    await asyncio.sleep(0.5)  # an empty window ends the background task
    assert recorder._flusher is not None and recorder._flusher.done()
    await recorder.close()
    assert len(writer.records) == 3 and writer.closed


async def test_close_writes_what_is_held() -> None:
    recorder, writer = _recorder(interval_s=3600, immediate_per_peer=1)
    for _ in range(5):
        await recorder("/m", ANON, "PERMISSION_DENIED", "no role", "addr:ipv4:10.1.1.1")
    await recorder("/m", ANON, "RESOURCE_EXHAUSTED", "rate limit", "addr:ipv4:10.1.1.1")  # counted, never audited
    assert len(writer.records) == 1
    await recorder.close()
    assert [d.get("count") for _, _, d in writer.records] == [None, "4"]


async def test_without_a_peer_the_principal_is_the_peer() -> None:
    recorder, writer = _recorder(immediate_per_peer=1)
    bob = Identity(principal="bob", mechanism="mtls")
    await recorder("/m", bob, "PERMISSION_DENIED", "no role")
    await recorder("/m", bob, "PERMISSION_DENIED", "no role")
    await recorder.close()
    assert [d["peer"] for _, _, d in writer.records] == ["principal:bob", "principal:bob"]
    assert writer.records[1][2]["count"] == "1"


async def test_an_unreachable_audit_log_costs_one_try_per_flush(caplog: pytest.LogCaptureFixture) -> None:
    recorder, writer = _recorder(interval_s=3600, immediate_per_peer=0)
    tries = 0

    async def down(action: str, *, actor: str, details: dict[str, str]) -> None:
        nonlocal tries
        tries += 1
        raise ConnectionError("broker down")

    writer.record = down  # type: ignore[method-assign]
    for i in range(50):
        await recorder("/m", ANON, "PERMISSION_DENIED", "no role", f"addr:ipv4:10.0.0.{i}")
    await recorder.close()
    assert tries == 1
    lost = [r for r in caplog.records if r.getMessage() == "aggregated refusals not audited"]
    assert len(lost) == 50 and sum(r.count for r in lost) == 50  # type: ignore[attr-defined]


@pytest.mark.parametrize("auth, peer, expected", [
    ({"x509_common_name": [b"officer-1"]}, "ipv4:10.0.0.1:5000", "cert:officer-1"),
    ({}, "ipv4:10.0.0.1:5000", "addr:ipv4:10.0.0.1"),
    ({}, "ipv6:[::1]:5000", "addr:ipv6:[::1]"),
    ({}, "unix:/run/lfr.sock", "addr:unix:/run/lfr.sock"),
    (None, "", "addr:unknown"),
])
def test_the_peer_is_the_certificate_else_the_address_without_its_port(auth: Any, peer: str, expected: str) -> None:
    from services.common.grpc_server import peer_of

    class Context:
        def auth_context(self) -> Any:
            return auth

        def peer(self) -> str:
            return peer

    assert peer_of(Context()) == expected  # type: ignore[arg-type]
