"""Matcher and alerts over the real Kafka, Redis and Milvus (no Triton): sealed
observations in, MatchCandidates and Alerts out, non-matches crypto-shredded at
once, one alert per pass across a restart of the alerts service.

Needs `lfr stack up --only kafka --only redis --only milvus`. The services run
as subprocesses on ports +2000, on topics and a camera/watchlist of their own
(removed afterwards), so a running `make up` is not disturbed."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lfr.v1 import alerts_pb2, alerts_pb2_grpc, common_pb2, faces_pb2, matches_pb2
from topics_support import KafkaTopics

from services.common.faces_schema import COLLECTION, EMBEDDING_DIM, ensure_collection, watchlist_filter
from services.common.grpc_client import aio_channel, dev_server_env
from services.common.sealing import redis_key, seal
from services.face.embedders import DEFAULT_EMBEDDER
from services.officers.state import OfficerStore, go_on_duty, set_status

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
KAFKA = "127.0.0.1:9092"
REDIS_URL = "redis://127.0.0.1:6379/0"
MILVUS_URI = "http://127.0.0.1:19530"
OFFSET = 2000
MATCHER_PORTS = (50053 + OFFSET, 9103 + OFFSET)
ALERTS_PORTS = (50054 + OFFSET, 9104 + OFFSET)
ENROLLED_JPEG = b"\xff\xd8\xff\xe0itest-enrolled-face"


def _unit(*components: tuple[int, float]) -> list[float]:
    v = np.zeros(EMBEDDING_DIM, dtype=np.float32)
    for i, x in components:
        v[i] = x
    return (v / np.linalg.norm(v)).tolist()


SUBJECT_VEC = _unit((0, 1.0))
CLOSE_VEC = _unit((0, 1.0), (1, 0.1))  # cosine ~0.995 with the subject
FAR_VEC = _unit((2, 1.0))  # cosine 0


class Service:
    """A service subprocess (`python -m services.<name>`) with env overrides."""

    def __init__(self, name: str, ports: tuple[int, int], env: dict[str, str], log: Path) -> None:
        self.name, self.grpc_port, self.metrics_port, self.log = name, ports[0], ports[1], log
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
        self.env.update(env)
        self.env.update({"LFR_GRPC__PORT": str(ports[0]), "LFR_METRICS__PORT": str(ports[1]),
                         "LFR_KAFKA__AUTO_OFFSET_RESET": "earliest", **dev_server_env(name)})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", f"services.{self.name}"], cwd=REPO, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT)

    async def wait_serving(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        async with aio_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, f"{self.name} exited:\n{self.tail()}"
                try:
                    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                await asyncio.sleep(0.25)
        raise AssertionError(f"{self.name} not SERVING in {timeout_s} s:\n{self.tail()}")

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def metric(self, name: str, default: float | None = 0.0) -> float | None:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        m = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
        return float(m.group(1)) if m else default

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


class TopicReader:
    """Collects every record of a topic from the beginning (no consumer group)."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.values: list[bytes] = []
        self.keys: list[bytes | None] = []
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=KAFKA, group_id=None,
                                          auto_offset_reset="earliest", enable_auto_commit=False)
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            for records in batches.values():
                for r in records:
                    self.values.append(r.value)
                    self.keys.append(r.key)

    async def wait_for(self, count: int, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while len(self.values) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert len(self.values) >= count, f"{self.topic}: {len(self.values)} records, expected {count}"

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()


class AlertStream:
    """A live StreamAlerts call, filtered to the test camera."""

    def __init__(self, port: int, camera: str) -> None:
        self.alerts: list[alerts_pb2.Alert] = []
        self._channel = aio_channel(f"127.0.0.1:{port}")
        self._call = alerts_pb2_grpc.AlertServiceStub(self._channel).StreamAlerts(
            alerts_pb2.StreamAlertsRequest(camera_ids=[camera]))
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for alert in self._call:
                self.alerts.append(alert)
        except grpc.aio.AioRpcError:
            pass  # the server went away (restart)

    async def close(self) -> None:
        self._call.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._channel.close()


@pytest.fixture
def ids() -> dict[str, str]:
    u = uuid.uuid4().hex[:8]
    return {"uid": u, "camera": f"itest-cam-{u}", "zone": f"itest-zone-{u}", "deployment": f"itest-op-{u}",
            "watchlist": f"itest-wl-{u}", "subject": f"itest-subject-{u}",
            "faces": f"lfr.itest.faces.{u}", "matches": f"lfr.itest.matches.{u}", "alerts": f"lfr.itest.alerts.{u}"}


@pytest.fixture
async def topics(ids: dict[str, str], kafka_topics: KafkaTopics) -> None:
    await kafka_topics.bare([ids["faces"], ids["matches"], ids["alerts"]])


@pytest.fixture
def watchlist(ids: dict[str, str]) -> Iterator[Any]:
    """One enrolled subject of the test deployment, valid around now, inserted directly."""
    from services.common.clients import milvus_client

    client = milvus_client(MILVUS_URI, timeout=10)
    ensure_collection(client)
    now = int(time.time())
    client.insert(COLLECTION, [{
        "watchlist_id": ids["watchlist"], "deployment_id": ids["deployment"], "subject_id": ids["subject"],
        "category": "wanted", "valid_from": now - 3600, "valid_until": now + 3600, "image_ref": "itest:custody-1",
        "image_jpeg_b64": base64.b64encode(ENROLLED_JPEG).decode(), "embedding": SUBJECT_VEC,
    }])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # wait until searchable
        rows = client.query(COLLECTION, filter=watchlist_filter(ids["watchlist"]), output_fields=["subject_id"],
                            consistency_level="Strong")
        if rows:
            break
        time.sleep(0.2)
    try:
        yield client
    finally:
        client.delete(COLLECTION, filter=watchlist_filter(ids["watchlist"]))
        client.close()


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


class Camera:
    """Plays the recognizer: seals each face, keys it into Redis, publishes the observation."""

    def __init__(self, producer: Any, redis: Any, ids: dict[str, str]) -> None:
        self.producer, self.redis, self.ids = producer, redis, ids
        self.seq = 0

    async def publish(self, embedding: list[float]) -> tuple[str, str]:
        """Returns (observation id, Redis key)."""
        self.seq += 1
        obs_id = uuid.uuid4().hex
        crop = b"\xff\xd8itest-crop-" + obs_id.encode()
        secret = faces_pb2.FaceSecret(embedding=embedding, crop_jpeg=crop, crop_width=112, crop_height=112)
        sealed = seal(secret.SerializeToString(), obs_id)
        key = redis_key(sealed.sealed.key_id)
        await self.redis.set(key, sealed.key, ex=60)
        obs = faces_pb2.FaceObservation(
            observation_id=obs_id,
            frame=common_pb2.FrameRef(camera_id=self.ids["camera"], zone=self.ids["zone"],
                                      deployment_id=self.ids["deployment"], seq=self.seq,
                                      capture_unix_ns=time.time_ns()),
            box=common_pb2.BoundingBox(x1=10, y1=10, x2=60, y2=70), det_score=0.99, quality=0.9,
            secret=sealed.sealed, model=common_pb2.ModelVersion(embedder=DEFAULT_EMBEDDER))
        await self.producer.send_and_wait(self.ids["faces"], obs.SerializeToString(), key=self.ids["camera"].encode())
        return obs_id, key


async def _gone_within(redis: Any, key: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not await redis.exists(key):
            return True
        await asyncio.sleep(0.02)
    return not await redis.exists(key)


async def test_matches_non_matches_and_one_alert_per_pass(
    ids: dict[str, str], topics: None, watchlist: Any, redis: Any, tmp_path: Path
) -> None:
    from aiokafka import AIOKafkaProducer

    cameras = tmp_path / "cameras.yaml"
    cameras.write_text(f"cameras:\n  - {{id: {ids['camera']}, zone: {ids['zone']}, "
                       f"deployment_id: {ids['deployment']}, source: /dev/null}}\n")
    matcher = Service("matcher", MATCHER_PORTS, {
        "LFR_MATCHER__FACES_TOPIC": ids["faces"], "LFR_MATCHER__MATCHES_TOPIC": ids["matches"],
        "LFR_MATCHER__GROUP_ID": f"itest-matcher-{ids['uid']}", "LFR_MATCHER__CAMERAS_FILE": str(cameras),
    }, tmp_path / "matcher.log")
    alerts_env = {
        "LFR_ALERTS__MATCHES_TOPIC": ids["matches"], "LFR_ALERTS__ALERTS_TOPIC": ids["alerts"],
        "LFR_ALERTS__GROUP_ID": f"itest-alerts-{ids['uid']}", "LFR_ALERTS__PASS_WINDOW_S": "60",
        "LFR_ALERTS__PASS_TTL_S": "120",
    }
    alerts = Service("alerts", ALERTS_PORTS, alerts_env, tmp_path / "alerts.log")
    matches_topic, alerts_topic = TopicReader(ids["matches"]), TopicReader(ids["alerts"])
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all")
    stream: AlertStream | None = None
    try:
        matcher.start()
        alerts.start()
        await producer.start()
        await matches_topic.start()
        await alerts_topic.start()
        await matcher.wait_serving()
        await alerts.wait_serving()
        stream = AlertStream(alerts.grpc_port, ids["camera"])
        camera = Camera(producer, redis, ids)
        officers = OfficerStore(redis, ttl_s=300)  # the matcher only searches faces of zones with an officer on duty
        officer = f"itest-officer-{ids['uid']}"
        await officers.update(officer, lambda old, at: go_on_duty(officer, [ids["zone"]], "itest-device", at_ms=at,
                                                                  ttl_ms=300_000))

        # (a) a probe close to the subject -> a MatchCandidate with the crop; key deleted
        obs_id, key = await camera.publish(CLOSE_VEC)
        await matches_topic.wait_for(1)
        m = matches_pb2.MatchCandidate.FromString(matches_topic.values[0])
        assert (m.observation_id, m.subject_id, m.watchlist_id) == (obs_id, ids["subject"], ids["watchlist"])
        assert m.score > 0.95 and m.threshold > 0 and m.score >= m.threshold
        assert m.crop.jpeg == b"\xff\xd8itest-crop-" + obs_id.encode()
        assert m.watchlist_image.jpeg == ENROLLED_JPEG and m.watchlist_image.source_ref == "itest:custody-1"
        assert ((m.frame.camera_id, m.frame.zone, m.frame.deployment_id)
                == (ids["camera"], ids["zone"], ids["deployment"]))
        assert matches_topic.keys[0] == ids["camera"].encode()
        assert await _gone_within(redis, key, 2.0), "a match's key is deleted after the publish"
        await alerts_topic.wait_for(1)

        # (b) a far probe -> nothing published; key deleted at once; counted
        discarded = matcher.metric("lfr_nonmatches_discarded_total")
        published_at = time.monotonic()
        _, far_key = await camera.publish(FAR_VEC)
        assert await _gone_within(redis, far_key, 1.0), "a non-match's key must be gone within a second"
        shredded_after = time.monotonic() - published_at
        assert await redis.get(far_key) is None  # nobody can fetch the data key: the ciphertext can't be opened
        deadline = time.monotonic() + 5
        while matcher.metric("lfr_nonmatches_discarded_total") < discarded + 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert matcher.metric("lfr_nonmatches_discarded_total") == discarded + 1
        print(f"non-match key deleted {shredded_after * 1000:.0f} ms after publishing the observation")

        # (c) more matches of the same subject within the window -> still ONE alert
        for _ in range(3):
            await camera.publish(CLOSE_VEC)
        await matches_topic.wait_for(4)
        await asyncio.sleep(1.5)  # let the alerts service handle them
        assert len(matches_topic.values) == 4, "the far probe must not produce a match"
        assert len(alerts_topic.values) == 1, "one alert per pass, not per frame"
        alert = alerts_pb2.Alert.FromString(alerts_topic.values[0])
        assert alerts_topic.keys[0] == alert.alert_id.encode()
        assert (alert.subject_id, alert.camera_id, alert.zone) == (ids["subject"], ids["camera"], ids["zone"])
        assert alert.live_crop.jpeg == m.crop.jpeg and alert.watchlist_image.jpeg == ENROLLED_JPEG
        assert alert.alert_unix_ns >= alert.capture_unix_ns > 0
        assert [a.alert_id for a in stream.alerts] == [alert.alert_id], "the stream shows the one alert"
        assert alerts.metric(f'lfr_alerts_total{{zone="{ids["zone"]}"}}') == 1
        assert alerts.metric("lfr_frame_to_alert_seconds_count") == 1
        assert matcher.metric(f'lfr_matches_total{{watchlist="{ids["watchlist"]}"}}') == 4
        assert matcher.metric(f'lfr_consumer_lag{{group="itest-matcher-{ids["uid"]}",'
                              f'topic="{ids["faces"]}"}}', None) == 0
        assert matcher.metric('lfr_stage_latency_seconds_count{stage="match"}') == 5

        # (d) restart the alerts service mid-pass -> no duplicate
        await stream.close()
        stream = None
        assert alerts.stop() == 0, alerts.tail()
        alerts.start()
        await alerts.wait_serving()
        stream = AlertStream(alerts.grpc_port, ids["camera"])
        await asyncio.sleep(0.3)
        for _ in range(2):
            await camera.publish(CLOSE_VEC)
        await matches_topic.wait_for(6)
        deadline = time.monotonic() + 20
        topic_metric = f'lfr_messages_in_total{{topic="{ids["matches"]}"}}'
        while alerts.metric(topic_metric) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        assert alerts.metric(topic_metric) >= 2, alerts.tail()
        await asyncio.sleep(1.0)
        assert len(alerts_topic.values) == 1, "a restart mid-pass must not raise the alert again"
        assert stream.alerts == []
        state = await redis.hgetall(f"lfr:pass:{ids['camera']}:{ids['subject']}")
        assert int(state[b"count"]) == 6 and state[b"alert_id"].decode() == alert.alert_id

        # (e) the officer goes off duty: a face of the camera is shredded unsearched (gating, checked again)
        await officers.update(officer, lambda old, at: set_status(old, "off_duty", at_ms=at, ttl_ms=1))
        _, gated_key = await camera.publish(CLOSE_VEC)
        assert await _gone_within(redis, gated_key, 2.0), "a gated face's key is deleted"
        await asyncio.sleep(0.5)
        assert len(matches_topic.values) == 6, "no match from a camera without an officer on duty"
        assert matcher.metric(f'lfr_faces_gated_total{{camera="{ids["camera"]}"}}') == 1

        logs = matcher.tail() + alerts.tail()
        assert "Traceback" not in logs, logs
    finally:
        if stream is not None:
            await stream.close()
        for svc in (matcher, alerts):
            svc.stop()
        await matches_topic.stop()
        await alerts_topic.stop()
        await producer.stop()
        await redis.delete(f"lfr:pass:{ids['camera']}:{ids['subject']}", f"lfr:officer:itest-officer-{ids['uid']}",
                           f"lfr:zone:{ids['zone']}:available", f"lfr:zone:{ids['zone']}:on_duty")
