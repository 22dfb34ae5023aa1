"""ReembedWatchlist moves an open watchlist to the active embedder only from retained enrolment images, and
says what to do otherwise; nothing is lost when it is refused (the old faces stay until the new ones are in)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import numpy as np
import pytest

from lfr.v1 import watchlist_pb2
from services.common import audit as audit_mod
from services.watchlist import enrol
from services.watchlist.config import WatchlistOptions, WatchlistSettings
from services.watchlist.service import OPEN, Refusal, WatchlistCore
from services.watchlist.store import Deletion

OLD, NEW = "lfr_watchlist_faces", "lfr_watchlist_faces__w600k_mbf"


class Face:
    aligned = np.full((112, 112, 3), 128, np.uint8)


def _b64() -> str:
    return enrol.aligned_jpeg_b64(Face(), 90)  # type: ignore[arg-type]


class FakeStore:
    """Two faces collections; the watchlist's rows in the old embedder's."""

    embedder, collection = "w600k_mbf", NEW

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.others = {"mobilefacenet512": OLD}
        self.rows = {OLD: rows, NEW: []}
        self.wl = {"watchlist_id": "wl", "name": "n", "deployment_id": "op", "authorisation_ref": "A",
                   "authorising_officer": "o", "purpose": "p", "criteria": "c", "valid_from_ns": 0,
                   "valid_until_ns": 4 * 10**18, "state": OPEN, "created_ns": 0, "created_by": "m",
                   "closed_ns": 0, "close_reason": ""}

    def get_watchlist(self, watchlist_id: str) -> dict[str, Any] | None:
        return dict(self.wl) if watchlist_id == "wl" else None

    def refresh_collections(self) -> dict[str, str]:
        return self.others

    def embedder_of(self, watchlist_id: str) -> str:
        return "mobilefacenet512" if self.rows[OLD] else self.embedder

    def face_rows(self, collection: str, watchlist_id: str, fields: list[str]) -> list[dict[str, Any]]:
        return [{k: r[k] for k in fields} for r in self.rows[collection]]

    def destroy_faces(self, expr: str, collections: list[str] | None = None) -> Deletion:
        n = 0
        for c in collections or [NEW, OLD]:
            n += len(self.rows[c])
            self.rows[c] = []
        return Deletion(n, "vacuumed" if n else "nothing deleted")

    def insert_faces(self, rows: list[dict[str, Any]], flush: bool = True) -> list[int]:
        self.rows[NEW].extend(rows)
        return list(range(len(rows)))

    def subjects(self, watchlist_id: str) -> dict[str, Any]:
        return {}

    def delete_ids(self, ids: list[int]) -> None:
        keep = set(range(len(self.rows[NEW]))) - set(ids)
        self.rows[NEW] = [r for i, r in enumerate(self.rows[NEW]) if i in keep]


class FakeEmbedder:
    async def embed(self, aligned: list[np.ndarray]) -> np.ndarray:
        assert all(a.shape == (112, 112, 3) for a in aligned)
        return np.tile(np.eye(1, 512, dtype=np.float32), (len(aligned), 1))


class FakePipeline:
    embedder = FakeEmbedder()


class Audit:
    def __init__(self, fail: bool = False) -> None:
        self.records: list[tuple[str, dict[str, str]]] = []
        self.fail = fail

    async def record(self, action: str, **kw: Any) -> None:
        if self.fail:
            raise audit_mod.AuditError("audit log unavailable")
        self.records.append((action, dict(kw.get("details") or {})))


def _row(subject: str, image: str) -> dict[str, Any]:
    return {"subject_id": subject, "category": "wanted", "image_ref": f"{subject}.jpg", "image_jpeg_b64": image}


def _core(store: FakeStore, audit: Audit, **opts: Any) -> WatchlistCore:
    return WatchlistCore(WatchlistSettings(watchlist=WatchlistOptions(**opts)), store=store,  # type: ignore[arg-type]
                         pipeline=FakePipeline(), audit=audit)  # type: ignore[arg-type]


def _reembed(core: WatchlistCore, reason: str = "moved to w600k_mbf") -> watchlist_pb2.ReembedWatchlistResponse:
    return asyncio.run(core.reembed(watchlist_pb2.ReembedWatchlistRequest(watchlist_id="wl", reason=reason),
                                    "manager", None))


def test_moves_every_face_then_destroys_the_old_ones_audited() -> None:
    store, audit = FakeStore([_row("a", _b64()), _row("a", _b64()), _row("b", _b64())]), Audit()
    done = _reembed(_core(store, audit))
    assert ((done.from_embedder, done.to_embedder, done.subjects, done.vectors)
            == ("mobilefacenet512", "w600k_mbf", 2, 3))
    assert store.rows[OLD] == [] and len(store.rows[NEW]) == 3
    assert {r["image_jpeg_b64"] for r in store.rows[NEW]} == {_b64()}  # the review image travels with the face
    assert audit.records == [(audit_mod.WATCHLIST_REEMBED, {
        "from_embedder": "mobilefacenet512", "to_embedder": "w600k_mbf", "subjects": "2", "vectors": "3",
        "reason": "moved to w600k_mbf", "old_vectors_to_delete": "3"})]
    again = _reembed(_core(store, audit))
    assert again.vectors == 0 and len(audit.records) == 1


@pytest.mark.parametrize("case", ["bulk-imported", "retention", "no reason"])
def test_refused_with_what_to_do_and_nothing_moved(case: str) -> None:
    rows = [_row("a", _b64()), _row("synthetic-1", "")] if case == "bulk-imported" else [_row("a", _b64())]
    store, audit = FakeStore(rows), Audit()
    core = _core(store, audit, reembed_from_retained_images=case != "retention")
    with pytest.raises(Refusal) as e:
        _reembed(core, reason="" if case == "no reason" else "switch")
    want = {"bulk-imported": (grpc.StatusCode.FAILED_PRECONDITION, "synthetic-1; BulkImport vectors keep none"),
            "retention": (grpc.StatusCode.FAILED_PRECONDITION, "reembed_from_retained_images is false"),
            "no reason": (grpc.StatusCode.INVALID_ARGUMENT, "reason is required")}[case]
    assert e.value.code == want[0] and want[1] in e.value.message, e.value.message
    assert store.rows[OLD] == rows and store.rows[NEW] == [] and audit.records == []


def test_an_unrecorded_move_is_undone() -> None:
    """The audit record goes before the old vectors: when it cannot be written the new ones are removed and the
    watchlist stays where it was (a retry moves it, recorded)."""
    rows = [_row("a", _b64()), _row("b", _b64())]
    store = FakeStore(list(rows))
    with pytest.raises(audit_mod.AuditError):
        _reembed(_core(store, Audit(fail=True)))
    assert store.rows[OLD] == rows and store.rows[NEW] == []
    audit = Audit()
    assert _reembed(_core(store, audit)).vectors == 2 and len(audit.records) == 1


async def test_a_close_waits_for_a_move_of_the_same_watchlist() -> None:
    """One change at a time per watchlist: a close that arrives during a move runs after it, so no face the
    move inserts outlives the close."""
    from services.watchlist.service import WatchlistLocks

    locks, order = WatchlistLocks(wait_s=5), []

    async def change(name: str, seconds: float) -> None:
        async with locks.hold("wl"):
            order.append(f"{name} start")
            await asyncio.sleep(seconds)
            order.append(f"{name} end")

    await asyncio.gather(change("move", 0.2), change("close", 0))
    assert order == ["move start", "move end", "close start", "close end"]
    order.clear()  # three at once: each waits for the one before (the lock is not forgotten while one waits)
    await asyncio.gather(change("a", 0.05), change("b", 0.05), change("c", 0))
    assert order == ["a start", "a end", "b start", "b end", "c start", "c end"] and locks._local == {}
    busy = WatchlistLocks(wait_s=0.1)
    async with busy.hold("wl"):
        with pytest.raises(Refusal) as e:
            async with busy.hold("wl"):
                pass
    assert e.value.code == grpc.StatusCode.UNAVAILABLE and "retry" in e.value.message
