"""The service's store: watchlist metadata and enrolled faces, both in Milvus
(services/watchlist/schema.py). Synchronous (pymilvus' MilvusClient): the
service calls it through ``asyncio.to_thread``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from services.watchlist import schema

QUERY_PAGE = 5000
QUERY_LIMIT = 16_384  # Milvus' largest query window; beyond it, page with an iterator


@dataclasses.dataclass
class SubjectInfo:
    subject_id: str
    category: str
    image_refs: list[str]


class Store:
    def __init__(self, client: Any, timeout_s: float) -> None:
        self.client = client
        self.timeout_s = timeout_s

    def ensure(self) -> None:
        schema.ensure_collection(self.client)
        schema.ensure_watchlists_collection(self.client)

    # -- watchlists ------------------------------------------------------------
    def put_watchlist(self, row: dict[str, Any]) -> None:
        self.client.upsert(schema.WATCHLISTS_COLLECTION, [{**row, "_v": schema.DUMMY_VECTOR}], timeout=self.timeout_s)

    def get_watchlist(self, watchlist_id: str) -> dict[str, Any] | None:
        rows = self.client.query(schema.WATCHLISTS_COLLECTION, filter=schema.watchlist_filter(watchlist_id),
                                 output_fields=schema.WATCHLIST_FIELDS, timeout=self.timeout_s)
        return dict(rows[0]) if rows else None

    def find_by_request_id(self, request_id: str) -> dict[str, Any] | None:
        rows = self.client.query(schema.WATCHLISTS_COLLECTION, filter=f"request_id == {schema._q(request_id)}",
                                 output_fields=schema.WATCHLIST_FIELDS, timeout=self.timeout_s)
        return dict(rows[0]) if rows else None

    def list_watchlists(self, expr: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self._query_all(schema.WATCHLISTS_COLLECTION, expr, schema.WATCHLIST_FIELDS)]

    # -- faces -----------------------------------------------------------------
    def insert_faces(self, rows: Sequence[dict[str, Any]], flush: bool = True) -> list[int]:
        res = self.client.insert(schema.COLLECTION, list(rows), timeout=self.timeout_s)
        if flush:
            self.flush()
        return [int(i) for i in res["ids"]]

    def flush(self) -> None:
        # unflushed rows sit in a growing segment that is searched row by row (~450 ms/query at 10k)
        self.client.flush(schema.COLLECTION, timeout=self.timeout_s)

    def count(self, expr: str) -> int:
        rows = self.client.query(schema.COLLECTION, filter=expr, output_fields=["count(*)"], timeout=self.timeout_s)
        return int(rows[0]["count(*)"]) if rows else 0

    def delete_faces(self, expr: str) -> int:
        """Delete the faces matching ``expr``; returns how many there were."""
        n = self.count(expr)
        if n:
            self.client.delete(schema.COLLECTION, filter=expr, timeout=self.timeout_s)
            self.flush()
        return n

    def delete_ids(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        if ids:
            self.client.delete(schema.COLLECTION, ids=ids, timeout=self.timeout_s)

    def subjects(self, watchlist_id: str) -> dict[str, SubjectInfo]:
        out: dict[str, SubjectInfo] = {}
        for r in self._query_all(schema.COLLECTION, schema.watchlist_filter(watchlist_id),
                                 ["subject_id", "category", "image_ref"]):
            info = out.setdefault(r["subject_id"], SubjectInfo(r["subject_id"], r["category"], []))
            info.image_refs.append(r["image_ref"])
        return out

    def subject(self, watchlist_id: str, subject_id: str) -> SubjectInfo | None:
        rows = self._query_all(schema.COLLECTION, schema.subject_filter(watchlist_id, subject_id),
                               ["subject_id", "category", "image_ref"])
        if not rows:
            return None
        return SubjectInfo(subject_id, rows[0]["category"], [r["image_ref"] for r in rows])

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
