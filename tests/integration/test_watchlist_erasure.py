"""CloseWatchlist and RemoveSubject destroy the BYTES, not only the rows: after the
call, the data directory of the Milvus engine holds none of the destroyed faces'
image references (read straight from its files), while the faces of a watchlist
that stays open are still there (so the check is not vacuous).

The engine is the stack's own component (services/stack/milvus.py: milvus-lite's
native engine, its SQLite file put in auto_vacuum=FULL before start), run on a
private port with a private state dir so that its data file is this test's to
read; the watchlist service (subprocess, real Kafka/Redis/Triton of the stack)
is pointed at it, with ``local_engine_file`` set as the local launcher sets it
(the service VACUUMs the file after each delete: without it, auto_vacuum alone
left 2 of 42 image refs of a closed watchlist in the unused part of a page)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lfr.v1 import common_pb2, watchlist_pb2, watchlist_pb2_grpc

from watchlist_support import watchlist_service
from services.stack.base import StackPaths
from services.stack.milvus import MilvusComponent
from services.face.embedder import EMBEDDING_DIM

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / ".." / "shared" / "data" / "faces"
MILVUS_PORT = 19631  # a private engine (the stack's is 19530)
GRPC_PORT, METRICS_PORT = 51155, 10155  # test_watchlist.py uses 51055/10105


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusComponent]:
    comp = MilvusComponent(StackPaths(cache=StackPaths.default(REPO).cache,
                                      state=tmp_path_factory.mktemp("milvus-state")))
    comp.port = MILVUS_PORT
    comp.start()
    try:
        yield comp
    finally:
        comp.stop()


@pytest.fixture(scope="module")
def service(engine: MilvusComponent, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[watchlist_pb2_grpc.WatchlistServiceStub]:
    log = tmp_path_factory.mktemp("watchlist") / "watchlist.log"
    env = {"LFR_MILVUS__URI": engine.uri, "LFR_WATCHLIST__LOCAL_ENGINE_FILE": str(engine.db_file())}
    with watchlist_service(GRPC_PORT, METRICS_PORT, log, env) as stub:
        yield stub


def _on_disk(engine: MilvusComponent, marker: str) -> int:
    """How many times ``marker`` occurs in the engine's data directory (every file in it)."""
    needle = marker.encode()
    return sum(p.read_bytes().count(needle) for p in engine.paths.data_dir(engine.name).rglob("*") if p.is_file())


def _create(stub: watchlist_pb2_grpc.WatchlistServiceStub) -> str:
    now = time.time_ns()
    return stub.CreateWatchlist(watchlist_pb2.CreateWatchlistRequest(
        name="erasure", deployment_id=f"op-erase-{uuid.uuid4().hex[:8]}", authorisation_ref="AUTH-T-2",
        authorising_officer="Supt Test", purpose="integration test", criteria="test subjects",
        valid_from_unix_ns=now - 10**9, valid_until_unix_ns=now + 3600 * 10**9), timeout=10).watchlist.watchlist_id


def _enrol(stub: watchlist_pb2_grpc.WatchlistServiceStub, wl: str, subject: str, marker: str, *files: str) -> None:
    resp = stub.EnrolSubject(watchlist_pb2.EnrolSubjectRequest(
        watchlist_id=wl, subject_id=subject, category=common_pb2.SUBJECT_CATEGORY_WANTED,
        images=[watchlist_pb2.EnrolImage(image=(FACES / f).read_bytes(), source_ref=f"{marker}/{f}") for f in files]),
        timeout=60)
    assert all(r.accepted for r in resp.results)


def _bulk(stub: watchlist_pb2_grpc.WatchlistServiceStub, wl: str, marker: str, n: int) -> None:
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(n, EMBEDDING_DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    resp = stub.BulkImport(iter([watchlist_pb2.BulkImportRequest(watchlist_id=wl, subjects=[
        watchlist_pb2.SyntheticSubject(subject_id=f"syn-{i}", category=common_pb2.SUBJECT_CATEGORY_MISSING,
                                       embedding=v.tolist(), source_ref=f"{marker}/syn-{i}")
        for i, v in enumerate(vecs)])]), timeout=30)
    assert resp.imported == n


def test_close_leaves_no_bytes_of_the_watchlist_in_the_data_dir(
        engine: MilvusComponent, service: watchlist_pb2_grpc.WatchlistServiceStub) -> None:
    keep, gone = _create(service), _create(service)
    mark_keep, mark_gone = f"keep-{uuid.uuid4().hex}", f"gone-{uuid.uuid4().hex}"
    # rows of both watchlists interleaved in insertion order, as enrolments of two operations would be
    _enrol(service, keep, "subject-biden", mark_keep, "biden_1.jpg")
    _enrol(service, gone, "subject-obama", mark_gone, "obama_1.jpg", "obama_2.jpg")
    _bulk(service, gone, mark_gone, 40)
    _enrol(service, keep, "subject-kit", mark_keep, "kit_harington_1.jpg")
    assert _on_disk(engine, mark_gone) >= 42, "the faces must be on disk before the close (else the check is vacuous)"
    assert _on_disk(engine, mark_keep) >= 2

    closed = service.CloseWatchlist(watchlist_pb2.CloseWatchlistRequest(watchlist_id=gone, reason="operation over"),
                                    timeout=30)
    assert closed.vectors_deleted == 42

    assert _on_disk(engine, mark_gone) == 0, "bytes of the closed watchlist's faces are still in the data dir"
    # the open watchlist's faces are still there (once per live row at least: stale copies may go too)
    assert _on_disk(engine, mark_keep) >= 2
    got = service.GetWatchlist(watchlist_pb2.GetWatchlistRequest(watchlist_id=keep), timeout=10).watchlist
    assert (got.subject_count, got.image_count) == (2, 2)


def test_remove_subject_leaves_no_bytes_of_the_subject(
        engine: MilvusComponent, service: watchlist_pb2_grpc.WatchlistServiceStub) -> None:
    wl = _create(service)
    mark_keep, mark_gone = f"keep-{uuid.uuid4().hex}", f"gone-{uuid.uuid4().hex}"
    _enrol(service, wl, "subject-biden", mark_keep, "biden_1.jpg")
    _enrol(service, wl, "subject-obama", mark_gone, "obama_1.jpg", "obama_2.jpg")
    _enrol(service, wl, "subject-kit", mark_keep, "kit_harington_1.jpg")
    assert _on_disk(engine, mark_gone) >= 2

    resp = service.RemoveSubject(watchlist_pb2.RemoveSubjectRequest(watchlist_id=wl, subject_id="subject-obama",
                                                                    reason="no longer wanted"), timeout=30)
    assert resp.vectors_deleted == 2

    assert _on_disk(engine, mark_gone) == 0, "bytes of the removed subject's faces are still in the data dir"
    assert _on_disk(engine, mark_keep) >= 2
    got = service.GetWatchlist(watchlist_pb2.GetWatchlistRequest(watchlist_id=wl), timeout=10).watchlist
    assert (got.subject_count, got.image_count) == (2, 2)
