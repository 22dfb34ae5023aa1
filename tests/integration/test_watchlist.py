"""The watchlist service over the real stack (Kafka, Redis, Milvus, Triton): the
service runs as a subprocess on a test port; faces from ../shared/data/faces go
through the real detector/quality gate/embedder on Triton."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from lfr.v1 import audit_pb2, common_pb2, watchlist_pb2, watchlist_pb2_grpc
from watchlist_support import watchlist_service

from services.face.embedder import EMBEDDING_DIM

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / ".." / "shared" / "data" / "faces"
GRPC_PORT, METRICS_PORT = 51055, 10105  # the brief's 50055/9105 + 1000: no clash with `make up`
REAPER_INTERVAL_S = 1.0
MILVUS_URI = "http://127.0.0.1:19530"
BOOTSTRAP = "127.0.0.1:9092"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[watchlist_pb2_grpc.WatchlistServiceStub]:
    log = tmp_path_factory.mktemp("watchlist") / "watchlist.log"
    with watchlist_service(GRPC_PORT, METRICS_PORT, log, {"LFR_WATCHLIST__REAPER_INTERVAL_S": str(REAPER_INTERVAL_S)},
                           no_tracebacks=True) as stub:
        yield stub


@pytest.fixture(scope="module")
def milvus() -> Iterator[object]:
    from services.common.clients import milvus_client

    client = milvus_client(MILVUS_URI)
    yield client
    client.close()


def _create(stub: watchlist_pb2_grpc.WatchlistServiceStub, deployment: str, until_s: float = 3600,
            **overrides: object) -> watchlist_pb2.Watchlist:
    now = time.time_ns()
    fields = dict(name="test", deployment_id=deployment, authorisation_ref="AUTH-T-1", authorising_officer="Supt Test",
                  purpose="integration test", criteria="test subjects", valid_from_unix_ns=now - 10**9,
                  valid_until_unix_ns=now + int(until_s * 1e9))
    fields.update(overrides)
    return stub.CreateWatchlist(watchlist_pb2.CreateWatchlistRequest(**fields), timeout=10).watchlist


def _enrol(stub: watchlist_pb2_grpc.WatchlistServiceStub, wl: str, subject: str,
           *files: str) -> watchlist_pb2.EnrolSubjectResponse:
    return stub.EnrolSubject(watchlist_pb2.EnrolSubjectRequest(
        watchlist_id=wl, subject_id=subject, category=common_pb2.SUBJECT_CATEGORY_WANTED,
        images=[watchlist_pb2.EnrolImage(image=(FACES / f).read_bytes(), source_ref=f"custody/{f}") for f in files]),
        timeout=60)


def _embedding(name: str) -> np.ndarray:
    from services.common.triton_client import TritonClient
    from services.face.pipeline import FacePipeline
    from services.watchlist.enrol import decode_image

    async def run() -> np.ndarray:
        async with TritonClient() as client:
            faces = (await FacePipeline(client).analyse([decode_image((FACES / name).read_bytes())]))[0]
        assert len(faces) == 1 and faces[0].embedding is not None
        return faces[0].embedding

    return asyncio.run(run())


def _count(milvus: object, wl: str) -> int:
    from services.common.faces_schema import COLLECTION, watchlist_filter

    rows = milvus.query(COLLECTION, filter=watchlist_filter(wl), output_fields=["count(*)"])  # type: ignore[attr-defined]
    return int(rows[0]["count(*)"])


def _deployment() -> str:
    return f"op-test-{uuid.uuid4().hex[:8]}"


def _audit_records(watchlist_id: str) -> list[audit_pb2.AuditRecord]:
    from services.common.audit import read_records
    from services.common.settings import KafkaSettings

    async def run() -> list[audit_pb2.AuditRecord]:
        out = []
        async for _, value in read_records(KafkaSettings(bootstrap=BOOTSTRAP)):
            rec = audit_pb2.AuditRecord.FromString(value or b"")
            if watchlist_id in rec.subject_ids:
                out.append(rec)
        return out

    return asyncio.run(run())


def _audit_actions(watchlist_id: str) -> list[str]:
    return [rec.action for rec in _audit_records(watchlist_id)]


def test_create_without_authorisation_is_invalid_argument(service: watchlist_pb2_grpc.WatchlistServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as e:
        _create(service, _deployment(), authorisation_ref="")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "authorisation_ref" in e.value.details()


def test_enrol_then_search_finds_the_subject_once(service: watchlist_pb2_grpc.WatchlistServiceStub,
                                                 milvus: object) -> None:
    from services.common.faces_search import search_active
    from services.face.embedders import DEFAULT_EMBEDDER, calibrated_threshold

    deployment = _deployment()
    wl = _create(service, deployment)
    resp = _enrol(service, wl.watchlist_id, "subject-obama", "obama_1.jpg", "obama_2.jpg")
    assert [r.accepted for r in resp.results] == [True, True]
    assert resp.subject.image_count == 2
    _enrol(service, wl.watchlist_id, "subject-biden", "biden_1.jpg")

    got = service.GetWatchlist(watchlist_pb2.GetWatchlistRequest(watchlist_id=wl.watchlist_id, include_subjects=True),
                               timeout=10)
    assert (got.watchlist.subject_count, got.watchlist.image_count) == (2, 3)
    assert got.watchlist.state == watchlist_pb2.WATCHLIST_STATE_ACTIVE

    probe = _embedding("obama_3.jpg")  # another photo of the same person
    hits = search_active(milvus, probe, deployment, int(time.time()), limit=5)[0]
    assert hits[0].subject_id == "subject-obama" and hits[0].watchlist_id == wl.watchlist_id
    assert hits[0].score >= calibrated_threshold(DEFAULT_EMBEDDER)
    assert [h.subject_id for h in hits].count("subject-obama") == 1  # two images, one hit
    assert all(h.score < calibrated_threshold(DEFAULT_EMBEDDER) for h in hits[1:])
    # as the matcher asks (min_score = its threshold): ids and scores first, the fields of passing rows after
    threshold = calibrated_threshold(DEFAULT_EMBEDDER)
    best = search_active(milvus, probe, deployment, int(time.time()), limit=1, min_score=threshold)[0]
    assert [(h.subject_id, h.watchlist_id) for h in best] == [("subject-obama", wl.watchlist_id)]
    assert best[0].score == pytest.approx(hits[0].score, abs=1e-5) and best[0].row_id == hits[0].row_id
    stranger = _embedding("rose_leslie_1.jpg")  # not enrolled
    assert search_active(milvus, stranger, deployment, int(time.time()), limit=1,
                         min_score=calibrated_threshold(DEFAULT_EMBEDDER)) == [[]]
    # deployment-scoped and time-scoped
    assert search_active(milvus, probe, _deployment(), int(time.time()), limit=5) == [[]]
    assert search_active(milvus, probe, deployment, int(time.time()) + 7200, limit=5) == [[]]

    # close destroys the vectors and the subjects at once
    closed = service.CloseWatchlist(watchlist_pb2.CloseWatchlistRequest(watchlist_id=wl.watchlist_id,
                                                                        reason="operation over"), timeout=10)
    assert (closed.subjects_deleted, closed.vectors_deleted) == (2, 3)
    assert closed.watchlist.state == watchlist_pb2.WATCHLIST_STATE_CLOSED
    assert _count(milvus, wl.watchlist_id) == 0
    assert search_active(milvus, probe, deployment, int(time.time()), limit=5) == [[]]
    got = service.GetWatchlist(watchlist_pb2.GetWatchlistRequest(watchlist_id=wl.watchlist_id, include_subjects=True),
                               timeout=10)
    assert got.watchlist.subject_count == 0 and not got.subjects
    with pytest.raises(grpc.RpcError) as e:
        _enrol(service, wl.watchlist_id, "late", "biden_2.jpg")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    records = _audit_records(wl.watchlist_id)
    assert [r.action for r in records] == ["watchlist.create", "watchlist.enrol", "watchlist.enrol", "watchlist.close"]
    # what the engine did with the deleted faces' bytes is on the record: this service runs on the local
    # engine without its file (no VACUUM), and that engine cannot compact (tests/unit/test_store_compaction.py)
    assert records[-1].details["storage_erasure"] == "compaction unsupported"
    assert records[-1].details["vectors_deleted"] == "3"


def test_group_photo_is_refused_with_two_faces(service: watchlist_pb2_grpc.WatchlistServiceStub,
                                               milvus: object) -> None:
    wl = _create(service, _deployment())
    with pytest.raises(grpc.RpcError) as e:
        _enrol(service, wl.watchlist_id, "someone", "group_obama_biden_1.jpg")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image 1 holds 2 faces" in e.value.details()
    assert _count(milvus, wl.watchlist_id) == 0
    service.CloseWatchlist(watchlist_pb2.CloseWatchlistRequest(watchlist_id=wl.watchlist_id), timeout=10)


def test_reaper_destroys_an_expired_watchlist(service: watchlist_pb2_grpc.WatchlistServiceStub,
                                              milvus: object) -> None:
    lifetime_s = 3.0
    wl = _create(service, _deployment(), until_s=lifetime_s)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(3, EMBEDDING_DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    resp = service.BulkImport(iter([watchlist_pb2.BulkImportRequest(watchlist_id=wl.watchlist_id, subjects=[
        watchlist_pb2.SyntheticSubject(subject_id=f"syn-{i}", category=common_pb2.SUBJECT_CATEGORY_MISSING,
                                       embedding=v.tolist()) for i, v in enumerate(vecs)])]), timeout=30)
    assert resp.imported == 3 and _count(milvus, wl.watchlist_id) == 3
    end = wl.valid_until_unix_ns / 1e9
    while time.time() < end + REAPER_INTERVAL_S + 2.0:  # within the interval (+ slack for one round's work)
        state = service.GetWatchlist(watchlist_pb2.GetWatchlistRequest(watchlist_id=wl.watchlist_id), timeout=10)
        if state.watchlist.state == watchlist_pb2.WATCHLIST_STATE_EXPIRED and state.watchlist.closed_unix_ns:
            break
        time.sleep(0.2)
    assert state.watchlist.closed_unix_ns, "the reaper did not destroy the watchlist within its interval"
    assert state.watchlist.closed_unix_ns / 1e9 - end <= REAPER_INTERVAL_S + 2.0
    assert state.watchlist.close_reason == "expired"
    assert _count(milvus, wl.watchlist_id) == 0
    # the reaper marks the watchlist, then appends the audit record (a Redis-locked
    # Kafka append): give that append a moment under load
    deadline = time.time() + 15
    while "watchlist.expire" not in (actions := _audit_actions(wl.watchlist_id)) and time.time() < deadline:
        time.sleep(0.5)
    assert "watchlist.expire" in actions


def test_cli_enrols_a_folder_per_subject(service: watchlist_pb2_grpc.WatchlistServiceStub, tmp_path: Path) -> None:
    for subject, files in {"kit": ["kit_harington_1.jpg", "kit_harington_2.jpg"], "rose": ["rose_leslie_1.jpg"],
                           "group": ["group_obama_biden_2.jpg"]}.items():
        (tmp_path / subject).mkdir()
        for f in files:
            (tmp_path / subject / f).write_bytes((FACES / f).read_bytes())
    wl = _create(service, _deployment())
    lfr = [sys.executable, "-m", "services.cli.main", "watchlist", "--address", f"127.0.0.1:{GRPC_PORT}"]
    run = subprocess.run([*lfr, "enrol", wl.watchlist_id, "--from-dir", str(tmp_path), "--category", "missing"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr  # the group photo is refused
    assert "enrolled 2 of 3 subjects" in run.stdout and "refused group" in run.stdout, run.stdout
    assert "subject/s" in run.stderr or "3/3" in run.stderr  # tqdm progress
    show = subprocess.run([*lfr, "show", wl.watchlist_id, "--subjects"], cwd=REPO, capture_output=True, text=True,
                          timeout=30)
    assert show.returncode == 0 and "subjects=2" in show.stdout and "images=3" in show.stdout, show.stdout
    close = subprocess.run([*lfr, "close", wl.watchlist_id, "--reason", "test over"], cwd=REPO, capture_output=True,
                           text=True, timeout=30)
    assert close.returncode == 0 and "destroyed 2 subject(s), 3 vector(s)" in close.stdout, close.stdout


def test_audit_chain_ok_metric(service: watchlist_pb2_grpc.WatchlistServiceStub) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5).read().decode()
        if "lfr_audit_chain_ok 1.0" in text:
            break
        time.sleep(0.5)
    assert "lfr_audit_chain_ok 1.0" in text
    assert 'lfr_audit_records_total{action="watchlist.create"}' in text


def test_a_collection_of_another_embedder_is_refused_with_the_fix(milvus) -> None:
    """A faces collection made by another embedder (another dimension, say the 192-d
    MobileFaceNet of earlier releases) can never match this release's probes:
    ensure_collection's check says so, with what to do, on the real Milvus's own
    description of the collection."""
    from pymilvus import DataType

    from services.common.errors import SetupError
    from services.common.faces_schema import build_index, build_schema, check_embedding_dim

    name = f"lfr_dimcheck_{uuid.uuid4().hex[:8]}"
    old = milvus.create_schema(auto_id=True, enable_dynamic_field=False)
    old.add_field("id", DataType.INT64, is_primary=True)
    old.add_field("embedding", DataType.FLOAT_VECTOR, dim=192)
    try:
        milvus.create_collection(name, schema=old)
        with pytest.raises(SetupError) as err:
            check_embedding_dim(milvus.describe_collection(name))
        assert "holds 192-d embeddings of an earlier embedder" in err.value.cause
        assert f"makes {EMBEDDING_DIM}-d" in err.value.cause
        assert "re-enrolled" in err.value.cause and "CloseWatchlist" in err.value.fix
        milvus.drop_collection(name)
        milvus.create_collection(name, schema=build_schema(milvus), index_params=build_index(milvus))
        check_embedding_dim(milvus.describe_collection(name))  # this release's schema passes
        milvus.drop_collection(name)
        # same dimension, another network's name (a collection made under another embedder's name)
        milvus.create_collection(name, schema=build_schema(milvus, "another512"), index_params=build_index(milvus))
        with pytest.raises(SetupError, match="512-d embeddings of another512"):
            check_embedding_dim(milvus.describe_collection(name))
        check_embedding_dim(milvus.describe_collection(name), "another512")  # its own embedder reads it
    finally:
        milvus.drop_collection(name)
