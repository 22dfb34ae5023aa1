"""Every Milvus collection of the platform, named once (as services/common/topics.py
names the Kafka topics).

The watchlist service creates and owns both collections (services/common/faces_schema.py declares the
faces collections' fields, services/watchlist/schema.py the metadata collection's); the matcher searches
the faces collection; the Milvus roles (services/common/acls.py) grant privileges on them by these names."""

from __future__ import annotations

FACES_COLLECTION = "lfr_watchlist_faces"
"""Enrolled faces of the default embedder (mobilefacenet512): one row per face, identity as fields, the
L2-normalised embedding. Each other embedder's faces live in their own collection (faces_collection)."""

DEFAULT_EMBEDDER_OF_FACES = "mobilefacenet512"  # the embedder whose faces FACES_COLLECTION has always held

EMBEDDING_DIM = 512
"""The dimension of the faces collections' vectors: every embedder the platform ships makes 512-d vectors
(services/face/embedder.py)."""


def faces_collection(embedder: str) -> str:
    """The collection of enrolled faces embedded by ``embedder``: vectors of two embedders are never
    compared, so each has its own (the default keeps the name it has always had; the others are
    ``<FACES_COLLECTION>__<embedder>``, which services/common/faces_schema.py reads back by name)."""
    return FACES_COLLECTION if embedder == DEFAULT_EMBEDDER_OF_FACES else f"{FACES_COLLECTION}__{embedder}"

WATCHLISTS_COLLECTION = "lfr_watchlists"
"""Watchlist metadata and lifecycle: one row per watchlist, a constant dummy vector."""

ALL_COLLECTIONS = (FACES_COLLECTION, WATCHLISTS_COLLECTION)
