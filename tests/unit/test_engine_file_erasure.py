"""What SQLite keeps of a deleted row, and the two measures against it on the
local engine's file (the integration proof over the real engine is
tests/integration/test_watchlist_erasure.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from services.common.errors import SetupError
from services.stack.milvus import erase_freed_pages
from services.watchlist.store import Store


def _fill(db: Path) -> None:
    """Rows shaped like the engine's (id, milvus_id, data BLOB), two 'watchlists' interleaved."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA secure_delete=OFF")  # the engine's SQLite default (Debian's CLI turns it on)
    con.execute("CREATE TABLE IF NOT EXISTS faces (id INTEGER PRIMARY KEY, milvus_id VARCHAR(1024), data BLOB)")
    for i in range(300):
        tag = "GONE" if i % 3 == 0 or 100 <= i < 200 else "KEEP"
        con.execute("INSERT INTO faces (milvus_id, data) VALUES (?, ?)", (str(i), f"{tag}-{i:04d}".encode() * 60))
    con.close()


def _delete_gone(db: Path) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA secure_delete=OFF")
    con.execute("DELETE FROM faces WHERE CAST(data AS TEXT) LIKE 'GONE-%'")
    con.close()


def test_sqlite_keeps_deleted_bytes_by_default(tmp_path: Path) -> None:
    db = tmp_path / "milvus.db"
    _fill(db)
    _delete_gone(db)
    assert b"GONE-" in db.read_bytes(), "premise: a plain SQLite delete leaves the bytes in the file"


def test_auto_vacuum_drops_whole_freed_pages_but_not_residue_in_shared_pages(tmp_path: Path) -> None:
    db = tmp_path / "milvus.db"
    _fill(db)
    erase_freed_pages(db)  # what the stack does before the engine starts
    assert sqlite3.connect(db).execute("PRAGMA auto_vacuum").fetchone()[0] == 1
    _delete_gone(db)
    data = db.read_bytes()
    assert b"GONE-0150" not in data, "rows 100..199 filled whole pages: freed and cut from the file"
    assert b"GONE-0003" in data, "rows interleaved with live ones stay as unallocated bytes of their page"


def test_store_vacuum_leaves_no_deleted_bytes(tmp_path: Path) -> None:
    db = tmp_path / "milvus.db"
    _fill(db)
    _delete_gone(db)
    Store(client=None, timeout_s=5, engine_file=db).erase_deleted()
    data = db.read_bytes()
    assert b"GONE-" not in data
    assert data.count(b"KEEP-0001") == 60
    assert sqlite3.connect(db).execute("SELECT count(*) FROM faces").fetchone()[0] == 133


def test_store_refuses_a_missing_engine_file_and_never_creates_one(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "milvus.db"
    with pytest.raises(SetupError):
        Store(client=None, timeout_s=5, engine_file=missing).ensure()
    with pytest.raises(sqlite3.OperationalError):
        Store(client=None, timeout_s=5, engine_file=tmp_path / "milvus.db").erase_deleted()
    assert not (tmp_path / "milvus.db").exists()

# Without an engine file (a Milvus server) the store compacts instead: tests/unit/test_store_compaction.py
