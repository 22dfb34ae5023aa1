"""Matcher with in-memory fakes: the threshold decision, crypto-shredding of
non-matches before anything is published, match -> publish -> ack -> DEL, dead
letters, and a Redis outage that retries instead of dead-lettering."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from kafka_support import Rec
from lfr.v1 import common_pb2, dlq_pb2, faces_pb2, matches_pb2
from redis.exceptions import ConnectionError as RedisConnectionError

from services.common.faces_schema import EMBEDDING_DIM
from services.common.faces_search import Hit
from services.common.grpc_server import GrpcServer
from services.common.kafka import ConsumerLoop, Outbox, RecordLike
from services.common.metrics import MetricsFactory
from services.common.retry import Abandoned
from services.common.sealing import redis_key, seal
from services.common.service import ServiceContext
from services.face.embedders import DEFAULT_EMBEDDER, calibrated_threshold
from services.matcher.config import MatcherSettings
from services.matcher.worker import Matcher, decide

FACES = "lfr.faces.v1"
MATCHES = "lfr.matches.v1"
ENROLLED_JPEG = b"\xff\xd8enrolled-face"


def _hit(subject: str, score: float, watchlist: str = "wl-1") -> Hit:
    return Hit(subject_id=subject, watchlist_id=watchlist, category="wanted", score=score, image_ref="custody:42",
               row_id=7)


# --- the decision ------------------------------------------------------------------


def test_decide_is_score_at_or_above_threshold_on_the_best_hit() -> None:
    assert decide([], 0.5) is None
    assert decide([_hit("a", 0.49)], 0.5) is None
    assert decide([_hit("a", 0.5)], 0.5) == _hit("a", 0.5)  # at the threshold: a match
    assert decide([_hit("a", 0.9), _hit("b", 0.6)], 0.5) == _hit("a", 0.9)


def test_the_default_threshold_is_the_calibrated_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each embedder's calibration gives the matcher its default; an explicit threshold overrides it and says
    so; an embedder without a calibration and no threshold stops the matcher with the command that makes one."""
    from services.common.errors import SetupError
    from services.face import embedders as embedders_mod
    from services.matcher import config as matcher_config

    monkeypatch.delenv("LFR_MATCHER__THRESHOLD", raising=False)
    monkeypatch.setenv("LFR_FACE__ACCEPT_LICENCE", "insightface-non-commercial-research")  # w600k_mbf's terms
    for name in embedders_mod.embedders():
        monkeypatch.setenv("LFR_FACE__EMBEDDER", name)
        threshold, source = MatcherSettings().threshold_choice()
        assert threshold == calibrated_threshold(name) and source.startswith(f"{name}'s calibration on lfw_dev")
    assert calibrated_threshold(DEFAULT_EMBEDDER) != calibrated_threshold("w600k_mbf")  # other scales
    monkeypatch.setenv("LFR_MATCHER__THRESHOLD", "0.61")
    with pytest.raises(SetupError) as e:  # a threshold without the embedder it was measured for
        MatcherSettings().threshold_choice()
    assert "set for embedder (not said)" in e.value.cause and "THRESHOLD_EMBEDDER=w600k_mbf" in e.value.fix
    monkeypatch.setenv("LFR_MATCHER__THRESHOLD_EMBEDDER", DEFAULT_EMBEDDER)  # ... or for another embedder
    with pytest.raises(SetupError, match=f"was set for embedder {DEFAULT_EMBEDDER}, but the platform runs w600k_mbf"):
        MatcherSettings().threshold_choice()
    monkeypatch.setenv("LFR_MATCHER__THRESHOLD_EMBEDDER", "w600k_mbf")
    threshold, source = MatcherSettings().threshold_choice()
    assert threshold == pytest.approx(0.61) and "overrides w600k_mbf's calibrated" in source
    monkeypatch.setenv("LFR_MATCHER__THRESHOLD", "1.5")
    with pytest.raises(ValueError):
        MatcherSettings()
    monkeypatch.delenv("LFR_MATCHER__THRESHOLD")
    monkeypatch.setattr(matcher_config, "load_calibration", lambda name: None)  # never calibrated
    with pytest.raises(SetupError) as e:
        MatcherSettings().threshold_choice()
    assert "has no calibration" in e.value.cause and "--calibrate" in e.value.fix


# --- fakes -------------------------------------------------------------------------


