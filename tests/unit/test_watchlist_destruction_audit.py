"""A destroyed watchlist is always audited: when the audit append fails after the watchlist was
marked closed (Kafka or the audit lock briefly unavailable), the record is kept and appended by the next
reaper round or a repeated close, once, never dropped; one failure does not hold back other destructions."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lfr.v1 import watchlist_pb2

from services.common import audit as audit_mod
from services.common.audit import AuditError
from services.watchlist.config import WatchlistSettings
from services.watchlist.service import CLOSED, EXPIRED, OPEN, WatchlistCore
from services.watchlist.store import Deletion


class FakeStore:
    def __init__(self, *watchlists: dict[str, Any]) -> None:
        self.rows = {w["watchlist_id"]: dict(w) for w in watchlists}

    def list_watchlists(self, expr: str) -> list[dict[str, Any]]:
        assert expr.startswith(f"state == {OPEN}")
        return [dict(w) for w in self.rows.values() if w["state"] == OPEN]

    def get_watchlist(self, watchlist_id: str) -> dict[str, Any] | None:
        return dict(self.rows[watchlist_id]) if watchlist_id in self.rows else None

    def subjects(self, watchlist_id: str) -> dict[str, Any]:
        return {"s1": object(), "s2": object()}

    def destroy_faces(self, expr: str) -> Deletion:
        return Deletion(count=4, erasure="vacuumed")

    def delete_faces(self, expr: str) -> int:
        return 0

    def put_watchlist(self, row: dict[str, Any]) -> None:
        self.rows[row["watchlist_id"]] = dict(row)


class FlakyAudit:
    """Fails the first ``failures`` appends as the real writer does when its lock cannot be taken."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.records: list[tuple[str, str, dict[str, str]]] = []

    async def record(self, action: str, *, actor: str, deployment_id: str = "", subject_ids: Any = (),
                     details: dict[str, str] | None = None, **_: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise AuditError("could not take the audit lock lfr:audit:lock within 10.0 s")
        self.records.append((action, subject_ids[0], dict(details or {})))


def _wl(watchlist_id: str) -> dict[str, Any]:
    return {"watchlist_id": watchlist_id, "name": "n", "deployment_id": "op-1", "authorisation_ref": "A-1",
            "authorising_officer": "supt", "purpose": "p", "criteria": "c", "valid_from_ns": 0, "valid_until_ns": 1,
            "state": OPEN, "created_ns": 0, "created_by": "manager", "closed_ns": 0, "close_reason": ""}


def _core(store: FakeStore, audit: FlakyAudit) -> WatchlistCore:
    return WatchlistCore(WatchlistSettings(), store=store, pipeline=None, audit=audit)  # type: ignore[arg-type]


def test_a_failed_expire_record_is_appended_by_the_next_round_once() -> None:
    store, audit = FakeStore(_wl("wl-a"), _wl("wl-b")), FlakyAudit(failures=3)
    core = _core(store, audit)
    with pytest.raises(AuditError):
        asyncio.run(core.reap_once())
    # both destroyed although the audit failed for the first (and its retry in the same round)
    assert {w["state"] for w in store.rows.values()} == {EXPIRED}
    assert asyncio.run(core.reap_once()) == 0  # nothing left to destroy; the kept records are appended
    assert sorted((a, w) for a, w, _ in audit.records) == [(audit_mod.WATCHLIST_EXPIRE, "wl-a"),
                                                          (audit_mod.WATCHLIST_EXPIRE, "wl-b")]
    assert all(d == {"subjects_deleted": "2", "vectors_deleted": "4", "reason": "expired",
                     "storage_erasure": "vacuumed"} for _, _, d in audit.records)
    asyncio.run(core.reap_once())
    assert len(audit.records) == 2  # never twice


def test_a_repeated_close_appends_the_record_the_first_close_could_not() -> None:
    store, audit = FakeStore(_wl("wl-c")), FlakyAudit(failures=1)
    core = _core(store, audit)
    req = watchlist_pb2.CloseWatchlistRequest(watchlist_id="wl-c", reason="operation over")
    with pytest.raises(AuditError):
        asyncio.run(core.close(req, "manager", None))
    assert store.rows["wl-c"]["state"] == CLOSED and audit.records == []
    asyncio.run(core.close(req, "manager", None))
    assert [(a, w, d["reason"], d["vectors_deleted"]) for a, w, d in audit.records] == [
        (audit_mod.WATCHLIST_CLOSE, "wl-c", "operation over", "4")]
    asyncio.run(core.close(req, "manager", None))
    assert len(audit.records) == 1
