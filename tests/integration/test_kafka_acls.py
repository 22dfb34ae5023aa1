"""Per-service Kafka ACLs (services/common/acls.py) enforced by a real broker.

A private broker of the real local Kafka component (same jars, same server.properties as
`lfr stack up`, on free ports and a temporary state dir, so the shared stack is untouched) starts
with the StandardAuthorizer, creates the topics, registers the SCRAM users and creates the ACLs.
Proves: the open PLAINTEXT listener still does everything (the rest of the suite relies on it);
over SCRAM the recognizer may read lfr.frames.v1 but not lfr.faces.v1, the watchlist service may
not produce frames, the officers user may not join the alerts service's consumer group; ACL
creation is idempotent. Locally, resources nobody declared (tests' private topics) stay open.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from rig_support import free_ports
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import GroupAuthorizationFailedError, KafkaError, TopicAuthorizationFailedError

from services.stack import kafka_acls, kafka_scram
from services.stack.base import StackPaths
from services.stack.kafka import KafkaComponent, KafkaSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory):
    shared = StackPaths.default(Path(__file__).resolve().parents[2])
    paths = StackPaths(cache=shared.cache, state=tmp_path_factory.mktemp("kafka-acl-state"))
    k = KafkaComponent(paths, KafkaSettings(kafka_heap="384m"))
    k.broker_port, k.controller_port, k.scram_port = free_ports(3)
    if not k.libs.is_dir():
        pytest.fail("the Kafka jars are not installed — fix: lfr stack install --only kafka")
    try:
        health = k.start(timeout=240)
        assert health.healthy, health.detail
        yield k, health
    finally:
        k.stop()


def _sasl(k: KafkaComponent, service: str) -> dict[str, str]:
    password = kafka_scram.password_file(k.paths.state, service).read_text().strip()
    return {"bootstrap_servers": f"127.0.0.1:{k.scram_port}", "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": kafka_scram.user_name(service),
            "sasl_plain_password": password, "request_timeout_ms": 10000}


async def _read(creds: dict[str, str], topic: str, group: str | None = None) -> None:
    """Fetch once from partition 0 of ``topic`` (assigned, or subscribed in ``group``)."""
    consumer = AIOKafkaConsumer(**creds, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        if group is None:
            consumer.assign([TopicPartition(topic, 0)])
        else:
            consumer.subscribe([topic])
        for _ in range(10):
            await consumer.getmany(timeout_ms=500)
            if group is not None and consumer.assignment():
                return
        if group is not None:
            raise AssertionError(f"no partition assigned in group {group} after 5 s")
        await consumer.position(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


async def _produce(creds: dict[str, str], topic: str) -> None:
    producer = AIOKafkaProducer(**creds, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, b"acl probe", key=b"acl"), 20)
    finally:
        await producer.stop()


def test_broker_started_with_acls(broker) -> None:
    k, health = broker
    assert f"{len(kafka_acls.creations())} ACLs for {len(kafka_acls.ACLS)} service users" in health.detail
    assert asyncio.run(kafka_acls.ensure_acls(k.bootstrap)) == len(kafka_acls.creations())  # idempotent


def test_plaintext_listener_keeps_full_rights(broker) -> None:
    k, _ = broker
    plain = {"bootstrap_servers": k.bootstrap}
    asyncio.run(_produce(plain, "lfr.dlq.v1"))
    asyncio.run(_read(plain, "lfr.faces.v1"))


def test_service_users_are_held_to_their_data_flow(broker) -> None:
    k, _ = broker
    asyncio.run(_read(_sasl(k, "recognizer"), "lfr.frames.v1"))  # its input: allowed
    with pytest.raises(TopicAuthorizationFailedError):
        asyncio.run(_read(_sasl(k, "recognizer"), "lfr.faces.v1"))  # the matcher's input
    with pytest.raises(KafkaError) as e:
        asyncio.run(_produce(_sasl(k, "watchlist"), "lfr.frames.v1"))  # only ingest writes frames
    assert "Authorization" in type(e.value).__name__, repr(e.value)
    with pytest.raises(GroupAuthorizationFailedError):
        asyncio.run(_read(_sasl(k, "officers"), "lfr.alerts.v1", group="lfr-alerts"))  # another's group
    asyncio.run(_read(_sasl(k, "officers"), "lfr.alerts.v1", group="lfr-officers"))  # its own group


def test_undeclared_resources_stay_open_locally(broker) -> None:
    k, _ = broker
    topic = f"lfr-test-acl-{uuid.uuid4().hex[:8]}"
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=k.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 1, 1)])
        finally:
            await admin.close()

    asyncio.run(create())
    asyncio.run(_produce(_sasl(k, "recognizer"), topic))
