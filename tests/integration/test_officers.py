"""Officers on the ground, over the real Redis, Kafka and gRPC (no mocks):
camera gating (ingest), routing to the right zone's devices nearest first,
escalation to the next officer then the supervisor then UNREACHABLE, two-person
adjudication in the metrics and the audit, the retention purge, and at most one
delivery per device across restarts of the alerts and officers services.

Needs `lfr stack up --only kafka --only redis`. Services run as subprocesses on
ports +4000, on topics (audit included) and Redis ids of their own."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import cv2
import grpc
import numpy as np
import pytest
from lfr.v1 import alerts_pb2, audit_pb2, common_pb2, frames_pb2, matches_pb2, officers_pb2, officers_pb2_grpc
from test_matcher_alerts import KAFKA, REDIS_URL, Service, TopicReader
from topics_support import KafkaTopics

from services.common.audit import read_records
from services.common.grpc_client import aio_channel
from services.common.settings import KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

OFFSET = 4000
OFFICERS_PORTS = (50056 + OFFSET, 9106 + OFFSET)
INGEST_PORTS = (50051 + OFFSET, 9101 + OFFSET)
ALERTS_PORTS = (50054 + OFFSET, 9104 + OFFSET)
CAM_A = (51.5000, -0.1000)


@pytest.fixture
def ids() -> dict[str, str]:
    u = uuid.uuid4().hex[:8]
    return {"uid": u, "zone_a": f"itz-a-{u}", "zone_b": f"itz-b-{u}", "cam_a": f"itc-a-{u}", "cam_b": f"itc-b-{u}",
            "frames": f"lfr.itest.frames.{u}", "matches": f"lfr.itest.matches.{u}",
            "alerts": f"lfr.itest.alerts.{u}", "audit": f"lfr.itest.audit.{u}"}


@pytest.fixture
async def topics(ids: dict[str, str], kafka_topics: KafkaTopics) -> None:
    await kafka_topics.bare([ids["frames"], ids["matches"], ids["alerts"], ids["audit"]])


@pytest.fixture
async def redis(ids: dict[str, str]) -> AsyncIterator[Any]:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    yield client
    keys = [k async for k in client.scan_iter(match=f"*{ids['uid']}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def _cameras(tmp_path: Path, ids: dict[str, str], source: str = "/dev/null", fps: float = 5) -> Path:
    path = tmp_path / "cameras.yaml"
    path.write_text(
        "cameras:\n"
        f"  - {{id: {ids['cam_a']}, zone: {ids['zone_a']}, deployment_id: op-{ids['uid']}, source: '{source}', "
        f"fps: {fps}, loop: true, lat: {CAM_A[0]}, lon: {CAM_A[1]}}}\n"
        f"  - {{id: {ids['cam_b']}, zone: {ids['zone_b']}, deployment_id: op-{ids['uid']}, source: /nonexistent}}\n")
    return path


def _officers_service(ids: dict[str, str], tmp_path: Path, **extra: str) -> Service:
    env = {"LFR_OFFICERS__ALERTS_TOPIC": ids["alerts"], "LFR_OFFICERS__AUDIT_TOPIC": ids["audit"],
           "LFR_OFFICERS__GROUP_ID": f"itest-officers-{ids['uid']}",
           "LFR_OFFICERS__CAMERAS_FILE": str(tmp_path / "cameras.yaml"), "LFR_OFFICERS__TICK_S": "0.1",
           "LFR_OFFICERS__STREAM_POLL_S": "0.5",
           # routing/delivery under test here; roles and mTLS: tests/integration/test_security_roles.py
           "LFR_GRPC__AUTH__ENFORCE_ROLES": "false"}
    env.update({f"LFR_OFFICERS__{k.upper()}": v for k, v in extra.items()})
    return Service("officers", OFFICERS_PORTS, env, tmp_path / "officers.log")


async def rostered(channel: grpc.aio.Channel, officer_id: str, zones: list[str], device_id: str) -> None:
    """What a supervisor does before an officer may go on duty: assign the zones, register the device."""
    await officers_pb2_grpc.OfficerServiceStub(channel).AssignZones(officers_pb2.AssignZonesRequest(
        officer_id=officer_id, zones=zones, duration_s=600))
    await officers_pb2_grpc.DeviceServiceStub(channel).RegisterDevice(officers_pb2.RegisterDeviceRequest(
        device_id=device_id, officer_id=officer_id))


class Device:
    """Plays the officer app: a DeviceService.Subscribe stream (reconnectable)."""

    def __init__(self, port: int, device_id: str) -> None:
        self.port, self.device_id = port, device_id
        self.received: list[tuple[float, officers_pb2.DeviceAlert]] = []
        self._channel: Any = None
        self._task: asyncio.Task[None] | None = None

    def connect(self) -> "Device":
        self._channel = aio_channel(f"127.0.0.1:{self.port}")
        call = officers_pb2_grpc.DeviceServiceStub(self._channel).Subscribe(
            officers_pb2.SubscribeRequest(device_id=self.device_id))
        self._task = asyncio.create_task(self._run(call))
        return self

    async def _run(self, call: Any) -> None:
        try:
            async for msg in call:
                self.received.append((time.monotonic(), msg))
        except grpc.aio.AioRpcError:
            pass  # server restarted or call cancelled

    @property
    def alert_ids(self) -> list[str]:
        return [m.alert.alert_id for _, m in self.received]

    async def wait_for(self, alert_id: str, timeout_s: float = 10.0) -> officers_pb2.DeviceAlert:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for _, m in self.received:
                if m.alert.alert_id == alert_id:
                    return m
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.device_id} did not get {alert_id}; got {self.alert_ids}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()


async def _audit(ids: dict[str, str]) -> list[audit_pb2.AuditRecord]:
    return [audit_pb2.AuditRecord.FromString(v or b"")
            async for _, v in read_records(KafkaSettings(bootstrap=KAFKA), ids["audit"])]


async def _until(pred: Any, timeout_s: float, what: str) -> float:
    """Wait until ``pred()`` (sync or async) is true; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        r = pred()
        if asyncio.iscoroutine(r):
            r = await r
        if r:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _alert(ids: dict[str, str], alert_id: str, cam: str, zone: str, deployment: str,
           subject: str = "s1") -> alerts_pb2.Alert:
    now = time.time_ns()
    return alerts_pb2.Alert(
        alert_id=alert_id, subject_id=subject, watchlist_id=f"wl-{ids['uid']}", deployment_id=deployment,
        camera_id=cam, zone=zone, best_score=0.9, threshold=0.5, match_count=1, best_observation_id="obs",
        first_seen_unix_ns=now, last_seen_unix_ns=now, capture_unix_ns=now, alert_unix_ns=now,
        live_crop=common_pb2.Crop(jpeg=b"\xff\xd8live-" + alert_id.encode(), width=112, height=112),
        watchlist_image=common_pb2.ImageRef(watchlist_id=f"wl-{ids['uid']}", subject_id=subject,
                                            jpeg=b"\xff\xd8enrolled"))


