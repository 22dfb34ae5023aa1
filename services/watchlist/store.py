"""The service's store: watchlist metadata and enrolled faces, both in Milvus
(services/watchlist/schema.py, services/common/faces_schema.py). Synchronous (pymilvus'
MilvusClient): the service calls it through ``asyncio.to_thread``."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from services.common import faces_schema
from services.common.errors import SetupError
from services.common.milvus_collections import faces_collection
from services.face.embedders import DEFAULT_EMBEDDER
from services.watchlist import schema

log = logging.getLogger(__name__)

QUERY_PAGE = 5000
QUERY_LIMIT = 16_384  # Milvus' largest query window; beyond it, page with an iterator
OTHERS_FRESH_S = 1.0  # reads reuse a listing of the faces collections this recent; deletes always list again


@dataclasses.dataclass(frozen=True)
class Deletion:
    count: int  # face rows deleted
    # what the engine did with their bytes, for the audit record: "vacuumed" (the local engine's file),
    # "compaction completed|running|requested|unsupported|failed" (a Milvus server; Store.compact), or
    # "nothing deleted"
    erasure: str


@dataclasses.dataclass
class SubjectInfo:
    subject_id: str
    category: str
    image_refs: list[str]


COMPACTION_POLL_S = 0.2


@contextlib.contextmanager
def quiet_pymilvus_rpc_errors() -> Iterator[None]:
    """pymilvus logs every failed RPC at ERROR with a traceback. The store's first compaction is
    also how it learns whether the engine can compact at all (milvus-lite answers UNIMPLEMENTED),
    so that one call runs with pymilvus' RPC logger off; the store logs the outcome itself."""
    rpc_log = logging.getLogger("pymilvus.decorators")
    was = rpc_log.disabled
    rpc_log.disabled = True
    try:
        yield
    finally:
        rpc_log.disabled = was


