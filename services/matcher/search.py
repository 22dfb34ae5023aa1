"""Watchlist search for the matcher: one Milvus call per (deployment, capture
second) group of faces, filtered to the watchlists active there and then
(``services.watchlist.schema.active_filter``), hits deduplicated by subject,
best score first.

Uses ``services.watchlist.search.search_active`` when that module exists (the
watchlist service's helper, same contract); otherwise the local
:func:`search_active` below. Both are synchronous (pymilvus): call them through
``asyncio.to_thread``."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Sequence
from typing import Any

from services.watchlist.schema import COLLECTION, METRIC, OUTPUT_FIELDS, active_filter

# the enrolled aligned face travels with a match so the officer can compare side by side
SEARCH_FIELDS = [*OUTPUT_FIELDS, "image_jpeg_b64"]


@dataclasses.dataclass(frozen=True)
class Hit:
    """The best enrolled face of one subject for one probe."""

    subject_id: str
    watchlist_id: str
    deployment_id: str
    category: str
    score: float  # cosine similarity
    row_id: int
    image_ref: str
    image_jpeg_b64: str

    @classmethod
    def from_milvus(cls, hit: dict[str, Any]) -> "Hit":
        entity = hit.get("entity", hit)
        return cls(
            subject_id=str(entity["subject_id"]),
            watchlist_id=str(entity["watchlist_id"]),
            deployment_id=str(entity["deployment_id"]),
            category=str(entity.get("category", "")),
            score=float(hit["distance"]),
            row_id=int(hit.get("id", entity.get("id", 0))),
            image_ref=str(entity.get("image_ref", "")),
            image_jpeg_b64=str(entity.get("image_jpeg_b64", "")),
        )


def best_per_subject(hits: Sequence[Hit]) -> list[Hit]:
    """One hit per subject (its best score), best first."""
    best: dict[str, Hit] = {}
    for h in hits:
        if h.subject_id not in best or h.score > best[h.subject_id].score:
            best[h.subject_id] = h
    return sorted(best.values(), key=lambda h: h.score, reverse=True)


def search_active(
    client: Any, embeddings: Sequence[Sequence[float]], deployment_id: str, at_unix_s: int, limit: int
) -> list[list[Hit]]:
    """Per embedding, the subjects of the watchlists active for ``deployment_id`` at
    ``at_unix_s``, deduplicated by subject, best score first (at most ``limit`` rows asked)."""
    if not embeddings:
        return []
    results = client.search(
        COLLECTION,
        data=[list(map(float, e)) for e in embeddings],
        filter=active_filter(deployment_id, at_unix_s),
        limit=limit,
        output_fields=SEARCH_FIELDS,
        search_params={"metric_type": METRIC},
        anns_field="embedding",
    )
    return [best_per_subject([Hit.from_milvus(h) for h in hits]) for hits in results]


SearchFn = Callable[[Any, Sequence[Sequence[float]], str, int, int], list[list[Hit]]]


def resolve_search() -> SearchFn:
    """The watchlist package's ``search_active`` when present, else the local one."""
    try:
        module = importlib.import_module("services.watchlist.search")
    except ModuleNotFoundError:
        return search_active
    shared = getattr(module, "search_active", None)
    if shared is None:
        return search_active

    def adapted(client: Any, embeddings: Sequence[Sequence[float]], deployment_id: str, at_unix_s: int, limit: int) -> list[list[Hit]]:
        out = shared(client, embeddings, deployment_id, at_unix_s, limit)
        return [[h if isinstance(h, Hit) else Hit.from_milvus(h) for h in hits] for hits in out]

    return adapted
