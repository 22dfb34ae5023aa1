"""The audit hash chain: verification names the first broken record, refuses records that are unsigned,
signed by another service's key or of an action their service may not write, notices records missing at the
head or the tail (signed checkpoints), and is never green on an empty log; records refuse non-hash bytes."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from lfr.v1 import audit_pb2

from services.common.audit import (
    AuditError, AuditSigner, Checkpoint, CheckpointStore, Keyring, build_record, compute_hash, may_write, sha256,
    verify_chain,
)
from services.common.pki import CertPaths, ensure_audit_key

WATCHLIST = AuditSigner("watchlist", ed25519.Ed25519PrivateKey.generate())
OFFICERS = AuditSigner("officers", ed25519.Ed25519PrivateKey.generate())
KEYRING = Keyring.of(WATCHLIST, OFFICERS)
TOPIC = "lfr.audit.v1"


def chain(n: int, start: int = 0, prev: bytes = b"") -> list[audit_pb2.AuditRecord]:
    out: list[audit_pb2.AuditRecord] = []
    for i in range(start, start + n):
        rec = build_record(seq=i, prev_hash=prev, action="watchlist.enrol", actor="officer-1", service="watchlist",
                           deployment_id="op-1", subject_ids=["wl-1", f"s{i}"], subject_hashes=[sha256(bytes([i]))],
                           details={"images": "1"}, signer=WATCHLIST)
        out.append(rec)
        prev = rec.hash
    return out


def as_log(records: list[audit_pb2.AuditRecord], first_offset: int = 0) -> list[tuple[int, bytes]]:
    return [(first_offset + i, r.SerializeToString()) for i, r in enumerate(records)]


def checkpoint(rec: audit_pb2.AuditRecord, signer: AuditSigner = WATCHLIST, kind: str = "progress") -> Checkpoint:
    return Checkpoint(topic=TOPIC, seq=rec.seq, hash=bytes(rec.hash), ts_unix_ns=1, service=signer.service,
                      kind=kind).signed(signer)


def test_intact_chain_verifies() -> None:
    result = verify_chain(as_log(chain(5)), keyring=KEYRING)
    assert result.ok and result.records == 5 and result.last_seq == 4


def test_empty_log_fails_unless_new() -> None:
    empty = verify_chain([], keyring=KEYRING)
    assert not empty.ok and "empty" in empty.reason and "--new" in empty.reason
    assert verify_chain([], keyring=KEYRING, allow_empty=True).ok
    wiped = verify_chain([], keyring=KEYRING, allow_empty=True, start_offset=6)
    assert not wiped.ok and wiped.missing == 6


def test_hash_covers_prev_hash_content_and_key_id_not_signature() -> None:
    a, b = chain(2)
    assert b.prev_hash == a.hash and compute_hash(b) == b.hash
    c = audit_pb2.AuditRecord()
    c.CopyFrom(b)
    c.details["images"] = "2"
    assert compute_hash(c) != b.hash
    c.CopyFrom(b)
    c.key_id = OFFICERS.key_id
    assert compute_hash(c) != b.hash
    c.CopyFrom(b)
    c.signature = b"x" * 64
    assert compute_hash(c) == b.hash


def test_modified_record_is_named() -> None:
    recs = chain(5)
    recs[2].actor = "someone-else"  # hash left as it was
    result = verify_chain(as_log(recs), keyring=KEYRING)
    assert not result.ok
    assert (result.broken_offset, result.broken_seq) == (2, 2)
    assert "modified" in result.reason and "offset 2 (seq 2)" in result.summary()


def test_rehashed_record_breaks_the_next_link() -> None:
    recs = chain(5)
    recs[2].actor = "someone-else"
    recs[2].hash = compute_hash(recs[2])  # a forger recomputes this record's hash...
    result = verify_chain(as_log(recs), keyring=KEYRING)
    assert (result.broken_offset, result.broken_seq) == (2, 2)  # ...without the key, its signature fails
    assert "bad signature" in result.reason
    recs[2].signature = WATCHLIST.sign(b"lfr.audit.record.v1\n" + recs[2].hash)  # with the key: the next link
    result = verify_chain(as_log(recs), keyring=KEYRING)
    assert (result.broken_offset, result.broken_seq) == (3, 3) and "prev_hash" in result.reason


def test_deleted_record_is_a_gap() -> None:
    recs = chain(5)
    del recs[1]
    result = verify_chain(as_log(recs), keyring=KEYRING)
    assert not result.ok and result.broken_seq == 2 and "seq 2 where 1" in result.reason


def test_garbage_is_named() -> None:
    log = as_log(chain(3))
    log[1] = (1, b"\xff\xff\xff")
    result = verify_chain(log, keyring=KEYRING)
    assert not result.ok and result.broken_offset == 1


def _append(recs: list[audit_pb2.AuditRecord], action: str, signer: AuditSigner | None, service: str
            ) -> list[audit_pb2.AuditRecord]:
    last = recs[-1]
    forged = build_record(seq=last.seq + 1, prev_hash=bytes(last.hash), action=action, actor="manager",
                          service=service, subject_ids=["wl-1"], signer=signer)
    return [*recs, forged]


@pytest.mark.parametrize(("signer", "service", "action", "words"), [
    (None, "watchlist", "watchlist.close", "unsigned"),
    (OFFICERS, "watchlist", "watchlist.close", "signed by officers's key"),
    (OFFICERS, "officers", "watchlist.close", "officers may not write 'watchlist.close'"),
    (AuditSigner("watchlist", ed25519.Ed25519PrivateKey.generate()), "watchlist", "watchlist.close", "unknown key"),
])
def test_forged_records_are_named(signer: AuditSigner | None, service: str, action: str, words: str) -> None:
    """A writer with Write on the topic appends a record that chains and hashes correctly: still refused."""
    recs = _append(chain(3), action, signer, service)
    result = verify_chain(as_log(recs), keyring=KEYRING)
    assert not result.ok and (result.broken_offset, result.broken_seq) == (3, 3), result
    assert words in result.reason and "forged" in result.reason


def test_resigned_record_with_swapped_signature_fails() -> None:
    recs = chain(3)
    recs[1].signature = recs[2].signature  # a valid signature, of another hash
    result = verify_chain(as_log(recs), keyring=KEYRING)
    assert not result.ok and result.broken_seq == 1 and "bad signature" in result.reason


def test_who_may_write_what() -> None:
    assert may_write("watchlist", "watchlist.close") and not may_write("officers", "watchlist.close")
    assert may_write("ingest", "camera.on") and not may_write("officers", "camera.on")
    assert may_write("officers", "alert.adjudicate") and may_write("officers", "officer.on_duty")
    assert all(may_write(s, "api.refused") for s in ("watchlist", "ingest", "matcher", "recognizer", "unknown"))
    assert not may_write("matcher", "watchlist.create")


def test_head_truncation_fails_with_the_count() -> None:
    recs = chain(6)
    result = verify_chain(as_log(recs[3:], first_offset=3), keyring=KEYRING, start_offset=3)
    assert not result.ok and result.missing == 3 and (result.broken_offset, result.broken_seq) == (3, 3)
    assert "3 records missing at the head" in result.reason


def test_head_truncation_covered_by_an_archive_checkpoint_passes() -> None:
    recs = chain(6)
    cps = [checkpoint(recs[2], kind="archive")]
    result = verify_chain(as_log(recs[3:], first_offset=3), keyring=KEYRING, start_offset=3, checkpoints=cps)
    assert result.ok and result.records == 3 and result.last_seq == 5
    progress = [checkpoint(recs[2])]  # a writer's routine checkpoint right before the cut excuses nothing
    assert not verify_chain(as_log(recs[3:], first_offset=3), keyring=KEYRING, start_offset=3, checkpoints=progress).ok
    other = [checkpoint(recs[1], kind="archive")]  # a checkpoint that does not end where the log starts
    assert not verify_chain(as_log(recs[3:], first_offset=3), keyring=KEYRING, start_offset=3, checkpoints=other).ok


def test_head_truncation_with_a_reset_seq_fails() -> None:
    recs = chain(3)
    result = verify_chain(as_log(recs, first_offset=4), keyring=KEYRING, start_offset=4)
    assert not result.ok and result.missing == 4


def test_tail_cut_before_a_checkpoint_fails() -> None:
    recs = chain(8)
    cps = [checkpoint(recs[0]), checkpoint(recs[7])]
    assert verify_chain(as_log(recs), keyring=KEYRING, checkpoints=cps).ok
    result = verify_chain(as_log(recs[:5]), keyring=KEYRING, checkpoints=cps)
    assert not result.ok and result.missing == 3 and result.broken_offset is None
    assert "ends at seq 4" in result.reason and "checkpoint seq 7 signed by watchlist" in result.reason
    assert "FAILED" in result.summary()
    gone = verify_chain([], keyring=KEYRING, checkpoints=cps, allow_empty=True)
    assert not gone.ok and gone.missing == 8


def test_recreated_topic_differs_from_the_checkpoint() -> None:
    old = chain(4)
    new: list[audit_pb2.AuditRecord] = []
    for i in range(6):  # the topic deleted and re-created: same seqs, other records
        new.append(build_record(seq=i, prev_hash=bytes(new[-1].hash) if new else b"", action="watchlist.enrol",
                                actor="someone", service="watchlist", signer=WATCHLIST))
    result = verify_chain(as_log(new), keyring=KEYRING, checkpoints=[checkpoint(old[3])])
    assert not result.ok and result.broken_seq == 3 and "re-created" in result.reason


def test_checkpoints_round_trip_and_a_bad_one_is_reported(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path)
    recs = chain(3)
    store.append(checkpoint(recs[2]))
    store.append(checkpoint(recs[1], OFFICERS))
    good, problems = store.load(TOPIC, KEYRING)
    assert sorted(c.seq for c in good) == [1, 2] and problems == []
    forged = dataclasses.replace(checkpoint(recs[2]), seq=40)  # signature of another statement
    store.append(forged)
    (store.file(TOPIC, "watchlist")).open("a").write("not json\n")
    good, problems = store.load(TOPIC, KEYRING)
    assert len(good) == 2 and len(problems) == 2
    assert any("checkpoint seq 40" in p and "bad signature" in p for p in problems)
    result = verify_chain(as_log(recs), keyring=KEYRING, checkpoints=good, checkpoint_problems=problems)
    assert not result.ok and "2 checkpoint(s) do not hold" in result.reason


def test_checkpoint_of_another_service_key_is_refused(tmp_path: Path) -> None:
    cp = Checkpoint(topic=TOPIC, seq=0, hash=b"\x00" * 32, ts_unix_ns=1, service="officers").signed(WATCHLIST)
    cp = dataclasses.replace(cp, service="officers")  # claims officers, signed (over "watchlist") by watchlist
    store = CheckpointStore(tmp_path)
    store.append(cp)
    good, problems = store.load(TOPIC, KEYRING)
    assert good == [] and len(problems) == 1


def test_replicas_of_a_service_checkpoint_into_their_own_files_and_load_maps_by_signature(tmp_path: Path) -> None:
    recs = chain(4)
    pod_a = CheckpointStore(tmp_path, "lfr-watchlist-7c9d-a1b2c")
    pod_b = CheckpointStore(tmp_path, "lfr-watchlist-7c9d-x9y8z")
    pod_a.append(checkpoint(recs[1]))
    pod_b.append(checkpoint(recs[3]))
    CheckpointStore(tmp_path, "lfr-officers-55f-q").append(checkpoint(recs[2], OFFICERS))
    files = sorted(p.name for p in (tmp_path / TOPIC).iterdir())
    assert files == ["officers.lfr-officers-55f-q.checkpoints", "watchlist.lfr-watchlist-7c9d-a1b2c.checkpoints",
                     "watchlist.lfr-watchlist-7c9d-x9y8z.checkpoints"]  # no two replicas append to one file
    # verification (no instance of its own) reads every file of the topic; a file's name proves nothing:
    # watchlist's checkpoints renamed as if officers wrote them still count as watchlist's
    pod_b.file(TOPIC, "watchlist").rename(tmp_path / TOPIC / "officers.renamed.checkpoints")
    good, problems = CheckpointStore(tmp_path).load(TOPIC, KEYRING)
    assert problems == [] and sorted((c.service, c.seq) for c in good) == [
        ("officers", 2), ("watchlist", 1), ("watchlist", 3)]
    assert verify_chain(as_log(recs), keyring=KEYRING, checkpoints=good).ok
    cut = verify_chain(as_log(recs[:3]), keyring=KEYRING, checkpoints=good)  # the newest replica's seq is missing
    assert not cut.ok and cut.missing == 1
    for bad in ("../escape", "a/b", ".hidden", "x" * 300):
        with pytest.raises(AuditError, match="not a host name"):
            CheckpointStore(tmp_path, bad)


def test_writer_from_settings_checkpoints_as_its_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.common.audit import AuditWriter
    from services.common.settings import AuditSettings, KafkaSettings

    key = tmp_path / "signing.key"
    paths = CertPaths(tmp_path / "certs")
    ensure_audit_key(paths, "ingest")
    key.write_bytes(paths.audit_key("ingest").read_bytes())
    settings = AuditSettings(signing_key_file=key, checkpoint_dir=tmp_path / "cp")
    monkeypatch.setattr(os, "uname", lambda: os.uname_result(("Linux", "lfr-ingest-6d4-abcde", "", "", "")))
    writer = AuditWriter.from_settings(KafkaSettings(), "ingest", settings)
    own = writer._checkpoints.file(TOPIC, "ingest")  # noqa: SLF001
    assert own == tmp_path / "cp" / TOPIC / "ingest.lfr-ingest-6d4-abcde.checkpoints"
    named = AuditWriter.from_settings(KafkaSettings(), "ingest", settings, instance="ingest-2")
    assert named._checkpoints.file(TOPIC, "ingest").name == "ingest.ingest-2.checkpoints"  # noqa: SLF001


def test_dev_pki_audit_keys_are_idempotent_and_private(tmp_path: Path) -> None:
    paths = CertPaths(tmp_path)
    assert ensure_audit_key(paths, "watchlist") is True
    key = paths.audit_key("watchlist").read_bytes()
    assert os.stat(paths.audit_key("watchlist")).st_mode & 0o777 == 0o600
    paths.audit_pub("watchlist").unlink()
    assert ensure_audit_key(paths, "watchlist") is False
    assert paths.audit_key("watchlist").read_bytes() == key
    signer = AuditSigner.load("watchlist", paths.audit_key("watchlist"))
    assert signer.key_id in Keyring.load(paths.audit_keyring).keys
    with pytest.raises(AuditError, match="cannot be read"):
        AuditSigner.load("ingest", paths.audit_key("ingest"))
    with pytest.raises(AuditError, match="does not exist"):
        Keyring.load(tmp_path / "nowhere")


def test_records_refuse_raw_bytes_and_long_details() -> None:
    with pytest.raises(AuditError):
        build_record(seq=0, prev_hash=b"", action="x", actor="a", service="s", subject_hashes=[b"\x00" * 4096])
    with pytest.raises(AuditError):
        build_record(seq=0, prev_hash=b"", action="x", actor="a", service="s", details={"image": "A" * 10_000})


class _Broker:
    """A one-partition log for AuditWriter (fake reader and producer): what it appends, in order."""

    def __init__(self) -> None:
        self.values: list[bytes] = []

    async def end_offsets(self, tps: list[object]) -> dict[object, int]:
        return {tps[0]: len(self.values)}

    async def send_and_wait(self, topic: str, value: bytes, **kw: object) -> object:
        import types

        self.values.append(value)
        return types.SimpleNamespace(offset=len(self.values) - 1)

    async def stop(self) -> None:
        return None


def test_writer_signs_and_checkpoints_first_every_n_after_m_seconds_and_at_close(tmp_path: Path) -> None:
    import asyncio

    from services.common.audit import AuditWriter
    from services.common.settings import KafkaSettings

    async def run() -> tuple[list[int], _Broker]:
        broker = _Broker()
        store = CheckpointStore(tmp_path)
        writer = AuditWriter(KafkaSettings(), WATCHLIST, topic=TOPIC, checkpoints=store, checkpoint_every_records=3,
                             checkpoint_every_s=0.2)
        writer._reader, writer._producer, writer._tp = broker, broker, "tp"  # noqa: SLF001 (no broker here)
        await writer.start()
        for _ in range(7):  # seq 0 (first append), 3, 6 (every 3)
            await writer.record("watchlist.create", actor="manager")
        await writer.record("watchlist.create", actor="manager")  # seq 7: by the timer
        await asyncio.sleep(0.5)
        await writer.record("watchlist.create", actor="manager")  # seq 8: at close
        await writer.close()
        good, problems = store.load(TOPIC, KEYRING)
        assert problems == []
        return [c.seq for c in good], broker

    seqs, broker = asyncio.run(run())
    assert seqs == [0, 3, 6, 7, 8]
    checkpoints, _ = CheckpointStore(tmp_path).load(TOPIC, KEYRING)
    result = verify_chain(list(enumerate(broker.values)), keyring=KEYRING, checkpoints=checkpoints)
    assert result.ok and result.records == 9 and result.checkpoint_seq == 8, result
    cut = verify_chain(list(enumerate(broker.values[:6])), keyring=KEYRING, checkpoints=checkpoints)
    assert not cut.ok and cut.missing == 3