# --------------------------------------------------------------------------------------------


async def test_camera_runs_only_while_an_officer_is_available(ids: dict[str, str], topics: None, redis: Any,
                                                              tmp_path: Path) -> None:
    images = tmp_path / "frames"
    images.mkdir()
    for i in range(2):
        cv2.imwrite(str(images / f"{i}.jpg"), np.full((48, 64, 3), 60 * (i + 1), np.uint8))
    _cameras(tmp_path, ids, source=str(images), fps=5)
    ttl_s = 3.0
    officers = _officers_service(ids, tmp_path, heartbeat_ttl_s=str(ttl_s))
    ingest = Service("ingest", INGEST_PORTS, {
        "LFR_INGEST__FRAMES_TOPIC": ids["frames"], "LFR_INGEST__CAMERAS_FILE": str(tmp_path / "cameras.yaml"),
        "LFR_INGEST__AUDIT_TOPIC": ids["audit"], "LFR_INGEST__GATING__POLL_INTERVAL_S": "0.5"},
        tmp_path / "ingest.log")
    frames = TopicReader(ids["frames"])
    channel = aio_channel(f"127.0.0.1:{OFFICERS_PORTS[0]}")
    stub = officers_pb2_grpc.OfficerServiceStub(channel)
    cam = ids["cam_a"]
    try:
        officers.start()
        ingest.start()
        await frames.start()
        await officers.wait_serving()
        await ingest.wait_serving()

        # 1. nobody on duty: the camera is not even read, nothing reaches Kafka
        await asyncio.sleep(2.0)
        assert frames.values == [], "frames published while no officer was on duty"
        assert ingest.metric(f'lfr_frames_captured_total{{camera="{cam}"}}') == 0
        assert ingest.metric(f'lfr_camera_active{{camera="{cam}"}}') == 0

        # 2. an officer goes on duty in the zone: frames flow within 2 s
        await rostered(channel, f"o-{ids['uid']}", [ids["zone_a"]], f"d-{ids['uid']}")
        on_ns = time.time_ns()
        await stub.GoOnDuty(officers_pb2.GoOnDutyRequest(officer_id=f"o-{ids['uid']}", zones=[ids["zone_a"]],
                                                         device_id=f"d-{ids['uid']}"))
        await frames.wait_for(1, timeout_s=5)
        first = frames_pb2.Frame.FromString(frames.values[0])
        delay_s = (first.capture_unix_ns - on_ns) / 1e9
        print(f"first frame captured {delay_s * 1000:.0f} ms after GoOnDuty")
        assert first.camera_id == cam and 0 < delay_s <= 2.0
        assert ingest.metric(f'lfr_camera_active{{camera="{cam}"}}') == 1

        # 3. one heartbeat, then silence: the camera switches off within the TTL (+ one poll)
        await stub.Heartbeat(officers_pb2.HeartbeatRequest(officer_id=f"o-{ids['uid']}"))
        hb_ns = time.time_ns()
        await _until(lambda: ingest.metric(f'lfr_camera_active{{camera="{cam}"}}') == 0, ttl_s + 3, "camera off")
        await asyncio.sleep(1.0)
        n = len(frames.values)
        last = frames_pb2.Frame.FromString(frames.values[-1])
        off_after_s = (last.capture_unix_ns - hb_ns) / 1e9
        print(f"last frame captured {off_after_s:.2f} s after the last heartbeat (TTL {ttl_s} s)")
        assert off_after_s <= ttl_s + 0.5 + 0.3, "frames kept flowing after the officer's availability lapsed"
        await asyncio.sleep(1.0)
        assert len(frames.values) == n, "frames after the camera switched off"
        assert await redis.exists(f"lfr:officer:o-{ids['uid']}") == 0, "the officer's record expires with the TTL"

        # 4. every transition is audited
        records = await _audit(ids)
        cam_events = [r.action for r in records if cam in r.subject_ids]
        assert cam_events == ["camera.on", "camera.off"], cam_events
        assert any(r.action == "officer.on_duty" and r.actor == f"o-{ids['uid']}" for r in records)
        assert "Traceback" not in ingest.tail() + officers.tail()
    finally:
        await channel.close()
        await frames.stop()
        for svc in (ingest, officers):
            svc.stop()


