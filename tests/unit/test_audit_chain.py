"""The audit hash chain: verification names the first broken record; records refuse non-hash bytes."""

from __future__ import annotations

import pytest

from lfr.v1 import audit_pb2

from services.common.audit import AuditError, build_record, compute_hash, sha256, verify_chain


def chain(n: int) -> list[audit_pb2.AuditRecord]:
    out: list[audit_pb2.AuditRecord] = []
    prev = b""
    for i in range(n):
        rec = build_record(seq=i, prev_hash=prev, action="watchlist.enrol", actor="officer-1", service="test",
                           deployment_id="op-1", subject_ids=["wl-1", f"s{i}"], subject_hashes=[sha256(bytes([i]))],
                           details={"images": "1"})
        out.append(rec)
        prev = rec.hash
    return out


def as_log(records: list[audit_pb2.AuditRecord]) -> list[tuple[int, bytes]]:
    return [(100 + i, r.SerializeToString()) for i, r in enumerate(records)]


def test_intact_chain_verifies() -> None:
    result = verify_chain(as_log(chain(5)))
    assert result.ok and result.records == 5 and result.last_seq == 4


def test_empty_log_verifies() -> None:
    assert verify_chain([]).ok


def test_hash_covers_prev_hash_and_content() -> None:
    a, b = chain(2)
    assert b.prev_hash == a.hash and compute_hash(b) == b.hash
    c = audit_pb2.AuditRecord()
    c.CopyFrom(b)
    c.details["images"] = "2"
    assert compute_hash(c) != b.hash


def test_modified_record_is_named() -> None:
    recs = chain(5)
    recs[2].actor = "someone-else"  # hash left as it was
    result = verify_chain(as_log(recs))
    assert not result.ok
    assert (result.broken_offset, result.broken_seq) == (102, 2)
    assert "modified" in result.reason and "offset 102 (seq 2)" in result.summary()


def test_rehashed_record_breaks_the_next_link() -> None:
    recs = chain(5)
    recs[2].actor = "someone-else"
    recs[2].hash = compute_hash(recs[2])  # a forger recomputes this record's hash...
    result = verify_chain(as_log(recs))
    assert (result.broken_offset, result.broken_seq) == (103, 3)  # ...and the next record no longer chains
    assert "prev_hash" in result.reason


def test_deleted_record_is_a_gap() -> None:
    recs = chain(5)
    del recs[1]
    result = verify_chain(as_log(recs))
    assert not result.ok and result.broken_seq == 2 and "seq 2 where 1" in result.reason


def test_garbage_is_named() -> None:
    log = as_log(chain(3))
    log[1] = (101, b"\xff\xff\xff")
    result = verify_chain(log)
    assert not result.ok and result.broken_offset == 101


def test_records_refuse_raw_bytes_and_long_details() -> None:
    with pytest.raises(AuditError):
        build_record(seq=0, prev_hash=b"", action="x", actor="a", service="s", subject_hashes=[b"\x00" * 4096])
    with pytest.raises(AuditError):
        build_record(seq=0, prev_hash=b"", action="x", actor="a", service="s", details={"image": "A" * 10_000})