class Store:
    def __init__(self, client: Any, timeout_s: float, engine_file: Path | None = None,
                 compact_wait_s: float = 5.0, embedder: str = DEFAULT_EMBEDDER) -> None:
        self.client = client
        # enrolments go to the active embedder's faces collection; reads and deletes cover every faces
        # collection (a watchlist built with an earlier embedder is still listed, closed and destroyed)
        self.embedder = embedder
        self.collection = faces_collection(embedder)
        self.others: dict[str, str] = {}  # embedder -> collection, the other embedders' that exist
        self._listed_at = -float("inf")  # when ``others`` was last listed (time.monotonic)
        self.timeout_s = timeout_s
        self.engine_file = engine_file  # milvus-lite only: see WatchlistOptions.local_engine_file
        self.compact_wait_s = compact_wait_s  # a Milvus server: see WatchlistOptions.compact_wait_s
        # None until the engine has answered a compaction request; False once it said it cannot (milvus-lite)
        self.can_compact: bool | None = None

    def ensure(self) -> None:
        if self.engine_file is not None and not self.engine_file.is_file():
            raise SetupError(f"watchlist: local_engine_file {self.engine_file} does not exist",
                             "point LFR_WATCHLIST__LOCAL_ENGINE_FILE at the local Milvus engine's milvus.db, "
                             "or unset it when Milvus is a standalone/cluster")
        faces_schema.ensure_collection(self.client, self.embedder)
        schema.ensure_watchlists_collection(self.client)
        self.refresh_collections()

    def refresh_collections(self, force: bool = True) -> dict[str, str]:
        """The other embedders' faces collections (embedder -> collection), listed again unless ``force`` is
        false and the last listing is under OTHERS_FRESH_S old (one listing serves a whole ListWatchlists)."""
        if force or time.monotonic() - self._listed_at >= OTHERS_FRESH_S:
            self.others = faces_schema.other_embedder_collections(self.client, self.embedder)
            self._listed_at = time.monotonic()
        return self.others

    def face_collections(self, fresh: bool = False) -> list[str]:
        """The active collection and every other embedder's that exists (another replica may have created one
        since the service started); ``fresh`` lists them now: a delete must reach a watchlist's faces wherever
        they are."""
        return [self.collection, *self.refresh_collections(force=fresh).values()]

    def embedder_of(self, watchlist_id: str) -> str:
        """The embedder whose collection holds the watchlist's faces (the active one when it has none)."""
        expr = faces_schema.watchlist_filter(watchlist_id)
        for embedder, collection in self.refresh_collections(force=False).items():
            if self._count_in(collection, expr):
                return embedder
        return self.embedder

    # -- watchlists ------------------------------------------------------------
    def put_watchlist(self, row: dict[str, Any]) -> None:
        self.client.upsert(schema.WATCHLISTS_COLLECTION, [{**row, "_v": schema.DUMMY_VECTOR}], timeout=self.timeout_s)

    def get_watchlist(self, watchlist_id: str) -> dict[str, Any] | None:
        rows = self.client.query(schema.WATCHLISTS_COLLECTION, filter=faces_schema.watchlist_filter(watchlist_id),
                                 output_fields=schema.WATCHLIST_FIELDS, timeout=self.timeout_s)
        return dict(rows[0]) if rows else None

    def find_by_request_id(self, request_id: str) -> dict[str, Any] | None:
        rows = self.client.query(schema.WATCHLISTS_COLLECTION,
                                 filter=f"request_id == {faces_schema.quote_id(request_id)}",
                                 output_fields=schema.WATCHLIST_FIELDS, timeout=self.timeout_s)
        return dict(rows[0]) if rows else None

    def list_watchlists(self, expr: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query_all(schema.WATCHLISTS_COLLECTION, expr, schema.WATCHLIST_FIELDS)]

    # -- faces -----------------------------------------------------------------
    def insert_faces(self, rows: Sequence[dict[str, Any]], flush: bool = True,
                     collection: str | None = None) -> list[int]:
        res = self.client.insert(collection or self.collection, list(rows), timeout=self.timeout_s)
        if flush:
            self.flush(collection)
        return [int(i) for i in res["ids"]]

    def flush(self, collection: str | None = None) -> None:
        # unflushed rows sit in a growing segment that is searched row by row (~450 ms/query at 10k)
        self.client.flush(collection or self.collection, timeout=self.timeout_s)

    def _count_in(self, collection: str, expr: str) -> int:
        rows = self.client.query(collection, filter=expr, output_fields=["count(*)"], timeout=self.timeout_s)
        return int(rows[0]["count(*)"]) if rows else 0

    def count(self, expr: str) -> int:
        """Faces matching ``expr`` in every faces collection."""
        return sum(self._count_in(c, expr) for c in self.face_collections(fresh=True))

    def destroy_faces(self, expr: str, collections: Sequence[str] | None = None) -> Deletion:
        """Delete the faces matching ``expr`` (in every faces collection, or in ``collections``) and have the
        engine drop their bytes (erase_deleted)."""
        found = {c: n for c in (collections or self.face_collections(fresh=True)) if (n := self._count_in(c, expr))}
        if not found:
            return Deletion(0, "nothing deleted")
        for collection in found:
            self.client.delete(collection, filter=expr, timeout=self.timeout_s)
            self.flush(collection)
        return Deletion(sum(found.values()), self.erase_deleted(list(found)))

    def delete_faces(self, expr: str) -> int:
        """Delete the faces matching ``expr``; returns how many there were."""
        return self.destroy_faces(expr).count

    def delete_ids(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if ids:
            self.client.delete(self.collection, ids=ids, timeout=self.timeout_s)
            self.erase_deleted([self.collection])

    def erase_deleted(self, collections: Sequence[str] | None = None) -> str:
        """Make the engine drop the bytes of the rows just deleted, not only hide them.

        milvus-lite's engine (``engine_file`` set, the local stack) deletes a row from its SQLite
        file at once, but SQLite leaves the row's bytes in the page it sat in (and, without
        auto_vacuum, whole freed pages) until something overwrites them; that engine cannot
        compact. VACUUM rewrites the file from its live rows only.

        A Milvus server keeps a deleted row in its sealed segment (a delete log hides it) until a
        compaction rewrites the segment without it: :meth:`compact`. The old segment files then
        go at the server's garbage collection (k8s/base/milvus/milvus.yaml, docs/design.md).

        Returns what was done (Deletion.erasure)."""
        if self.engine_file is None:
            outcomes = [self.compact(c) for c in (collections or [self.collection])]
            return "compaction " + ", ".join(dict.fromkeys(outcomes))
        # mode=rw: never create a file where the engine's should be
        con = sqlite3.connect(f"file:{self.engine_file}?mode=rw", uri=True, timeout=self.timeout_s,
                              isolation_level=None)
        try:
            con.execute("VACUUM")
        finally:
            con.close()
        log.info("engine file vacuumed: deleted rows' bytes erased", extra={"file": str(self.engine_file)})
        return "vacuumed"

    def compact(self, collection: str | None = None) -> str:
        """Flush the delete logs, ask Milvus to compact the faces collection and wait up to
        ``compact_wait_s`` for it to complete. Returns the outcome: "completed", "running" (still
        going when the wait ended; it completes on its own), "requested" (no wait configured),
        "unsupported" (the engine cannot compact: milvus-lite) or "failed". Never raises: the rows
        are already deleted and unsearchable; this is about their bytes, and it is logged."""
        import grpc
        from pymilvus.exceptions import MilvusException

        if self.can_compact is False:
            return "unsupported"
        started = time.monotonic()
        try:
            self.flush(collection)  # the delete logs must be on storage for the compaction to apply them
            with quiet_pymilvus_rpc_errors() if self.can_compact is None else contextlib.nullcontext():
                job = self.client.compact(collection or self.collection, timeout=self.timeout_s)
            self.can_compact = True
            state = "requested"
            while self.compact_wait_s > 0:
                state = self.client.get_compaction_state(job, timeout=self.timeout_s)
                if state == "Completed" or time.monotonic() - started >= self.compact_wait_s:
                    break
                time.sleep(COMPACTION_POLL_S)
        except (MilvusException, grpc.RpcError) as e:
            # milvus-lite's engine answers the raw gRPC status UNIMPLEMENTED
            code = e.code() if isinstance(e, grpc.RpcError) and callable(getattr(e, "code", None)) else None
            if code == grpc.StatusCode.UNIMPLEMENTED or "unimplemented" in str(e).lower() \
                    or "not support" in str(e).lower():
                self.can_compact = False
                log.warning("Milvus cannot compact (milvus-lite?): deleted faces stay in its storage until it "
                            "rewrites it; set watchlist.local_engine_file for the local engine",
                            extra={"error": str(e)[:200]})
                return "unsupported"
            self.can_compact = True  # it answered: later failures are logged by pymilvus as usual
            log.error("compaction after a delete of faces failed; the deleted rows stay in their segments until "
                      "the next compaction", extra={"error": str(e)[:200]})
            return "failed"
        outcome = {"Completed": "completed", "requested": "requested"}.get(state, "running")
        log.info("faces collection compacted after a delete" if outcome == "completed"
                 else "compaction after a delete requested", extra={
                     "job": job, "outcome": outcome, "seconds": round(time.monotonic() - started, 2)})
        return outcome

    def subjects(self, watchlist_id: str) -> dict[str, SubjectInfo]:
        out: dict[str, SubjectInfo] = {}
        for r in self._query_faces(faces_schema.watchlist_filter(watchlist_id),
                                   ["subject_id", "category", "image_ref"]):
            info = out.setdefault(r["subject_id"], SubjectInfo(r["subject_id"], r["category"], []))
            info.image_refs.append(r["image_ref"])
        return out

    def subject(self, watchlist_id: str, subject_id: str) -> SubjectInfo | None:
        rows = self._query_faces(faces_schema.subject_filter(watchlist_id, subject_id),
                                 ["subject_id", "category", "image_ref"])
        if not rows:
            return None
        return SubjectInfo(subject_id, rows[0]["category"], [r["image_ref"] for r in rows])

    def _query_faces(self, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        return [r for c in self.face_collections() for r in self._query_all(c, expr, fields)]

    def face_rows(self, collection: str, watchlist_id: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every face row of the watchlist in ``collection`` (``fields`` of each)."""
        return self._query_all(collection, faces_schema.watchlist_filter(watchlist_id), fields)

    def _query_all(self, collection: str, expr: str, fields: list[str]) -> list[dict[str, Any]]:
        rows = self.client.query(collection, filter=expr, output_fields=fields, limit=QUERY_LIMIT,
                                 timeout=self.timeout_s)
        if len(rows) < QUERY_LIMIT:
            return [dict(r) for r in rows]
        it = self.client.query_iterator(collection, batch_size=QUERY_PAGE, filter=expr, output_fields=fields,
                                        timeout=self.timeout_s)
        out: list[dict[str, Any]] = []
        try:
            while True:
                page = it.next()
                if not page:
                    break
                out.extend(dict(r) for r in page)
        finally:
            it.close()
        return out