async def test_routing_escalation_adjudication_and_retention(ids: dict[str, str], topics: None, redis: Any,
                                                             tmp_path: Path) -> None:
    from aiokafka import AIOKafkaProducer

    u = ids["uid"]
    za, zb = ids["zone_a"], ids["zone_b"]
    _cameras(tmp_path, ids)
    officers = _officers_service(
        ids, tmp_path, ack_timeout_s="1.0", first_wave="1", escalation_wave="1", alert_retention_s="8",
        supervisor_devices=json.dumps({za: f"ctrl-{u}"}), two_person_deployments=json.dumps([f"op2-{u}"]))
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all")
    channel = aio_channel(f"127.0.0.1:{OFFICERS_PORTS[0]}")
    off = officers_pb2_grpc.OfficerServiceStub(channel)
    dev = officers_pb2_grpc.DeviceServiceStub(channel)
    devices: dict[str, Device] = {}
    try:
        officers.start()
        await producer.start()
        await officers.wait_serving()
        for oid, zone, (lat, lon) in ((f"a1-{u}", za, (51.5005, -0.1)), (f"a2-{u}", za, (51.52, -0.1)),
                                      (f"b1-{u}", zb, (52.0, 0.0))):
            await rostered(channel, oid, [zone], f"dev-{oid}")
            await off.GoOnDuty(officers_pb2.GoOnDutyRequest(
                officer_id=oid, zones=[zone], device_id=f"dev-{oid}",
                location=officers_pb2.GeoLocation(latitude=lat, longitude=lon)))
        listed = await off.ListOfficers(officers_pb2.ListOfficersRequest(zone=za))
        assert sorted(o.officer_id for o in listed.officers) == [f"a1-{u}", f"a2-{u}"]
        for d in (f"dev-a1-{u}", f"dev-a2-{u}", f"dev-b1-{u}", f"ctrl-{u}"):
            devices[d] = Device(OFFICERS_PORTS[0], d).connect()
        a1, a2, b1, ctrl = devices.values()
        await asyncio.sleep(0.5)

        # X: nobody acknowledges -> nearest officer, then the next, then the supervisor, then UNREACHABLE
        x = f"x-{u}"
        sent = time.monotonic()
        await producer.send_and_wait(ids["alerts"], _alert(ids, x, ids["cam_a"], za, f"op-{u}").SerializeToString(),
                                     key=x.encode())
        got = await a1.wait_for(x, 5)
        assert got.alert.live_crop.jpeg == b"\xff\xd8live-" + x.encode(), "the live crop travels to the device"
        assert got.alert.watchlist_image.jpeg == b"\xff\xd8enrolled" and got.escalation_level == 0
        assert got.delivery_id == f"dev-a1-{u}:{x}" and got.ack_deadline_unix_ns > 0
        esc1 = await a2.wait_for(x, 5)
        esc2 = await ctrl.wait_for(x, 5)
        t_a1, t_a2, t_ctrl = (next(t for t, m in d.received if m.alert.alert_id == x) - sent for d in (a1, a2, ctrl))
        print(f"X reached a1 {t_a1:.2f} s, a2 {t_a2:.2f} s, supervisor {t_ctrl:.2f} s after publishing")
        assert (esc1.escalation_level, esc2.escalation_level) == (1, 2)
        assert 0.9 <= t_a2 - t_a1 <= 1.8 and 0.9 <= t_ctrl - t_a2 <= 1.8, "escalation on time (ack timeout 1 s)"
        status = await _until_status(dev, x, officers_pb2.ALERT_STATE_UNREACHABLE, 5)
        assert list(status.notified_officers) == [f"a1-{u}", f"a2-{u}", f"device:ctrl-{u}"]
        assert officers.metric(f'lfr_alerts_unreachable_total{{zone="{za}"}}') == 1
        assert officers.metric(f'lfr_alerts_escalated_total{{zone="{za}"}}') == 2
        assert x not in b1.alert_ids, "another zone's device got the alert"

        # Y: two-person deployment; acknowledged -> no escalation; confirmed by two different officers
        y = f"y-{u}"
        alert_y = _alert(ids, y, ids["cam_a"], za, f"op2-{u}").SerializeToString()
        await producer.send_and_wait(ids["alerts"], alert_y, key=y.encode())
        got = await a1.wait_for(y, 5)
        assert got.two_person_confirmation
        assert (await dev.Acknowledge(officers_pb2.AcknowledgeRequest(alert_id=y, officer_id=f"a1-{u}"))).first
        assert not (await dev.Acknowledge(officers_pb2.AcknowledgeRequest(alert_id=y, officer_id=f"a2-{u}"))).first
        await producer.send_and_wait(ids["alerts"], alert_y, key=y.encode())  # a redelivery
        await asyncio.sleep(1.6)
        assert y not in a2.alert_ids, "an acknowledged alert must not escalate"
        assert a1.alert_ids.count(y) == 1, "a redelivered alert reaches the device once"
        r = await dev.Adjudicate(officers_pb2.AdjudicateRequest(
            alert_id=y, officer_id=f"a1-{u}", outcome=officers_pb2.ADJUDICATION_OUTCOME_CONFIRMED, case_ref="CASE-1"))
        assert r.state == officers_pb2.ALERT_STATE_AWAITING_SECOND and list(r.confirmed_by) == [f"a1-{u}"]
        with pytest.raises(grpc.aio.AioRpcError) as same:
            await dev.Adjudicate(officers_pb2.AdjudicateRequest(
                alert_id=y, officer_id=f"a1-{u}", outcome=officers_pb2.ADJUDICATION_OUTCOME_CONFIRMED))
        assert same.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        r = await dev.Adjudicate(officers_pb2.AdjudicateRequest(
            alert_id=y, officer_id=f"a2-{u}", outcome=officers_pb2.ADJUDICATION_OUTCOME_CONFIRMED))
        assert r.state == officers_pb2.ALERT_STATE_ADJUDICATED and r.kept
        assert r.final_outcome == officers_pb2.ADJUDICATION_OUTCOME_CONFIRMED

        # W: zone B -> only zone B's device; rejected; its pass crop goes with it at retention
        w = f"w-{u}"
        pass_key = f"lfr:pass:{ids['cam_b']}:s1"
        await redis.hset(pass_key, mapping={"alert_id": w, "best_crop": b"\xff\xd8pass-crop"})
        await redis.expire(pass_key, 60)
        await producer.send_and_wait(ids["alerts"], _alert(ids, w, ids["cam_b"], zb, f"op-{u}").SerializeToString(),
                                     key=w.encode())
        await b1.wait_for(w, 5)
        r = await dev.Adjudicate(officers_pb2.AdjudicateRequest(
            alert_id=w, officer_id=f"b1-{u}", outcome=officers_pb2.ADJUDICATION_OUTCOME_REJECTED, note="not him"))
        assert r.state == officers_pb2.ALERT_STATE_ADJUDICATED
        await asyncio.sleep(0.5)
        assert w not in a1.alert_ids + a2.alert_ids + ctrl.alert_ids
        assert officers.metric('lfr_alert_outcomes_total{outcome="confirmed"}') == 1
        assert officers.metric('lfr_alert_outcomes_total{outcome="rejected"}') == 1
        assert officers.metric(f'lfr_officers_available{{zone="{za}"}}') == 2

        # retention (8 s): X and W and their crops are purged; Y, confirmed into a case, is kept
        for gone in (x, w):
            await _until_status(dev, gone, None, 15)
        assert await redis.exists(f"lfr:alert:{x}") == 0 and await redis.exists(f"lfr:alert:{w}") == 0
        assert await redis.hget(pass_key, "best_crop") is None and await redis.hget(pass_key, "alert_id") == w.encode()
        kept = await dev.GetAlert(officers_pb2.GetAlertRequest(alert_id=y))
        assert kept.kept and kept.case_ref == "CASE-1" and await redis.ttl(f"lfr:alert:{y}") == -1

        records = await _audit(ids)
        by = [(r.action, r.subject_ids[0] if r.subject_ids else "", r.details.get("outcome", "")) for r in records]
        for expected in [("alert.route", x, ""), ("alert.escalate", x, ""), ("alert.unreachable", x, ""),
                         ("alert.acknowledge", y, ""), ("alert.adjudicate", y, "confirmed"), ("alert.keep", y, ""),
                         ("alert.adjudicate", w, "rejected"), ("alert.purge", x, ""), ("alert.purge", w, "")]:
            assert expected in by, (expected, by)
        assert [a for a in by if a[:2] == ("alert.escalate", x)].__len__() == 2
        assert [a for a in by if a[:2] == ("alert.adjudicate", y)].__len__() == 2, "both confirmations audited"
        assert not [a for a in by if a[:2] == ("alert.purge", y)]
        assert "Traceback" not in officers.tail()
    finally:
        for d in devices.values():
            await d.close()
        await channel.close()
        await producer.stop()
        officers.stop()


