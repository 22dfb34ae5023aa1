"""Redis from Debian's ``redis-server`` on 127.0.0.1:6379.

Installed with apt when missing (the stack runs as root on the dev/CI
machine). Runs with no persistence at all (``save ""``, ``appendonly no``, no
dump at shutdown, SAVE/BGSAVE/BGREWRITEAOF/SHUTDOWN/DEBUG renamed away): keys such as frame,
face or officer-availability entries and alert crops must never reach disk.
"""

from __future__ import annotations

import shutil

from services.common.errors import SetupError
from services.stack.base import Component, Health, apt_install

# The never-persist lines of the shipped configs (deploy/redis/redis.conf): no AOF, no RDB,
# no dump at shutdown, diskless replication, and the commands that write a dump on demand renamed away.
NO_DISK_ARGS: tuple[str, ...] = (
    "--save", "",
    "--appendonly", "no",
    "--shutdown-on-sigterm", "nosave",
    "--shutdown-on-sigint", "nosave",
    "--repl-diskless-sync", "yes",
    "--repl-diskless-load", "swapdb",
    "--rename-command", "SAVE", "",
    "--rename-command", "BGSAVE", "",
    "--rename-command", "BGREWRITEAOF", "",
    "--rename-command", "SHUTDOWN", "",  # SHUTDOWN SAVE writes a dump whatever `save` says; stopped by SIGTERM
    "--rename-command", "DEBUG", "",  # DEBUG RELOAD too
)


class RedisComponent(Component):
    name = "redis"
    port = 6379

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port,)

    def binary(self) -> str | None:
        return shutil.which("redis-server")

    def install(self) -> None:
        apt_install("redis-server", "redis-server")

    def command(self) -> tuple[list[str], dict[str, str]]:
        binary = self.binary()
        if binary is None:
            raise SetupError("redis-server is not installed", "run 'lfr stack install --only redis'")
        argv = [
            binary,
            "--bind", self.host,
            "--port", str(self.port),
            "--dir", str(self.paths.data_dir(self.name)),
            "--daemonize", "no",
            *NO_DISK_ARGS,
            "--protected-mode", "yes",
            "--logfile", "",
        ]
        return argv, {}

    def health(self) -> Health:
        import redis

        endpoint = f"redis://{self.host}:{self.port}"
        client = redis.Redis(host=self.host, port=self.port, socket_timeout=2.0, socket_connect_timeout=2.0)
        try:
            ok = bool(client.ping())
            version = str(client.info("server").get("redis_version", "?"))
        except redis.RedisError as e:
            return Health(self.name, False, f"PING failed: {e}", endpoint=endpoint)
        finally:
            client.close()
        return Health(self.name, ok, f"PING ok, redis {version}", endpoint=endpoint)
