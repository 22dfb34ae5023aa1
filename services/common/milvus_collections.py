"""Every Milvus collection of the platform, named once (as services/common/topics.py
names the Kafka topics).

The watchlist service creates and owns both collections (services/watchlist/schema.py
declares their fields); the matcher searches the faces collection; the Milvus roles
(services/common/acls.py) grant privileges on them by these names."""

from __future__ import annotations

FACES_COLLECTION = "lfr_watchlist_faces"
"""Enrolled faces: one row per face, identity as fields, the L2-normalised embedding."""

WATCHLISTS_COLLECTION = "lfr_watchlists"
"""Watchlist metadata and lifecycle: one row per watchlist, a constant dummy vector."""

ALL_COLLECTIONS = (FACES_COLLECTION, WATCHLISTS_COLLECTION)
