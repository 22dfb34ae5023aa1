"""On a Milvus server the watchlist store compacts the faces collection after a delete
(services/watchlist/store.py Store.compact): the delete logs are flushed first, the
compaction is awaited up to compact_wait_s, an engine that cannot compact (milvus-lite)
is asked once, and no outcome makes the delete itself fail."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from pymilvus.exceptions import MilvusException

from services.common import faces_schema
from services.watchlist import store as store_mod
from services.watchlist.store import Store


class Unimplemented(grpc.RpcError):
    """What milvus-lite's engine raises for ManualCompaction: a bare gRPC status."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNIMPLEMENTED


class FakeMilvus:
    """Records the calls; compaction completes after ``running_polls`` polls."""

    def __init__(self, running_polls: int = 2, compact_error: str | Exception | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.running_polls = running_polls
        self.compact_error = compact_error

    def query(self, collection: str, filter: str, output_fields: list[str], timeout: float) -> list[dict[str, Any]]:
        return [{"count(*)": 3}]

    def list_collections(self) -> list[str]:
        return ["lfr_watchlist_faces", "lfr_watchlists"]  # the default embedder's faces only

    def delete(self, collection: str, timeout: float, **kw: Any) -> None:
        self.calls.append(("delete", collection))

    def flush(self, collection: str, timeout: float) -> None:
        self.calls.append(("flush", collection))

    def compact(self, collection: str, timeout: float) -> int:
        self.calls.append(("compact", collection))
        if isinstance(self.compact_error, Exception):
            raise self.compact_error
        if self.compact_error:
            raise MilvusException(message=self.compact_error)
        return 42

    def get_compaction_state(self, job: int, timeout: float) -> str:
        self.calls.append(("state", job))
        self.running_polls -= 1
        return "Executing" if self.running_polls >= 0 else "Completed"


@pytest.fixture(autouse=True)
def fast_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_mod, "COMPACTION_POLL_S", 0.001)


def names(client: FakeMilvus) -> list[str]:
    return [c[0] for c in client.calls]


def test_delete_on_a_server_flushes_then_compacts_and_waits_for_completion() -> None:
    client = FakeMilvus(running_polls=2)
    assert Store(client, timeout_s=5).delete_faces('watchlist_id == "w"') == 3
    assert names(client) == ["delete", "flush", "flush", "compact", "state", "state", "state"]
    assert ("compact", faces_schema.COLLECTION) in client.calls


def test_compaction_still_running_when_the_wait_ends_is_reported_not_raised() -> None:
    client = FakeMilvus(running_polls=10**9)
    assert Store(client, timeout_s=5, compact_wait_s=0.05).compact() == "running"


def test_no_wait_configured_only_requests_the_compaction() -> None:
    client = FakeMilvus()
    assert Store(client, timeout_s=5, compact_wait_s=0).compact() == "requested"
    assert "state" not in names(client)


@pytest.mark.parametrize("error", [Unimplemented(), "compaction is not supported"], ids=["grpc-status", "message"])
def test_an_engine_that_cannot_compact_is_asked_once(error: Any) -> None:
    client = FakeMilvus(compact_error=error)
    st = Store(client, timeout_s=5)
    assert st.compact() == "unsupported"
    st.delete_ids([1, 2])  # the delete still happens; no second compaction request
    assert names(client).count("compact") == 1
    assert names(client)[-1] == "delete"


def test_a_failed_compaction_does_not_fail_the_delete_and_is_retried_next_time() -> None:
    client = FakeMilvus(compact_error="segment busy")
    st = Store(client, timeout_s=5)
    assert st.compact() == "failed"
    assert st.delete_faces('watchlist_id == "w"') == 3
    assert names(client).count("compact") == 2


def test_the_local_engine_file_path_vacuums_and_never_compacts(tmp_path: Any) -> None:
    import sqlite3

    db = tmp_path / "milvus.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    client = FakeMilvus()
    Store(client, timeout_s=5, engine_file=db).delete_ids([1])
    assert "compact" not in names(client)


def test_only_the_first_request_silences_pymilvus_rpc_error_log() -> None:
    import logging

    seen: list[bool] = []

    class Recording(FakeMilvus):
        def compact(self, collection: str, timeout: float) -> int:
            seen.append(logging.getLogger("pymilvus.decorators").disabled)
            return super().compact(collection, timeout)

    st = Store(Recording(running_polls=0), timeout_s=5)
    st.compact()
    st.compact()
    assert seen == [True, False]
    assert logging.getLogger("pymilvus.decorators").disabled is False


def test_destroy_faces_says_what_happened_to_the_bytes(tmp_path: Any) -> None:
    import sqlite3

    from services.watchlist.store import Deletion

    assert Store(FakeMilvus(running_polls=0), timeout_s=5).destroy_faces("x") == Deletion(3, "compaction completed")
    assert Store(FakeMilvus(compact_error=Unimplemented()), timeout_s=5).destroy_faces("x") == \
        Deletion(3, "compaction unsupported")
    db = tmp_path / "milvus.db"
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.close()
    assert Store(FakeMilvus(), timeout_s=5, engine_file=db).destroy_faces("x") == Deletion(3, "vacuumed")

    class Empty(FakeMilvus):
        def query(self, *a: Any, **kw: Any) -> list[dict[str, Any]]:
            return [{"count(*)": 0}]

    empty = Empty()
    assert Store(empty, timeout_s=5).destroy_faces("x") == Deletion(0, "nothing deleted")
    assert "delete" not in names(empty)


class TwoEmbedders(FakeMilvus):
    """The default embedder's faces collection and w600k_mbf's both exist; 2 rows of the watchlist in the latter."""

    def list_collections(self) -> list[str]:
        return ["lfr_watchlist_faces", "lfr_watchlist_faces__w600k_mbf", "lfr_watchlists"]

    def query(self, collection: str, filter: str, output_fields: list[str], timeout: float) -> list[dict[str, Any]]:
        return [{"count(*)": 2 if collection.endswith("__w600k_mbf") else 0}]


def test_a_delete_reaches_the_faces_of_every_embedder() -> None:
    """A watchlist built with another embedder than the service's is still destroyed on close or expiry."""
    client = TwoEmbedders()
    store = Store(client, timeout_s=5, compact_wait_s=0)
    assert store.embedder_of("wl") == "w600k_mbf"
    gone = store.destroy_faces(faces_schema.watchlist_filter("wl"))
    assert gone.count == 2
    assert [c for op, c in client.calls if op == "delete"] == ["lfr_watchlist_faces__w600k_mbf"]


class RetiredEmbedder(FakeMilvus):
    """A faces collection of an embedder the manifest no longer lists still holds a watchlist's rows."""

    def list_collections(self) -> list[str]:
        return ["lfr_watchlist_faces", "lfr_watchlist_faces__retired_net", "lfr_watchlists", "lfr_eval_x"]

    def query(self, collection: str, filter: str, output_fields: list[str], timeout: float) -> list[dict[str, Any]]:
        return [{"count(*)": 1 if collection.endswith("__retired_net") else 0}]


def test_a_delete_reaches_the_faces_of_a_retired_embedder() -> None:
    client = RetiredEmbedder()
    store = Store(client, timeout_s=5, compact_wait_s=0)
    assert store.face_collections() == ["lfr_watchlist_faces", "lfr_watchlist_faces__retired_net"]
    assert store.destroy_faces(faces_schema.watchlist_filter("wl")).count == 1
    assert [c for op, c in client.calls if op == "delete"] == ["lfr_watchlist_faces__retired_net"]
