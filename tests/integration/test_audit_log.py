"""The audit log on the real broker, attacked the way an insider would: the real lfr.audit.v1 verifies; a copy
with one record altered (Kafka logs cannot be edited in place) fails, naming it; so do records deleted at the head
(DeleteRecords), a log cut at the tail or deleted and re-created (signed checkpoints outside Kafka), records
appended by a credential with Write on the topic (unsigned, another service's key, an action that service may not
write), and an empty log (unless declared new)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lfr.v1 import audit_pb2
from rig_support import free_port, free_ports
from topics_support import delete_or_fail, private_topics_blocking

from services.common.audit import AuditSigner, AuditWriter, CheckpointStore, build_record, read_records, sha256
from services.common.pki import CertPaths, ensure_audit_key
from services.common.settings import KafkaSettings
from services.common.topics import TopicSpec, ensure_topics

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KAFKA = KafkaSettings(bootstrap="127.0.0.1:9092")


def lfr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "services.cli.main", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def _spec(name: str) -> TopicSpec:
    return TopicSpec(name=name, partitions=1, retention_ms=3_600_000, segment_ms=3_600_000)


async def _recreate(name: str) -> None:
    """What a rogue Kafka administrator does to hide a history: delete the topic, create it again."""
    await delete_or_fail([name], KAFKA.bootstrap, wait_s=20)
    await ensure_topics(KAFKA.bootstrap, (_spec(name),))


@pytest.fixture
def topics() -> Iterator[tuple[str, str]]:
    tag = "".join(c for c in uuid.uuid4().hex if c.isalpha())[:8] or "x"
    names = (f"lfr.test.audit.{tag}.v1", f"lfr.test.tampered.{tag}.v1")
    with private_topics_blocking([_spec(n) for n in names], KAFKA.bootstrap, wait_s=20):
        yield names


@pytest.fixture
def trust(tmp_path: Path) -> tuple[CertPaths, Path]:
    """A keyring of the services' audit keys (as `lfr certs init` makes them) and a checkpoint directory."""
    paths = CertPaths(tmp_path / "certs")
    for service in ("ingest", "watchlist", "officers"):
        ensure_audit_key(paths, service)
    return paths, tmp_path / "checkpoints"


def verify(topic: str, trust: tuple[CertPaths, Path], *extra: str) -> subprocess.CompletedProcess[str]:
    paths, checkpoints = trust
    return lfr("audit", "verify", "--topic", topic, "--keyring", str(paths.audit_keyring),
               "--checkpoints", str(checkpoints), *extra)


def signer(trust: tuple[CertPaths, Path], service: str) -> AuditSigner:
    return AuditSigner.load(service, trust[0].audit_key(service))


def test_real_audit_log_verifies() -> None:
    """The stack's own lfr.audit.v1 with the local keyring and checkpoints. On a fresh stack (CI) nothing has
    written to it yet: verify must then refuse to call the empty log good, and pass only when told it is new."""
    run = lfr("audit", "verify")
    if "the log is empty" in run.stdout:
        assert run.returncode == 1, run.stdout + run.stderr
        new = lfr("audit", "verify", "--new")
        assert new.returncode == 0, new.stdout + new.stderr
        assert "lfr.audit.v1: audit chain OK: 0 records" in new.stdout, new.stdout
        return
    assert run.returncode == 0, run.stdout + run.stderr
    assert "lfr.audit.v1: audit chain OK" in run.stdout


