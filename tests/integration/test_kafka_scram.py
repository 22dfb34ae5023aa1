"""Services authenticate to Kafka with SCRAM-SHA-512, over the real local broker.

`lfr stack up --only kafka` opens a SASL_PLAINTEXT listener on 127.0.0.1:9094 and registers one
SCRAM user per service, its password generated into .lfr/secrets/kafka/<user>.password (0600).
Proves: the right credentials produce and consume on 9094; a wrong password and an unknown user are
refused; the matcher, started with only its password *file*, reaches gRPC health SERVING and
consumes and produces through the SCRAM listener (a bad record on its input topic comes back as a
dead letter on its DLQ topic), and its log holds no password.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from topics_support import KafkaTopics, run_private

from services.common.grpc_client import dev_server_env, sync_channel
from services.stack import kafka_scram

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

REPO = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("LFR_STATE", REPO / ".lfr"))
PLAIN = "127.0.0.1:9092"
SCRAM = f"127.0.0.1:{kafka_scram.SCRAM_PORT}"
GRPC_PORT, METRICS_PORT = 52053, 10103  # off the brief's ports: a running `make up` does not collide


def _scram_listener_or_fail() -> None:
    try:
        socket.create_connection(("127.0.0.1", kafka_scram.SCRAM_PORT), timeout=2).close()
    except OSError:
        pytest.fail("no SCRAM listener on 127.0.0.1:9094 — fix: `lfr stack down --only kafka && "
                    "lfr stack up --only kafka` (the broker predates the listener)")


def _password(service: str) -> str:
    f = kafka_scram.password_file(STATE, service)
    assert f.is_file(), f"{f} missing: `lfr stack up --only kafka` writes it"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.parent.stat().st_mode) == 0o700
    return f.read_text().strip()


def _sasl(user: str, password: str) -> dict[str, str]:
    return {"bootstrap_servers": SCRAM, "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": user, "sasl_plain_password": password}


async def _consume(topic: str, creds: dict[str, str], want_key: bytes, timeout_s: float) -> list[object]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, **creds, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            got = [r for rs in batch.values() for r in rs if r.key == want_key]
            if got:
                return got
        return []
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
def topics() -> dict[str, str]:
    _scram_listener_or_fail()
    suffix = uuid.uuid4().hex[:8]
    names = {"roundtrip": f"lfr.test.scram.{suffix}", "faces": f"lfr.test.scram-faces.{suffix}",
             "dlq": f"lfr.test.scram-dlq.{suffix}", "matches": f"lfr.test.scram-matches.{suffix}"}
    made = KafkaTopics(PLAIN)
    run_private(made.bare(names.values()))
    yield names
    run_private(made.delete())


def test_right_credentials_produce_and_consume_on_the_scram_listener(topics: dict[str, str]) -> None:
    from aiokafka import AIOKafkaProducer

    creds = _sasl("lfr-ingest", _password("ingest"))

    async def go() -> list[object]:
        producer = AIOKafkaProducer(**creds, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topics["roundtrip"], b"hello over scram", key=b"k1")
        finally:
            await producer.stop()
        return await _consume(topics["roundtrip"], _sasl("lfr-recognizer", _password("recognizer")), b"k1", 20)

    got = asyncio.run(go())
    assert [r.value for r in got] == [b"hello over scram"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("user,password", [("lfr-matcher", "not-the-password"), ("lfr-nobody", "whatever"),
                                           ("lfr-matcher", None)])
def test_wrong_credentials_are_refused(user: str, password: str | None, topics: dict[str, str]) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaConnectionError

    # None: another service's real password for this user
    creds = _sasl(user, password if password is not None else _password("ingest"))

    async def go() -> None:
        producer = AIOKafkaProducer(**creds, request_timeout_ms=5000)
        try:
            await producer.start()
            await producer.send_and_wait(topics["roundtrip"], b"must not land", key=b"refused")
        finally:
            await producer.stop()

    with pytest.raises(KafkaConnectionError):
        asyncio.run(go())
    assert asyncio.run(_consume(topics["roundtrip"], _sasl("lfr-audit", _password("audit")), b"refused", 3)) == []


def test_matcher_authenticates_with_its_password_file_and_consumes_and_produces(
    topics: dict[str, str], tmp_path: Path
) -> None:
    password = _password("matcher")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    env.update({
        "LFR_GRPC__PORT": str(GRPC_PORT), "LFR_METRICS__PORT": str(METRICS_PORT),
        **dev_server_env("matcher"),
        **kafka_scram.scram_env(STATE, "matcher"),
        "LFR_MATCHER__FACES_TOPIC": topics["faces"], "LFR_MATCHER__MATCHES_TOPIC": topics["matches"],
        "LFR_MATCHER__GROUP_ID": f"lfr-test-scram-{uuid.uuid4().hex[:6]}",
        "LFR_KAFKA__DLQ_TOPIC": topics["dlq"], "LFR_KAFKA__AUTO_OFFSET_RESET": "earliest",
    })
    assert password not in "".join(env.values())  # only the file's path travels
    log = tmp_path / "matcher.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.matcher"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        status = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            with sync_channel(f"127.0.0.1:{GRPC_PORT}") as channel:
                try:
                    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                                       timeout=1).status
                except grpc.RpcError:
                    status = None
            if status == health_pb2.HealthCheckResponse.SERVING:
                break
            time.sleep(0.25)
        assert proc.poll() is None, f"matcher exited ({proc.returncode}):\n{log.read_text()[-3000:]}"
        assert status == health_pb2.HealthCheckResponse.SERVING, log.read_text()[-3000:]

        # a record that is no FaceObservation: the matcher must consume it (SCRAM) and dead-letter it (SCRAM)
        key = f"scram-{uuid.uuid4().hex[:8]}".encode()

        async def go() -> list[object]:
            from aiokafka import AIOKafkaProducer

            producer = AIOKafkaProducer(**_sasl("lfr-recognizer", _password("recognizer")), acks="all")
            await producer.start()
            try:
                await producer.send_and_wait(topics["faces"], b"\xff not a protobuf \x00", key=key)
            finally:
                await producer.stop()
            return await _consume(topics["dlq"], _sasl("lfr-audit", _password("audit")), key, 45)

        letters = asyncio.run(go())
        assert letters, f"no dead letter from the matcher over SCRAM:\n{log.read_text()[-3000:]}"
        from lfr.v1 import dlq_pb2

        letter = dlq_pb2.DeadLetter.FromString(letters[0].value)  # type: ignore[attr-defined]
        assert letter.source_topic == topics["faces"] and letter.source_key == key and letter.service == "matcher"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    text = log.read_text()
    assert password not in text
    assert "Traceback" not in text, text[-3000:]
