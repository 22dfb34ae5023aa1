"""Milvus in the local stack: milvus-lite's native engine on 127.0.0.1:19530.

The engine is the ``milvus`` binary shipped in the milvus-lite 2.5.1 wheel
(Milvus' C++ segcore + knowhere, one process, data in one local ``.db`` file),
run as a gRPC server on a TCP address. The services' pymilvus (requirements/lock.txt)
talks to it over ``MilvusClient(uri="http://127.0.0.1:19530")``; in production
the same URI points at a Milvus standalone or cluster.

Why not the ``milvus-lite server`` of milvus-lite 3.x in the services venv: it is
pure Python, ~10x slower than numpy brute force at 10k faces (bench/watchlist_scale.py),
and the matcher's latency budget cannot take that.

The wheel is installed once, pinned by sha256, into its own small venv (it is
not importable next to the lock's milvus-lite 3.x) at ``<cache>/milvus/<version>/``:

    venv/            python -m venv + pip install milvus-lite==<version> --no-deps
    .complete        written last: the cache entry is whole

The binary runs with its bundled libs on LD_LIBRARY_PATH; its data is
``<state>/data/milvus/milvus.db``. One server is shared by all services.
"""

from __future__ import annotations

import fcntl
import logging
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from services.common.errors import SetupError
from services.stack.base import Component, Health

log = logging.getLogger("lfr.stack.milvus")

VERSION = "2.5.1"
# sha256 of the PyPI wheels (the engine is a native binary: one wheel per machine type)
WHEEL_SHA256 = {
    "x86_64": "25ce13f4b8d46876dd2b7ac8563d7d8306da7ff3999bb0d14b116b30f71d706c",
    "aarch64": "a13277e9bacc6933dea172e42231f7e6135bd3bdb073dd2688ee180418abd8d9",
}
DB_FILE = "milvus.db"  # the engine wants [A-Za-z0-9.-_], at most 36 chars
LOG_LEVEL = "ERROR"
# files of the milvus-lite 3.x server that an older checkout left in the data dir
LEGACY_ENTRIES = ("collections", "databases", ".database-staging", "LOCK")


def erase_freed_pages(db: Path) -> None:
    """Put the engine's SQLite file in ``auto_vacuum=FULL`` (run while the server is down).

    The engine deletes a row (delete by filter, drop_collection) from its SQLite file at once, but
    SQLite keeps the freed pages, bytes intact, on its free list until a later insert reuses them:
    a closed watchlist's vectors and image refs stayed readable in the file. With ``FULL`` every
    commit that frees pages moves the file's last pages into the holes and truncates the file, so
    the freed bytes leave the file in the delete's own transaction (measured: docs/design.md, "Destroyed at
    once"). The mode is stored in the file; VACUUM applies it to an existing
    file (and drops the free pages it already holds). A new file is created in this mode. Bytes of
    deleted rows inside pages that keep live rows stay: the watchlist service VACUUMs the file after
    its deletes for those (services/watchlist/config.py ``local_engine_file``)."""
    import sqlite3

    con = sqlite3.connect(db, isolation_level=None)
    try:
        if con.execute("PRAGMA auto_vacuum").fetchone()[0] != 1:  # 1 = FULL
            con.execute("PRAGMA auto_vacuum=FULL")
            con.execute("VACUUM")
            log.info("milvus: %s set to auto_vacuum=FULL (freed pages leave the file at once)", db)
    except sqlite3.DatabaseError as e:  # not (yet) a SQLite file: the engine will say what it thinks of it
        log.warning("milvus: could not set auto_vacuum on %s: %s", db, e)
    finally:
        con.close()