async def _write_chain(topic: str, n: int, trust: tuple[CertPaths, Path]) -> None:
    """Two ingest replicas (one key, the service's) append to one chain under the Redis lock."""
    from services.common.clients import connect_redis
    from services.common.settings import RedisSettings

    redis = await connect_redis(RedisSettings())
    writers = [AuditWriter(KAFKA, signer(trust, "ingest"), topic=topic, redis=redis,
                           checkpoints=CheckpointStore(trust[1])) for _ in range(2)]
    try:
        for w in writers:
            await w.start()

        async def write(w: AuditWriter, k: int, who: str) -> None:
            for i in range(k):
                await w.record("camera.on", actor=who, deployment_id="op-audit", subject_ids=[f"cam-{i}"],
                               subject_hashes=[sha256(f"{who}{i}".encode())])

        await asyncio.gather(write(writers[0], n // 2, "a"), write(writers[1], n - n // 2, "b"))
    finally:
        for w in writers:
            await w.close()
        await redis.aclose()


async def _copy(src: str, dst: str, alter_offset: int = -1, limit: int | None = None) -> None:
    from services.common.kafka import start_producer

    producer = await start_producer(KAFKA, "audit-test")
    values = [v async for _, v in read_records(KAFKA, src)]
    try:
        for offset, value in enumerate(values[:limit]):
            if offset == alter_offset:
                rec = audit_pb2.AuditRecord.FromString(value or b"")
                rec.actor = "forger"  # hash left as it was
                value = rec.SerializeToString()
            await producer.send_and_wait(dst, value, partition=0)
    finally:
        await producer.stop()


def test_verify_names_the_tampered_record(topics: tuple[str, str], trust: tuple[CertPaths, Path]) -> None:
    good, bad = topics
    asyncio.run(_write_chain(good, 8, trust))
    ok = verify(good, trust)
    assert ok.returncode == 0 and "audit chain OK: 8 records, last seq 7" in ok.stdout, ok.stdout + ok.stderr

    asyncio.run(_copy(good, bad, alter_offset=5))
    broken = verify(bad, trust)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "BROKEN at offset 5 (seq 5)" in broken.stdout and "modified" in broken.stdout, broken.stdout

    tail = lfr("audit", "tail", "--topic", bad, "-n", "3")
    assert tail.returncode == 0 and tail.stdout.count("camera.on") == 3, tail.stdout


async def _delete_head(topic: str, before: int) -> None:
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA.bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topic, 0): RecordsToDelete(before_offset=before)})
    finally:
        await admin.close()


def test_head_deletion_is_noticed(topics: tuple[str, str], trust: tuple[CertPaths, Path]) -> None:
    """DeleteRecords on the first 3 of 6 records: not 'OK: 0 records' (aiokafka's reset to 'latest')."""
    good, _ = topics
    asyncio.run(_write_chain(good, 6, trust))
    asyncio.run(_delete_head(good, 3))
    run = verify(good, trust)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "BROKEN at offset 3 (seq 3)" in run.stdout and "3 records missing at the head" in run.stdout, run.stdout


def test_tail_cut_is_noticed(topics: tuple[str, str], trust: tuple[CertPaths, Path]) -> None:
    """The topic replaced by a copy of its first 5 records: the writers' checkpoints (outside Kafka) say 8."""
    good, scratch = topics
    asyncio.run(_write_chain(good, 8, trust))
    asyncio.run(_copy(good, scratch))
    asyncio.run(_recreate(good))
    asyncio.run(_copy(scratch, good, limit=5))
    run = verify(good, trust)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "ends at seq 4" in run.stdout and "checkpoint seq 7 signed by ingest" in run.stdout, run.stdout
    assert "3 records missing at the tail" in run.stdout, run.stdout


def test_deleted_and_recreated_topic_is_noticed(topics: tuple[str, str], trust: tuple[CertPaths, Path]) -> None:
    """Deleted, created again, and written anew by the real writers: the old checkpoints no longer match."""
    good, _ = topics
    asyncio.run(_write_chain(good, 4, trust))
    asyncio.run(_recreate(good))
    empty = verify(good, trust, "--new")  # a rogue admin cannot pass the wiped log off as new
    assert empty.returncode == 1 and "the log is empty" in empty.stdout and "checkpoint seq 3" in empty.stdout, (
        empty.stdout + empty.stderr)
    asyncio.run(_write_chain(good, 6, trust))
    run = verify(good, trust)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "(seq 0)" in run.stdout and "re-created" in run.stdout, run.stdout


async def _forge(topic: str, action: str, service: str, forger: AuditSigner | None) -> None:
    """A credential with Write on the topic appends a plausible record: right seq, prev_hash and hash."""
    from services.common.kafka import start_producer

    last = audit_pb2.AuditRecord.FromString([v async for _, v in read_records(KAFKA, topic)][-1] or b"")
    rec = build_record(seq=last.seq + 1, prev_hash=bytes(last.hash), action=action, actor="manager",
                       service=service, deployment_id="op-audit", subject_ids=["wl-closed-early"], signer=forger)
    producer = await start_producer(KAFKA, "audit-forger")
    try:
        await producer.send_and_wait(topic, rec.SerializeToString(), partition=0)
    finally:
        await producer.stop()


