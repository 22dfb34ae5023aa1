"""The contract every local-stack component implements.

A component is one real server (Kafka, Redis, Triton, Milvus) that the local
stack installs into the cache (``paths.cache``), runs as a detached child with
its PID, data and log under the state dir (``paths.state``), checks for health,
and stops by PID. Components never share state through globals: everything
comes from :class:`StackPaths` and their own settings.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from services.common.errors import SetupError
from services.common.stack_paths import StackPaths  # also imported from here by the stack and its tests

log = logging.getLogger("lfr.stack")


@dataclasses.dataclass
class Health:
    name: str
    healthy: bool
    detail: str
    pid: int | None = None
    endpoint: str = ""

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0): look at its state
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running; reaps the leader if it is our child."""
    try:
        os.waitpid(pgid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return any(_pgid_of(p) == pgid and pid_alive(p) for p in _pids())


def _pids() -> list[int]:
    return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit()]


def _pgid_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, ValueError, IndexError):
        return None


APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}


def apt_install(package: str, binary: str) -> str:
    """Install Debian's ``package`` with apt-get (update first) unless ``binary`` is on PATH; return its path.

    Idempotent; the local stack runs as root on the dev/CI machine. SetupError with the fix otherwise."""
    if found := shutil.which(binary):
        return found
    if os.geteuid() != 0:
        raise SetupError(f"{binary} is not installed and installing it needs root",
                         f"run 'sudo apt-get install -y {package}'")
    log.info("installing %s with apt-get", package)
    env = {**os.environ, **APT_ENV}
    for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", package]):
        try:
            res = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise SetupError(f"'{' '.join(argv)}' failed: {e}",
                             "check the Debian apt mirror is reachable, then rerun 'lfr stack install'") from e
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["no output"])[-1]
            raise SetupError(f"'{' '.join(argv)}' exited {res.returncode}: {last}",
                             "check the Debian apt mirror is reachable, then rerun 'lfr stack install'")
    if not (found := shutil.which(binary)):
        raise SetupError(f"apt-get installed {package} but {binary} is not on PATH",
                         f"add /usr/bin to PATH or install {package} by hand")
    return found


class Component(abc.ABC):
    """One real server of the local stack."""

    name: str = ""
    host: str = "127.0.0.1"

    def __init__(self, paths: StackPaths) -> None:
        self.paths = paths

    # -- what each component says about itself ---------------------------------
    @property
    @abc.abstractmethod
    def ports(self) -> tuple[int, ...]:
        """TCP ports it listens on (checked free before start, freed after stop)."""

    @abc.abstractmethod
    def install(self) -> None:
        """Fetch/build what it needs into the cache; idempotent; SetupError on failure."""

    @abc.abstractmethod
    def command(self) -> tuple[list[str], dict[str, str]]:
        """argv and extra environment to run the server in the foreground."""

    @abc.abstractmethod
    def health(self) -> Health:
        """A real protocol-level check (not just 'port open')."""

    def prepare(self) -> None:
        """One-time per-state-dir preparation before the first start (e.g. format)."""

    # -- lifecycle shared by all ------------------------------------------------
    def read_pid(self) -> int | None:
        f = self.paths.pid_file(self.name)
        try:
            pid = int(f.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def start(self, timeout: float = 120.0) -> Health:
        if (pid := self.read_pid()) is not None:
            h = self.wait_healthy(timeout)
            h.pid = pid
            return h
        for port in self.ports:
            if port_in_use(self.host, port):
                raise SetupError(
                    f"{self.name}: port {self.host}:{port} is already taken by another process",
                    f"stop whatever listens there (ss -ltnp 'sport = :{port}') or run 'lfr stack down'",
                )
        self.install()
        for d in (self.paths.data_dir(self.name), self.paths.log_file(self.name).parent,
                  self.paths.pid_file(self.name).parent):
            d.mkdir(parents=True, exist_ok=True)
        self.prepare()
        argv, env = self.command()
        log = open(self.paths.log_file(self.name), "ab")
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **env}, start_new_session=True,
            cwd=self.paths.data_dir(self.name),
        )
        log.close()
        self.paths.pid_file(self.name).write_text(str(proc.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SetupError(
                    f"{self.name} exited with code {proc.returncode} at start",
                    f"read {self.paths.log_file(self.name)}",
                )
            h = self.health()
            if h.healthy:
                h.pid = proc.pid
                return h
            time.sleep(0.5)
        raise SetupError(f"{self.name} did not become healthy in {timeout:.0f} s",
                         f"read {self.paths.log_file(self.name)}")

    def wait_healthy(self, timeout: float) -> Health:
        deadline = time.monotonic() + timeout
        h = self.health()
        while not h.healthy and time.monotonic() < deadline:
            time.sleep(0.5)
            h = self.health()
        return h

    def stop(self, timeout: float = 30.0) -> None:
        pid = self.read_pid()
        pf = self.paths.pid_file(self.name)
        if pid is not None:
            # the whole process group: servers that fork helpers (Triton stubs) go too
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            # wait for the whole group (not only its leader) to be gone
            deadline = time.monotonic() + timeout
            while group_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            if group_alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                deadline = time.monotonic() + 5.0
                while group_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.1)
        pf.unlink(missing_ok=True)

    def status(self) -> Health:
        pid = self.read_pid()
        if pid is None:
            return Health(self.name, False, "not running")
        h = self.health()
        h.pid = pid
        return h