async def _until_status(dev: Any, alert_id: str, state: int | None, timeout_s: float) -> Any:
    """Poll GetAlert until the state (None: until NOT_FOUND, i.e. purged)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await dev.GetAlert(officers_pb2.GetAlertRequest(alert_id=alert_id))
            if state is not None and last.state == state:
                return last
        except grpc.aio.AioRpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise
            if state is None:
                return None
        await asyncio.sleep(0.1)
    raise AssertionError(f"{alert_id}: state {state} not reached; last {last}")


async def test_no_duplicate_alert_reaches_a_device_across_restarts(ids: dict[str, str], topics: None, redis: Any,
                                                                   tmp_path: Path) -> None:
    from aiokafka import AIOKafkaProducer

    u = ids["uid"]
    _cameras(tmp_path, ids)
    officers = _officers_service(ids, tmp_path, ack_timeout_s="60")
    alerts = Service("alerts", ALERTS_PORTS, {
        "LFR_ALERTS__MATCHES_TOPIC": ids["matches"], "LFR_ALERTS__ALERTS_TOPIC": ids["alerts"],
        "LFR_ALERTS__GROUP_ID": f"itest-alerts-{u}", "LFR_ALERTS__PASS_WINDOW_S": "60",
        "LFR_ALERTS__PASS_TTL_S": "120"}, tmp_path / "alerts.log")
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA, acks="all")
    alerts_topic = TopicReader(ids["alerts"])
    channel = aio_channel(f"127.0.0.1:{OFFICERS_PORTS[0]}")
    device = Device(OFFICERS_PORTS[0], f"dev-{u}")
    seq = 0

    async def match(subject: str) -> None:
        nonlocal seq
        seq += 1
        m = matches_pb2.MatchCandidate(
            observation_id=uuid.uuid4().hex, subject_id=subject, watchlist_id=f"wl-{u}", score=0.9, threshold=0.5,
            frame=common_pb2.FrameRef(camera_id=ids["cam_a"], zone=ids["zone_a"], deployment_id=f"op-{u}", seq=seq,
                                      capture_unix_ns=time.time_ns()),
            crop=common_pb2.Crop(jpeg=b"\xff\xd8crop", width=112, height=112),
            watchlist_image=common_pb2.ImageRef(watchlist_id=f"wl-{u}", subject_id=subject, jpeg=b"\xff\xd8enr"))
        await producer.send_and_wait(ids["matches"], m.SerializeToString(), key=ids["cam_a"].encode())

    try:
        officers.start()
        alerts.start()
        await producer.start()
        await alerts_topic.start()
        await officers.wait_serving()
        await alerts.wait_serving()
        await rostered(channel, f"o-{u}", [ids["zone_a"]], f"dev-{u}")
        await officers_pb2_grpc.OfficerServiceStub(channel).GoOnDuty(officers_pb2.GoOnDutyRequest(
            officer_id=f"o-{u}", zones=[ids["zone_a"]], device_id=f"dev-{u}"))
        device.connect()
        await asyncio.sleep(0.3)

        await match(f"p-{u}")
        await alerts_topic.wait_for(1)
        first = alerts_pb2.Alert.FromString(alerts_topic.values[0])
        got = await device.wait_for(first.alert_id, 10)
        assert got.alert.live_crop.jpeg == b"\xff\xd8crop" and got.alert.watchlist_image.jpeg == b"\xff\xd8enr"

        # the alerts service restarts mid-pass; the same alert also comes again (as after a crash
        # between the broker's ack and the pass's "emitted" mark)
        assert alerts.stop() == 0, alerts.tail()
        alerts.start()
        await alerts.wait_serving()
        await match(f"p-{u}")
        await producer.send_and_wait(ids["alerts"], alerts_topic.values[0], key=first.alert_id.encode())

        # the officers service restarts too, the device reconnects; meanwhile a new alert is routed to it
        await device.close()
        assert officers.stop() == 0, officers.tail()
        await match(f"q-{u}")  # raised while the device is offline
        officers.start()
        await officers.wait_serving()
        device.connect()
        await alerts_topic.wait_for(3)
        second = next(a for a in map(alerts_pb2.Alert.FromString, alerts_topic.values) if a.subject_id == f"q-{u}")
        await device.wait_for(second.alert_id, 15)
        await match(f"p-{u}")
        await asyncio.sleep(2.0)
        assert sorted(device.alert_ids) == sorted([first.alert_id, second.alert_id]), device.alert_ids
        assert "Traceback" not in officers.tail() + alerts.tail()
    finally:
        await device.close()
        await channel.close()
        await alerts_topic.stop()
        await producer.stop()
        for svc in (alerts, officers):
            svc.stop()
        await redis.delete(f"lfr:pass:{ids['cam_a']}:p-{u}", f"lfr:pass:{ids['cam_a']}:q-{u}")


async def test_officer_store_is_atomic_and_lapses_on_real_redis(ids: dict[str, str], redis: Any) -> None:
    """Concurrent writers on one officer leave the zone sets consistent; availability lapses at the TTL;
    the alert-creation script stores an alert exactly once."""
    from services.common.availability import (
        BUSY, available_count, camera_may_run, on_duty_officers, zone_available_key, zone_on_duty_key,
    )
    from services.officers.alert_store import AlertRecord, AlertStore
    from services.officers.state import OfficerStore, go_on_duty, heartbeat, set_status

    u, za, zb = ids["uid"], ids["zone_a"], ids["zone_b"]
    store = OfficerStore(redis, ttl_s=1.5)
    oid = f"o-{u}"
    await store.update(oid, lambda old, at: go_on_duty(oid, [za], "d", at_ms=at, ttl_ms=store.ttl_ms))
    assert await camera_may_run(redis, za, 1) and not await camera_may_run(redis, za, 2)

    def flip(i: int) -> Any:
        if i % 3 == 0:
            return lambda old, at: set_status(old, BUSY, at_ms=at, ttl_ms=store.ttl_ms)
        if i % 3 == 1:
            return lambda old, at: set_status(old, "available", at_ms=at, ttl_ms=store.ttl_ms)
        return lambda old, at: heartbeat(old, at_ms=at, ttl_ms=store.ttl_ms, zones=[za if i % 2 else zb])

    await asyncio.gather(*(store.update(oid, flip(i)) for i in range(30)))
    final = await store.get(oid)
    assert final is not None
    (zone,) = final.zones
    other = zb if zone == za else za
    assert await redis.zscore(zone_on_duty_key(zone), oid) is not None
    assert await redis.zscore(zone_on_duty_key(other), oid) is None, "left the old zone's sets"
    in_available = await redis.zscore(zone_available_key(zone), oid) is not None
    assert in_available == (final.status == "available"), "available set agrees with the status"
    assert await redis.zscore(zone_available_key(other), oid) is None

    await store.update(oid, lambda old, at: set_status(old, "available", at_ms=at, ttl_ms=store.ttl_ms))
    assert await available_count(redis, zone) == 1
    await asyncio.sleep(1.7)
    assert await available_count(redis, zone) == 0, "availability lapses at the TTL without a heartbeat"
    assert await on_duty_officers(redis, zone) == [] and await store.get(oid) is None

    alerts = AlertStore(redis)
    rec = AlertRecord(alert_id=f"a-{u}", zone=za, created_ms=1, retention_ms=int(time.time() * 1000) + 60_000)
    results = await asyncio.gather(*(alerts.create(b"payload", rec) for _ in range(5)))
    assert sorted(results) == [False] * 4 + [True]
    assert (await alerts.get(rec.alert_id)).level == -1 and await alerts.alert_bytes(rec.alert_id) == b"payload"
    await alerts.purge(rec, None)
    assert await redis.exists(f"lfr:alert:{rec.alert_id}") == 0