@pytest.mark.parametrize(("service", "key", "words"), [
    ("watchlist", None, "'watchlist.close' record unsigned"),
    ("watchlist", "officers", "'watchlist.close' record names service 'watchlist' but is signed by officers's key"),
    ("officers", "officers", "service officers may not write 'watchlist.close'"),
])
def test_forged_record_is_named(topics: tuple[str, str], trust: tuple[CertPaths, Path], service: str,
                                key: str | None, words: str) -> None:
    good, _ = topics
    asyncio.run(_write_chain(good, 4, trust))
    asyncio.run(_forge(good, "watchlist.close", service, signer(trust, key) if key else None))
    run = verify(good, trust)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "BROKEN at offset 4 (seq 4)" in run.stdout and words in run.stdout, run.stdout


def test_empty_topic_fails_unless_new(topics: tuple[str, str], trust: tuple[CertPaths, Path]) -> None:
    good, _ = topics
    run = verify(good, trust)
    assert run.returncode == 1 and "the log is empty" in run.stdout and "--new" in run.stdout, run.stdout + run.stderr
    new = verify(good, trust, "--new")
    assert new.returncode == 0 and "audit chain OK: 0 records" in new.stdout, new.stdout + new.stderr
    missing = verify("lfr.test.audit.nosuchtopic.v1", trust)
    assert missing.returncode != 0 and "does not exist" in missing.stdout + missing.stderr


@contextlib.contextmanager
def _officers(audit: str, alerts: str, grpc_port: int, log: Path, **env_extra: str) -> Iterator[None]:
    """The real officers service (mTLS with the dev PKI), auditing to ``audit``; stopped with SIGTERM (exit 0)."""
    from services.common.grpc_client import dev_server_env

    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    env |= {"LFR_GRPC__PORT": str(grpc_port), "LFR_METRICS__PORT": str(free_port()),
            "LFR_OFFICERS__AUDIT_TOPIC": audit, "LFR_OFFICERS__ALERTS_TOPIC": alerts,
            "LFR_OFFICERS__GROUP_ID": f"itest-audit-{audit}", **dev_server_env("officers", audit_topic=audit),
            **env_extra}
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.officers"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log.read_text()[-3000:]


def _refused(grpc_port: int, log: Path) -> None:
    """An auditor's GoOnDuty: refused PERMISSION_DENIED, which the service audits as api.refused."""
    import grpc

    from lfr.v1 import officers_pb2, officers_pb2_grpc
    from services.common.grpc_client import ClientTls, sync_channel

    channel = sync_channel(f"127.0.0.1:{grpc_port}", tls=ClientTls.for_identity("auditor"))
    try:
        grpc.channel_ready_future(channel).result(timeout=60)
        code = None
        deadline = time.monotonic() + 30
        while code != grpc.StatusCode.PERMISSION_DENIED and time.monotonic() < deadline:
            try:
                officers_pb2_grpc.OfficerServiceStub(channel).GoOnDuty(
                    officers_pb2.GoOnDutyRequest(officer_id="auditor"), timeout=10)
            except grpc.RpcError as e:
                code = e.code()
            time.sleep(0.2)
        assert code == grpc.StatusCode.PERMISSION_DENIED, log.read_text()[-3000:]
    finally:
        channel.close()


def test_a_real_service_signs_what_it_audits(topics: tuple[str, str], tmp_path: Path) -> None:
    """The officers service, started as the launchers start it (its key from the dev PKI), audits a refused call;
    its records and checkpoints verify against the dev keyring, and a record forged after them does not."""
    audit, alerts = topics
    log = tmp_path / "officers.log"
    port = free_port()
    with _officers(audit, alerts, port, log):
        _refused(port, log)
    run = lfr("audit", "verify", "--topic", audit)  # the dev keyring and checkpoint directory
    assert run.returncode == 0 and "audit chain OK" in run.stdout, run.stdout + run.stderr + log.read_text()[-3000:]
    asyncio.run(_forge(audit, "watchlist.close", "watchlist", None))
    forged = lfr("audit", "verify", "--topic", audit)
    assert forged.returncode == 1 and "unsigned" in forged.stdout, forged.stdout + forged.stderr


