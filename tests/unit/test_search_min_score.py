"""search_active with ``min_score`` (as the matcher calls it): the search asks Milvus for ids and
scores only, and the subject fields of the rows that pass are read in one query; a call where no
probe reaches the threshold reads nothing else."""

from __future__ import annotations

from typing import Any

from services.common.faces_search import HIT_FIELDS, search_active

ROWS = {
    1: {"id": 1, "watchlist_id": "wl", "subject_id": "s-a", "category": "wanted", "image_ref": "a1"},
    2: {"id": 2, "watchlist_id": "wl", "subject_id": "s-a", "category": "wanted", "image_ref": "a2"},
    3: {"id": 3, "watchlist_id": "wl", "subject_id": "s-b", "category": "missing", "image_ref": "b1"},
}


class FakeClient:
    def __init__(self, results: list[list[tuple[int, float]]], gone: set[int] | None = None) -> None:
        self.results = results
        self.gone = gone or set()
        self.searches: list[dict[str, Any]] = []
        self.queries: list[dict[str, Any]] = []

    def search(self, collection: str, **kw: Any) -> list[list[dict[str, Any]]]:
        self.searches.append(kw)
        fields = kw["output_fields"]
        return [[{"id": i, "distance": d, "entity": {f: ROWS[i][f] for f in fields}} for i, d in probe]
                for probe in self.results]

    def query(self, collection: str, **kw: Any) -> list[dict[str, Any]]:
        self.queries.append(kw)
        ids = [int(x) for x in kw["filter"].split("[")[1].rstrip("]").split(",")]
        return [ROWS[i] for i in ids if i not in self.gone]


def test_no_probe_over_the_threshold_reads_no_subject_fields() -> None:
    client = FakeClient([[(1, 0.41), (3, 0.2)], [(3, 0.5)]])
    assert search_active(client, [[0.0] * 4, [1.0] * 4], "op", 100, limit=1, min_score=0.63) == [[], []]
    assert client.searches[0]["output_fields"] == []
    assert client.queries == []


def test_rows_over_the_threshold_are_read_in_one_query_and_deduplicated() -> None:
    client = FakeClient([[(2, 0.9), (1, 0.8), (3, 0.7)], [(3, 0.62)], [(3, 0.66), (1, 0.1)]])
    hits = search_active(client, [[0.0] * 4] * 3, "op", 100, limit=5, min_score=0.63)
    assert len(client.queries) == 1
    assert client.queries[0]["filter"] == "id in [1, 2, 3]"
    assert set(HIT_FIELDS) <= set(client.queries[0]["output_fields"])
    assert [(h.subject_id, h.image_ref, h.score) for h in hits[0]] == [("s-a", "a2", 0.9), ("s-b", "b1", 0.7)]
    assert hits[1] == []  # 0.62 < 0.63
    assert [(h.subject_id, h.category, h.row_id) for h in hits[2]] == [("s-b", "missing", 3)]


def test_a_row_deleted_between_search_and_query_is_not_returned() -> None:
    client = FakeClient([[(3, 0.9), (1, 0.8)]], gone={3})
    hits = search_active(client, [0.0] * 4, "op", 100, limit=5, min_score=0.5)
    assert [h.subject_id for h in hits[0]] == ["s-a"]


def test_without_min_score_the_fields_come_with_the_search() -> None:
    client = FakeClient([[(1, 0.2)]])
    assert [h.subject_id for h in search_active(client, [0.0] * 4, "op", 100, limit=1)[0]] == ["s-a"]
    assert list(client.searches[0]["output_fields"]) == list(HIT_FIELDS)
    assert client.queries == []
