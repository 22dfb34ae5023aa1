"""Milvus: the ``milvus-lite server`` from the services venv on 127.0.0.1:19530.

One server is shared by all services (two processes cannot open the same
milvus-lite data folder). Clients use ``MilvusClient(uri="http://127.0.0.1:19530")``;
in production the same URI points at a Milvus standalone or cluster.
"""

from __future__ import annotations

import sys
from pathlib import Path

from services.common.errors import SetupError
from services.stack.base import Component, Health


class MilvusComponent(Component):
    name = "milvus"
    port = 19530

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port,)

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def binary(self) -> Path:
        # the console script sits next to the venv's interpreter (not resolved: the venv, not the base python)
        return Path(sys.executable).parent / "milvus-lite"

    def install(self) -> None:
        if not self.binary().is_file():
            raise SetupError(f"milvus-lite is not installed in the venv ({self.binary()} is missing)",
                             "run 'make venv' (requirements/lock.txt pins milvus-lite)")

    def command(self) -> tuple[list[str], dict[str, str]]:
        argv = [str(self.binary()), "server", "--data-dir", str(self.paths.data_dir(self.name)),
                "--host", self.host, "--port", str(self.port)]
        return argv, {}

    def health(self) -> Health:
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        try:
            client = MilvusClient(uri=self.uri, timeout=3.0)
        except (MilvusException, OSError) as e:
            return Health(self.name, False, f"connect failed: {e}", endpoint=self.uri)
        try:
            cols = client.list_collections(timeout=3.0)
        except (MilvusException, OSError) as e:
            return Health(self.name, False, f"list_collections failed: {e}", endpoint=self.uri)
        finally:
            client.close()
        return Health(self.name, True, f"list_collections ok ({len(cols)} collections)", endpoint=self.uri)