def _production_layout(tmp_path: Path) -> tuple[Path, Path]:
    """k8s/secrets/create_secrets.py run on an operator's SRC: (the officers Secret's audit-signing.key as the
    projected volume mounts it, the lfr-audit-keyring ConfigMap as the watchlist pod mounts it)."""
    import base64
    import importlib.util

    spec = importlib.util.spec_from_file_location("create_secrets", REPO / "k8s" / "secrets" / "create_secrets.py")
    assert spec is not None and spec.loader is not None
    cs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cs)
    src = tmp_path / "src"
    (src / "redis").mkdir(parents=True)
    (src / "grpc-ca.crt").write_text("not used here")
    for name in ("tls.crt", "tls.key", "ca.crt"):
        (src / "redis" / name).write_text("not used here")
    for service in cs.SERVICES:
        (src / service).mkdir()
        for name in ("grpc-tls.crt", "grpc-tls.key", "probe-client.crt", "probe-client.key"):
            (src / service / name).write_text("not used here")
    (src / "console").mkdir()  # the console's Secret is built too: a users file of its own (not the dev one)
    for name in ("grpc-client.crt", "grpc-client.key"):
        (src / "console" / name).write_text("not used here")
    from services.console.users import hash_password

    (src / "console" / "users.yaml").write_text(
        f"users:\n- username: ann\n  password: '{hash_password('pw-ann', n=2**10)}'\n  roles: [operator]\n")
    items = cs.build(src, "lfr")["items"]
    (secret,) = [i for i in items if i["metadata"]["name"] == "lfr-officers-secrets"]
    (keyring,) = [i for i in items if i["kind"] == "ConfigMap" and i["metadata"]["name"] == "lfr-audit-keyring"]
    key = tmp_path / "mounted" / "audit" / "signing.key"
    key.parent.mkdir(parents=True)
    key.write_bytes(base64.b64decode(secret["data"]["audit-signing.key"]))
    key.chmod(0o440)
    ring = tmp_path / "audit-keyring"
    ring.mkdir()
    for name, pem in keyring["data"].items():
        (ring / name).write_text(pem)
    return key, ring


def _records(verify_output: str) -> int:
    """The record count of `lfr audit verify`'s OK line."""
    return int(verify_output.split("audit chain OK:", 1)[1].split("records", 1)[0].strip())


def test_replicas_deployed_as_in_production_sign_with_their_key_into_their_own_checkpoint_files(
        topics: tuple[str, str], tmp_path: Path) -> None:
    """Two replicas of the real officers service, configured as the k8s prod overlay configures them (their key
    from create_secrets.py via LFR_AUDIT__SIGNING_KEY_FILE, one shared LFR_AUDIT__CHECKPOINT_DIR, each its own
    instance name), audit refused calls: each keeps its own checkpoint file, the log verifies against the rendered
    keyring ConfigMap and not against the dev keyring, and a rogue Kafka administrator who deletes and re-creates
    the topic is caught by the replicas' checkpoints."""
    audit, alerts = topics
    key, ring = _production_layout(tmp_path)
    shared = tmp_path / "audit-checkpoints"  # the ReadWriteMany claim lfr-audit-checkpoints
    prod = {"LFR_AUDIT__SIGNING_KEY_FILE": str(key), "LFR_AUDIT__CHECKPOINT_DIR": str(shared)}
    logs = [tmp_path / "officers-a.log", tmp_path / "officers-b.log"]
    port_a, port_b = free_ports(2)
    with _officers(audit, alerts, port_a, logs[0], LFR_INSTANCE="lfr-officers-5d9c-aaaaa", **prod), \
            _officers(audit, alerts, port_b, logs[1], LFR_INSTANCE="lfr-officers-5d9c-bbbbb", **prod):
        _refused(port_a, logs[0])
        _refused(port_b, logs[1])
    files = sorted(p.name for p in (shared / audit).iterdir())
    assert files == ["officers.lfr-officers-5d9c-aaaaa.checkpoints", "officers.lfr-officers-5d9c-bbbbb.checkpoints"]

    def verify_prod(*keyring: str) -> subprocess.CompletedProcess[str]:
        return lfr("audit", "verify", "--topic", audit, "--checkpoints", str(shared), *keyring)

    run = verify_prod("--keyring", str(ring))
    # at least the two refusals: a replica may also audit an alert whose escalation deadline another suite's pipeline
    # left in the shared Redis (alert.unreachable), which the chain carries like any record
    assert run.returncode == 0 and "audit chain OK:" in run.stdout and _records(run.stdout) >= 2, (
        run.stdout + run.stderr + logs[0].read_text()[-2000:] + logs[1].read_text()[-2000:])
    dev = verify_prod()  # the dev PKI's keyring does not hold the production key
    assert dev.returncode != 0 and "unknown key" in dev.stdout + dev.stderr, dev.stdout + dev.stderr

    asyncio.run(_recreate(audit))  # the rogue Kafka administrator hides the history
    gone = verify_prod("--keyring", str(ring))
    assert gone.returncode == 1 and "missing at the tail" in gone.stdout, gone.stdout + gone.stderr
