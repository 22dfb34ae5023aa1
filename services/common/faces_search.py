"""Deployment-scoped search of the enrolled faces (services/common/faces_schema.py), for the matcher.

``search_active`` searches only the faces of watchlists of ``deployment_id``
whose validity window contains ``at_unix_s`` (the frame's capture time) and
returns, per probe, each subject ONCE with its best-scoring image, best score
first. A subject is identified by (watchlist_id, subject_id): subject ids are
chosen per watchlist, so the same id in two watchlists may be two people.
Milvus is asked for ``limit * OVERSAMPLE`` hits so that several images of one
subject do not crowd other subjects out of the top ``limit``.
Scores are COSINE similarities of L2-normalised embeddings (compare with the matcher's threshold, the
active embedder's calibration). ``collection`` is the active embedder's faces collection
(services.common.milvus_collections.faces_collection)."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from services.common.faces_schema import COLLECTION, METRIC, active_filter

OVERSAMPLE = 4
MAX_TOPK = 16_384  # Milvus' limit on limit
HIT_FIELDS = ("watchlist_id", "subject_id", "category", "image_ref")  # what a Hit needs besides id and score


class Hit(NamedTuple):
    subject_id: str
    watchlist_id: str
    category: str
    score: float
    image_ref: str
    row_id: int


def dedup_hits(raw: Iterable[Mapping[str, Any]], limit: int) -> list[Hit]:
    """Milvus hits (dicts with id, distance, entity) -> best hit per subject, best first."""
    best: dict[tuple[str, str], Hit] = {}
    for h in raw:
        ent = h.get("entity", h)
        hit = Hit(str(ent["subject_id"]), str(ent["watchlist_id"]), str(ent["category"]), float(h["distance"]),
                  str(ent["image_ref"]), int(h["id"]))
        key = (hit.watchlist_id, hit.subject_id)
        if key not in best or hit.score > best[key].score:
            best[key] = hit
    return sorted(best.values(), key=lambda x: -x.score)[:limit]


def search_active(client: Any, embeddings: np.ndarray | Sequence[Sequence[float]], deployment_id: str,
                  at_unix_s: int, limit: int, timeout_s: float | None = None,
                  min_score: float | None = None, collection: str = COLLECTION) -> list[list[Hit]]:
    """Per probe: the best ``limit`` subjects of the deployment's active watchlists (synchronous
    MilvusClient call: run it in ``asyncio.to_thread`` from async code).

    ``min_score`` (the matcher passes its match threshold): only hits scoring at least this are
    returned, and the search itself asks Milvus for ids and scores only; the subject fields of
    the rows that pass are read afterwards in ONE query for the whole call (none when no probe
    reaches it, the usual case in a crowd). Output fields cost Milvus ~0.1-0.3 ms per probe
    at 10k rows (docs/benchmarks.md, watchlist search), so a non-match costs the search alone. A row
    deleted between the two calls (a watchlist closed meanwhile) is not returned."""
    data = np.asarray(embeddings, dtype=np.float32)
    if data.ndim == 1:
        data = data[None, :]
    if len(data) == 0:
        return []
    topk = min(MAX_TOPK, max(1, limit) * OVERSAMPLE)
    res = client.search(collection, data=data.tolist(), filter=active_filter(deployment_id, at_unix_s), limit=topk,
                        output_fields=list(HIT_FIELDS) if min_score is None else [],
                        search_params={"metric_type": METRIC}, timeout=timeout_s)
    if min_score is None:
        return [dedup_hits(probe, limit) for probe in res]
    passed = [[(int(h["id"]), float(h["distance"])) for h in probe if float(h["distance"]) >= min_score]
              for probe in res]
    wanted = sorted({row for probe in passed for row, _ in probe})
    if not wanted:
        return [[] for _ in passed]
    rows = client.query(collection, filter=f"id in {wanted}", output_fields=["id", *HIT_FIELDS], timeout=timeout_s)
    meta = {int(r["id"]): r for r in rows}
    return [dedup_hits([{"id": row, "distance": score, "entity": meta[row]} for row, score in probe if row in meta],
                       limit) for probe in passed]


def fetch_image(client: Any, row_id: int, timeout_s: float | None = None,
                collection: str = COLLECTION) -> bytes | None:
    """The enrolled aligned face (JPEG bytes) of a hit, for the officer's side-by-side review."""
    rows = client.query(collection, filter=f"id == {int(row_id)}", output_fields=["image_jpeg_b64"], timeout=timeout_s)
    if not rows or not rows[0].get("image_jpeg_b64"):
        return None
    return base64.b64decode(rows[0]["image_jpeg_b64"])