class MilvusComponent(Component):
    name = "milvus"
    port = 19530

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port,)

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- cache layout ----------------------------------------------------------
    @property
    def home(self) -> Path:
        return self.paths.cache / "milvus" / VERSION

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    def lib_dir(self) -> Path:
        """The wheel's bundled engine and its shared libraries."""
        found = sorted(self.venv.glob("lib/python*/site-packages/milvus_lite/lib"))
        if not found:
            raise SetupError(f"milvus: the engine is missing from {self.venv}",
                             f"remove {self.home} and run 'lfr stack install --only milvus'")
        return found[0]

    def binary(self) -> Path:
        return self.lib_dir() / "milvus"

    def db_file(self) -> Path:
        return self.paths.data_dir(self.name) / DB_FILE

    def installed(self) -> bool:
        return (self.home / ".complete").is_file()

    # -- install ---------------------------------------------------------------
    def install(self) -> None:
        if self.installed():
            return
        lock_path = self.paths.cache / "milvus" / ".install.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a second `lfr stack install` waits, then finds it done
            if not self.installed():
                try:
                    self._install()
                except BaseException:
                    shutil.rmtree(self.home, ignore_errors=True)  # never leave a half entry behind
                    raise

    def _install(self) -> None:
        machine = platform.machine()
        digest = WHEEL_SHA256.get(machine)
        if digest is None:
            raise SetupError(f"milvus: milvus-lite {VERSION} ships no engine for {machine}",
                             f"run on one of {', '.join(sorted(WHEEL_SHA256))}, or point the services at a "
                             "Milvus standalone")
        home = self.home
        log.info("milvus: installing milvus-lite %s (native engine) into %s (first run only)", VERSION, home)
        # in place under the final name (venv scripts hard-code their path); .complete, written last,
        # is what makes the entry valid
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        self._run([sys.executable, "-m", "venv", str(self.venv)], "create the Milvus venv",
                  "check that python3.11 has the venv module (apt-get install python3.11-venv)")
        req = home / "requirements.txt"
        req.write_text(f"milvus-lite=={VERSION} --hash=sha256:{digest}\n")
        self._run([str(self.venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                   "--no-deps", "--only-binary=:all:", "--require-hashes", "--retries", "1", "--timeout", "30",
                   "-r", str(req)],
                  f"install milvus-lite=={VERSION} from PyPI",
                  "check the network to PyPI (pip config) and rerun 'lfr stack install --only milvus'")
        binary = self.binary()
        if not binary.is_file():
            raise SetupError(f"milvus: {binary} is missing from the milvus-lite {VERSION} wheel",
                             f"check the milvus-lite pin in {__name__}")
        (home / ".complete").write_text(f"milvus-lite {VERSION}\n")
        log.info("milvus: installed the engine %s", binary)

    @staticmethod
    def _run(argv: list[str], what: str, fix: str) -> None:
        r = subprocess.run(argv, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            lines = [ln.strip() for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
            reason = next((ln for ln in reversed(lines) if ln.startswith("ERROR")), lines[-1] if lines else "no output")
            raise SetupError(f"milvus: could not {what}: {reason[:300]}", fix)

    # -- run -------------------------------------------------------------------
    def prepare(self) -> None:
        # data of the milvus-lite 3.x server (the engine before this one) cannot be read by this
        # engine: remove it rather than leave unreachable enrolled faces on disk
        data = self.paths.data_dir(self.name)
        for entry in LEGACY_ENTRIES:
            p = data / entry
            if p.is_dir():
                shutil.rmtree(p)
                log.info("milvus: removed %s (milvus-lite 3.x data, unreadable by the native engine)", p)
            elif p.exists():
                p.unlink()
        erase_freed_pages(self.db_file())

    def command(self) -> tuple[list[str], dict[str, str]]:
        lib = self.lib_dir()
        argv = [str(lib / "milvus"), str(self.db_file()), self.address, LOG_LEVEL]
        return argv, {"LD_LIBRARY_PATH": str(lib)}

    def health(self) -> Health:
        from services.common.clients import milvus_client
        from pymilvus.exceptions import MilvusException

        try:
            client = milvus_client(self.uri, timeout=3.0)
        except (MilvusException, OSError) as e:
            return Health(self.name, False, f"connect failed: {e}", endpoint=self.uri)
        try:
            cols = client.list_collections(timeout=3.0)
        except (MilvusException, OSError) as e:
            return Health(self.name, False, f"list_collections failed: {e}", endpoint=self.uri)
        finally:
            client.close()
        return Health(self.name, True, f"list_collections ok ({len(cols)} collections)", endpoint=self.uri)
