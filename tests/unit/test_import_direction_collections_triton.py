"""Sideways and upward imports: common names the Milvus collections itself and
never reaches up into the watchlist service; services.stack may use services.triton_repo but
never the other way round (both share services.common.stack_paths). The import graph of the runtime
services and services/common as a whole: test_import_graph.py (whose helper these checks use)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_import_graph import imported_modules

REPO = Path(__file__).resolve().parents[2]


def test_common_imports_no_service_package_for_collection_names():
    assert not {m for m in imported_modules(REPO / "services" / "common") if m.startswith("services.watchlist")}


def test_milvus_roles_do_not_load_the_watchlist_service():
    code = ("import sys; from services.common.acls import milvus_roles; milvus_roles(); "
            "sys.exit(1 if any(m.startswith('services.watchlist') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO, check=False).returncode == 0


def test_collection_names_have_one_source():
    from services.common import acls, faces_schema
    from services.common.milvus_collections import (ALL_COLLECTIONS, FACES_COLLECTION, WATCHLISTS_COLLECTION,
                                                    faces_collection)
    from services.face.embedders import DEFAULT_EMBEDDER, embedders
    from services.watchlist import schema

    assert (faces_schema.COLLECTION, schema.WATCHLISTS_COLLECTION) == (FACES_COLLECTION, WATCHLISTS_COLLECTION)
    assert ALL_COLLECTIONS == ("lfr_watchlist_faces", "lfr_watchlists")
    granted = {g.object_name for role in acls.milvus_roles() for g in role.grants if g.object_type == "Collection"}
    every_embedder = {faces_collection(e) for e in embedders()}
    assert FACES_COLLECTION == faces_collection(DEFAULT_EMBEDDER) and len(every_embedder) == len(embedders())
    assert granted == set(ALL_COLLECTIONS) | every_embedder


def test_triton_repo_never_imports_the_stack():
    assert not {m for m in imported_modules(REPO / "services" / "triton_repo") if m.startswith("services.stack")}


def test_stack_paths_is_one_class():
    from services.common.stack_paths import StackPaths
    from services.stack import base
    from services.triton_repo import assemble

    assert base.StackPaths is StackPaths and assemble.StackPaths is StackPaths