class FakeProducer:
    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None, partition: int | None = None,
                   timestamp_ms: int | None = None,
                   headers: list[tuple[str, bytes]] | None = None) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        async def ack() -> None:
            await asyncio.sleep(0.01)
            self.sent.append((topic, value or b"", key))
            self.events.append(f"ack:{topic}")
            fut.set_result(None)

        asyncio.get_running_loop().create_task(ack())
        return fut


class FakeConsumer:
    def __init__(self) -> None:
        self.committed: dict[Any, int] = {}

    async def getmany(self, *partitions: Any, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[Any, list[Any]]:
        return {}

    async def commit(self, offsets: dict[Any, int] | None = None) -> None:
        assert offsets is not None
        self.committed.update(offsets)


class FakeRedis:
    def __init__(self, events: list[str], down_calls: int = 0) -> None:
        self.data: dict[str, bytes] = {}
        self.events = events
        self.down_calls = down_calls

    def _maybe_down(self) -> None:
        if self.down_calls > 0:
            self.down_calls -= 1
            raise RedisConnectionError("redis down")

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        self._maybe_down()
        return [self.data.get(k) for k in keys]

    async def delete(self, *keys: str) -> int:
        self._maybe_down()
        self.events.append("del:" + ",".join(sorted(keys)))
        return sum(self.data.pop(k, None) is not None for k in keys)


def _vec(first: float) -> list[float]:
    rest = (1 - first * first) ** 0.5
    return [first, rest] + [0.0] * (EMBEDDING_DIM - 2)


def fake_fetch_image(client: Any, row_id: int, timeout_s: float | None = None, collection: str = "") -> bytes | None:
    assert row_id == 7
    return ENROLLED_JPEG


def fake_search(client: Any, embeddings: Any, deployment_id: str, at_unix_s: int, limit: int,
                timeout_s: float | None = None, min_score: float | None = None,
                collection: str = "") -> list[list[Hit]]:
    assert deployment_id == "op-1" and at_unix_s > 0
    return [[_hit("subject-1", float(e[0]))] for e in embeddings]  # the score is the probe's first component


@dataclasses.dataclass
class Rig:
    matcher: Matcher
    redis: FakeRedis
    producer: FakeProducer
    consumer: FakeConsumer
    events: list[str]
    loop: ConsumerLoop


def _rig(tmp_path: Path, down_calls: int = 0, min_officers: int = 0) -> Rig:
    cams = tmp_path / "cameras.yaml"
    cams.write_text("cameras:\n  - {id: cam-1, zone: zone-a, deployment_id: op-1, source: /dev/null}\n")
    settings = MatcherSettings(matcher={"cameras_file": cams, "threshold": 0.6, "threshold_embedder": DEFAULT_EMBEDDER,
                                        "retry_max_backoff_s": 0.05,
                                        "gating": {"min_officers": min_officers}})  # gating: test_officers_gating.py
    ctx = ServiceContext(name="matcher", settings=settings, metrics=MetricsFactory("matcher"),
                         grpc=GrpcServer(settings.grpc), stop=asyncio.Event())
    matcher = Matcher(ctx, settings, search=fake_search, fetch_image=fake_fetch_image)
    events: list[str] = []
    matcher.redis = FakeRedis(events, down_calls)
    matcher.milvus = object()
    matcher.producer = FakeProducer(events)
    matcher.consumer = FakeConsumer()
    loop = ConsumerLoop(consumer=matcher.consumer, producer=matcher.producer, service="matcher", instance="t",
                        metrics=matcher.messages, batch_handler=matcher.handle_batch)
    return Rig(matcher, matcher.redis, matcher.producer, matcher.consumer, events, loop)


def _observation(rig: Rig, obs_id: str, first: float, camera: str = "cam-1", store_key: bool = True,
                 embedder: str = DEFAULT_EMBEDDER) -> bytes:
    secret = faces_pb2.FaceSecret(embedding=_vec(first), crop_jpeg=b"\xff\xd8crop-" + obs_id.encode(),
                                  crop_width=112, crop_height=112)
    sealed = seal(secret.SerializeToString(), obs_id)
    if store_key:
        rig.redis.data[redis_key(sealed.sealed.key_id)] = sealed.key
    obs = faces_pb2.FaceObservation(
        observation_id=obs_id,
        frame=common_pb2.FrameRef(camera_id=camera, zone="zone-a", deployment_id="op-1", seq=1,
                                  capture_unix_ns=1_750_000_000_000_000_000),
        box=common_pb2.BoundingBox(x1=1, y1=2, x2=3, y2=4), det_score=0.99, quality=0.9, secret=sealed.sealed,
        model=common_pb2.ModelVersion(embedder=embedder))
    return obs.SerializeToString()


def _value(reg: Any, name: str, labels: dict[str, str] | None = None) -> float:
    v = reg.get_sample_value(name, labels or {})
    return 0.0 if v is None else v


async def test_batch_shreds_non_matches_first_publishes_matches_then_deletes(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    records = [
        Rec(FACES, 0, 0, _observation(rig, "match", 0.9)),
        Rec(FACES, 0, 1, _observation(rig, "far", 0.2)),
        Rec(FACES, 0, 2, _observation(rig, "unknown-cam", 0.9, camera="cam-x")),
        Rec(FACES, 0, 3, _observation(rig, "gone", 0.9, store_key=False)),
        Rec(FACES, 0, 4, b"\x0a\xff\xff not a protobuf"),
    ]
    keys_before = set(rig.redis.data)
    await rig.loop.process({("faces", 0): records})

    assert rig.redis.data == {}, "every key must be gone: matched, non-matched and dead-lettered"
    assert rig.consumer.committed == {("faces", 0): 5}
    # the non-match (and the unknown camera's) key is deleted before the match is even published
    first_del = next(i for i, e in enumerate(rig.events) if e.startswith("del:"))
    assert first_del < rig.events.index(f"ack:{MATCHES}")
    match_del = max(i for i, e in enumerate(rig.events) if e.startswith("del:"))
    assert match_del > rig.events.index(f"ack:{MATCHES}"), "a match's key goes only after the broker's ack"
    assert len(keys_before) == 3

    matches = [matches_pb2.MatchCandidate.FromString(v) for t, v, _ in rig.producer.sent if t == MATCHES]
    assert len(matches) == 1
    m = matches[0]
    assert (m.observation_id, m.subject_id, m.watchlist_id) == ("match", "subject-1", "wl-1")
    assert m.score == pytest.approx(0.9) and m.threshold == pytest.approx(0.6) and m.rank == 1
    assert m.crop.jpeg == b"\xff\xd8crop-match" and m.crop.protection == common_pb2.PAYLOAD_PROTECTION_PLAINTEXT
    assert m.watchlist_image.jpeg == ENROLLED_JPEG and m.watchlist_image.source_ref == "custody:42"
    assert (m.frame.camera_id, m.frame.zone, m.frame.deployment_id) == ("cam-1", "zone-a", "op-1")
    assert m.subject_category == common_pb2.SUBJECT_CATEGORY_WANTED
    assert [k for t, _, k in rig.producer.sent if t == MATCHES] == [b"cam-1"]

    letters = {d.source_offset: d
               for d in (dlq_pb2.DeadLetter.FromString(v) for t, v, _ in rig.producer.sent if t == "lfr.dlq.v1")}
    assert letters[2].reason == dlq_pb2.DEAD_LETTER_REASON_UNKNOWN_CAMERA
    assert letters[3].reason == dlq_pb2.DEAD_LETTER_REASON_KEY_EXPIRED
    assert letters[4].reason == dlq_pb2.DEAD_LETTER_REASON_DECODE_ERROR
    assert all(d.payload == b"" for d in letters.values())

    reg = rig.matcher.ctx.metrics.registry
    assert _value(reg, "lfr_nonmatches_discarded_total") == 1
    assert _value(reg, "lfr_matches_total", {"watchlist": "wl-1"}) == 1
    assert _value(reg, "lfr_stage_latency_seconds_count", {"stage": "match"}) == 2


async def test_redis_outage_retries_the_batch_instead_of_dead_lettering(tmp_path: Path) -> None:
    rig = _rig(tmp_path, down_calls=2)
    await rig.loop.process({("faces", 0): [Rec(FACES, 0, 0, _observation(rig, "far", 0.1))]})
    assert not [t for t, _, _ in rig.producer.sent if t == "lfr.dlq.v1"]
    assert rig.redis.data == {} and rig.consumer.committed == {("faces", 0): 1}
    assert _value(rig.matcher.ctx.metrics.registry, "lfr_nonmatches_discarded_total") == 1


async def test_stop_during_an_outage_leaves_the_batch_uncommitted(tmp_path: Path) -> None:
    rig = _rig(tmp_path, down_calls=10_000)
    asyncio.get_running_loop().call_later(0.2, rig.matcher.ctx.stop.set)
    with pytest.raises(Abandoned):
        await rig.loop.process({("faces", 0): [Rec(FACES, 0, 0, _observation(rig, "far", 0.1))]})
    assert rig.consumer.committed == {} and not rig.producer.sent


async def test_unsealed_observation_is_refused(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    obs = faces_pb2.FaceObservation(observation_id="plain", embedding=_vec(0.9),
                                    frame=common_pb2.FrameRef(camera_id="cam-1", capture_unix_ns=1))
    out = Outbox(rig.producer)
    records: list[RecordLike] = [Rec(FACES, 0, 0, obs.SerializeToString())]
    await rig.matcher.handle_batch(records, out)
    assert [e.reason for _, e in out.dead_letters] == [dlq_pb2.DEAD_LETTER_REASON_INVALID_FIELD]
    assert not rig.producer.sent


async def test_failed_batch_deletes_its_keys_before_it_is_dead_lettered(tmp_path: Path) -> None:
    """A handler error (here the search raises something that is not an outage) dead-letters the whole
    batch as INTERNAL; every key the batch names is gone before the first dead letter is acknowledged."""
    rig = _rig(tmp_path)

    def broken_search(*args: Any, **kwargs: Any) -> list[list[Hit]]:
        raise ValueError("poison: the search cannot handle this batch")

    rig.matcher.search = broken_search
    records = [Rec(FACES, 0, 0, _observation(rig, "a", 0.9)), Rec(FACES, 0, 1, _observation(rig, "b", 0.2)),
               Rec(FACES, 0, 2, b"\x0a\xff\xff not a protobuf")]
    assert len(rig.redis.data) == 2
    await rig.loop.process({("faces", 0): records})

    assert rig.redis.data == {}, "a failed batch's keys must not wait for their TTL"
    letters = [dlq_pb2.DeadLetter.FromString(v) for t, v, _ in rig.producer.sent if t == "lfr.dlq.v1"]
    assert [(d.source_offset, d.reason) for d in letters] == [
        (0, dlq_pb2.DEAD_LETTER_REASON_INTERNAL), (1, dlq_pb2.DEAD_LETTER_REASON_INTERNAL),
        (2, dlq_pb2.DEAD_LETTER_REASON_INTERNAL)]
    assert all(d.payload == b"" and d.payload_dropped for d in letters)
    deleted = max(i for i, e in enumerate(rig.events) if e.startswith("del:"))
    assert deleted < rig.events.index("ack:lfr.dlq.v1"), rig.events
    assert not [t for t, _, _ in rig.producer.sent if t == MATCHES]
    assert rig.consumer.committed == {("faces", 0): 3}


async def test_a_face_of_another_embedder_is_never_searched(tmp_path: Path) -> None:
    """A recognizer on another face.embedder than the matcher's: its vectors are never compared with this
    embedder's watchlists (another scale, another space); dead-lettered with the fix, key shredded."""
    rig = _rig(tmp_path)
    assert rig.matcher.embedder == DEFAULT_EMBEDDER
    records = [Rec(FACES, 0, 0, _observation(rig, "same", 0.9, embedder=DEFAULT_EMBEDDER)),
               Rec(FACES, 0, 1, _observation(rig, "other", 0.9, embedder="w600k_mbf")),
               Rec(FACES, 0, 2, _observation(rig, "unnamed", 0.9, embedder=""))]
    await rig.loop.process({("faces", 0): records})
    assert rig.redis.data == {}
    matches = [matches_pb2.MatchCandidate.FromString(v) for t, v, _ in rig.producer.sent if t == MATCHES]
    assert [m.observation_id for m in matches] == ["same"]
    dead = [dlq_pb2.DeadLetter.FromString(v) for t, v, _ in rig.producer.sent if t == "lfr.dlq.v1"]
    assert [d.source_offset for d in dead] == [1, 2]
    assert "face embedded by w600k_mbf" in dead[0].detail and "LFR_FACE__EMBEDDER" in dead[0].detail
    assert "an unnamed embedder" in dead[1].detail
