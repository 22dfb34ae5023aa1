"""Pass aggregation with an in-memory store: one alert per subject per camera
per pass, best score kept, a new pass after the window, restart-safe ids."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
from lfr.v1 import alerts_pb2, common_pb2, matches_pb2

from services.alerts.config import AlertsOptions, AlertsSettings
from services.alerts.passes import PassState, PassUpdate, Sighting, aggregate, alert_id_for
from services.alerts.worker import AlertWorker, PassAggregator
from services.common.grpc_server import GrpcServer
from services.common.kafka import Outbox, PoisonMessage
from services.common.metrics import MetricsFactory
from services.common.pass_keys import pass_key
from services.common.service import ServiceContext
from kafka_support import Rec

S = 1_000_000_000
T0 = 1_750_000_000 * S
WINDOW = 10 * S


class MemoryPassStore:
    """The PassStore contract over a dict (no TTL: the tests stay inside it)."""

    def __init__(self) -> None:
        self.passes: dict[str, PassState] = {}
        self.crops: dict[str, bytes] = {}

    async def apply(self, key: str, sighting: Sighting, window_ns: int, ttl_ms: int, crop: bytes) -> PassUpdate:
        update = aggregate(self.passes.get(key), sighting, window_ns)
        self.passes[key] = update.state
        if update.improved:
            self.crops[key] = crop
        return update

    async def mark_emitted(self, key: str, alert_id: str, ttl_ms: int) -> None:
        if key in self.passes and self.passes[key].alert_id == alert_id:
            self.passes[key] = dataclasses.replace(self.passes[key], emitted=True)

    async def best_crop(self, key: str) -> bytes:
        return self.crops.get(key, b"")


def _match(obs: str, at_ns: int, score: float, camera: str = "cam-1",
           subject: str = "lin") -> matches_pb2.MatchCandidate:
    return matches_pb2.MatchCandidate(
        observation_id=obs, subject_id=subject, watchlist_id="wl-1", score=score, threshold=0.55,
        frame=common_pb2.FrameRef(camera_id=camera, zone="zone-a", deployment_id="op-1", capture_unix_ns=at_ns),
        box=common_pb2.BoundingBox(x1=1, y1=1, x2=9, y2=9),
        crop=common_pb2.Crop(jpeg=b"\xff\xd8" + obs.encode()),
        watchlist_image=common_pb2.ImageRef(watchlist_id="wl-1", subject_id=subject, jpeg=b"\xff\xd8enrolled"))


def _sighting(obs: str, at_ns: int, score: float) -> Sighting:
    return Sighting("cam-1", "lin", obs, at_ns, score)


# --- the pure decision ------------------------------------------------------------------


def test_aggregate_opens_extends_and_closes_passes() -> None:
    first = aggregate(None, _sighting("o1", T0, 0.6), WINDOW)
    assert first.new_pass and first.improved and first.state.match_count == 1
    assert first.state.alert_id == alert_id_for("cam-1", "lin", "o1")

    better = aggregate(first.state, _sighting("o2", T0 + 9 * S, 0.8), WINDOW)
    assert not better.new_pass and better.improved
    assert ((better.state.alert_id, better.state.best_score, better.state.best_observation_id)
            == (first.state.alert_id, 0.8, "o2"))
    assert better.state.match_count == 2 and better.state.last_seen_ns == T0 + 9 * S

    worse = aggregate(better.state, _sighting("o3", T0 + 18 * S, 0.7), WINDOW)  # 9 s after the LAST sighting
    assert not worse.new_pass and not worse.improved and worse.state.best_score == 0.8 and worse.state.match_count == 3

    late = aggregate(worse.state, _sighting("o4", T0 + 28 * S + 1, 0.6), WINDOW)  # > window after the last one
    assert late.new_pass and late.state.alert_id != first.state.alert_id and late.state.match_count == 1


def test_an_out_of_order_sighting_stays_in_its_pass() -> None:
    s = aggregate(None, _sighting("o1", T0 + 5 * S, 0.6), WINDOW).state
    u = aggregate(s, _sighting("o0", T0, 0.7), WINDOW)
    assert not u.new_pass and u.state.first_seen_ns == T0 and u.state.last_seen_ns == T0 + 5 * S


def test_window_must_fit_in_ttl() -> None:
    with pytest.raises(ValueError):
        AlertsOptions(pass_window_s=30, pass_ttl_s=10)


# --- the aggregator ----------------------------------------------------------------------


async def _emit(agg: PassAggregator, m: matches_pb2.MatchCandidate) -> alerts_pb2.Alert | None:
    alert = await agg.on_match(m)
    if alert is not None:
        await agg.confirm(alert)  # what the worker does after the broker's ack
    return alert


async def test_one_alert_per_pass_not_per_frame() -> None:
    store = MemoryPassStore()
    agg = PassAggregator(store, AlertsOptions(pass_window_s=10, pass_ttl_s=60))
    alerts = [await _emit(agg, _match(f"o{i}", T0 + i * S // 2, 0.6 + i / 100)) for i in range(10)]
    raised = [a for a in alerts if a is not None]
    assert len(raised) == 1, "one alert for ten frames of the same pass"
    a = raised[0]
    assert (a.alert_id == alert_id_for("cam-1", "lin", "o0") and a.match_count == 1
            and a.best_score == pytest.approx(0.6))
    assert a.live_crop.jpeg == b"\xff\xd8o0" and a.watchlist_image.jpeg == b"\xff\xd8enrolled"
    assert (a.camera_id, a.zone, a.deployment_id, a.subject_id) == ("cam-1", "zone-a", "op-1", "lin")
    assert a.capture_unix_ns == T0 and a.alert_unix_ns > 0
    state = store.passes[pass_key("cam-1", "lin")]
    assert state.match_count == 10 and state.best_score == pytest.approx(0.69) and state.best_observation_id == "o9"
    assert store.crops[pass_key("cam-1", "lin")] == b"\xff\xd8o9", "the best crop is kept with the pass"

    # another camera, another subject: their own passes
    assert await _emit(agg, _match("c2", T0, 0.7, camera="cam-2")) is not None
    assert await _emit(agg, _match("s2", T0, 0.7, subject="obama")) is not None
    # after the window closes: a new pass, a new alert
    again = await _emit(agg, _match("later", T0 + 9 * S // 2 + 11 * S, 0.6))
    assert again is not None and again.alert_id != a.alert_id


async def test_unconfirmed_alert_is_re_emitted_with_the_same_id() -> None:
    """A crash between publishing and confirming: the next sighting publishes the
    same alert (same id: the idempotency key), not a second alert."""
    store = MemoryPassStore()
    agg = PassAggregator(store, AlertsOptions())
    first = await agg.on_match(_match("o1", T0, 0.6))  # published, never confirmed
    second = await agg.on_match(_match("o2", T0 + S, 0.9))
    assert first is not None and second is not None
    assert second.alert_id == first.alert_id and second.best_score == pytest.approx(0.9)
    assert second.live_crop.jpeg == b"\xff\xd8o2"
    await agg.confirm(second)
    assert await agg.on_match(_match("o3", T0 + 2 * S, 0.95)) is None


async def test_bad_match_is_poison() -> None:
    agg = PassAggregator(MemoryPassStore(), AlertsOptions())
    with pytest.raises(PoisonMessage):
        await agg.on_match(matches_pb2.MatchCandidate(observation_id="x", subject_id="lin"))


# --- the worker: Kafka first, then the stream ----------------------------------------------


class AckingProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   **_: Any) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append((topic, value or b"", key))
        fut.set_result(None)
        return fut


async def test_worker_publishes_one_alert_and_streams_it() -> None:
    settings = AlertsSettings()
    ctx = ServiceContext(name="alerts", settings=settings, metrics=MetricsFactory("alerts"),
                         grpc=GrpcServer(settings.grpc), stop=asyncio.Event())
    worker = AlertWorker(ctx, settings)
    worker.aggregator = PassAggregator(MemoryPassStore(), settings.alerts)
    producer = AckingProducer()
    stream = worker.hub.stream(alerts_pb2.StreamAlertsRequest(zones=["zone-a"]), ctx.stop)
    got = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    for i in range(5):
        await worker.handle(Rec("lfr.matches.v1", 0, i, _match(f"o{i}", T0 + i * S, 0.6).SerializeToString()),
                            Outbox(producer))
    alerts = [alerts_pb2.Alert.FromString(v) for t, v, _ in producer.sent if t == "lfr.alerts.v1"]
    assert len(alerts) == 1 and producer.sent[0][2] == alerts[0].alert_id.encode()
    streamed = await asyncio.wait_for(got, 1)
    assert streamed.alert_id == alerts[0].alert_id
    reg = ctx.metrics.registry
    assert reg.get_sample_value("lfr_alerts_total", {"zone": "zone-a"}) == 1
    assert reg.get_sample_value("lfr_frame_to_alert_seconds_count") == 1
    assert reg.get_sample_value("lfr_stage_latency_seconds_count", {"stage": "alert"}) == 5
    ctx.stop.set()
    await stream.aclose()
