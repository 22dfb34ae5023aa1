"""NVIDIA Triton Inference Server in the local stack.

The real ``tritonserver`` 2.51 binary bundled in the ``nvidia-pytriton`` wheel
(python backend only), in its own venv (it pins numpy<2) built from
requirements/triton.txt into ``<cache>/triton/<hash>/``:

    venv/                 the interpreter the python backend stub embeds (numpy, onnxruntime, opencv)
    server/               the bundled server dir, with the 3.11 python backend stub in backends/python/
    triton.json           what command() needs (venv libpython dir, bundled libs dir)
    .complete             written last: the cache entry is whole

It serves a plain model repository (config.pbtxt + model.py), assembled at each
start under ``<state>/triton-repo`` by services.triton_repo.assemble.
Ports: 8000 HTTP, 8001 gRPC, 8002 metrics.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from services.common.errors import SetupError
from services.common.paths import REPO_ROOT
from services.stack.base import Component, Health

log = logging.getLogger("lfr.stack.triton")

REQUIREMENTS = REPO_ROOT / "requirements" / "triton.txt"
PY_VERSION = "3.11"
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002

# run inside the new venv: where its libpython and site-packages are
_PROBE = (
    "import json, sysconfig, site, pathlib, sys;"
    "libdir = sysconfig.get_config_var('LIBDIR'); so = sysconfig.get_config_var('INSTSONAME');"
    "print(json.dumps({'libdir': libdir, 'libpython': str(pathlib.Path(libdir) / so),"
    " 'shared': bool(sysconfig.get_config_var('Py_ENABLE_SHARED')), 'site': site.getsitepackages()[0],"
    " 'version': '%d.%d' % sys.version_info[:2]}))"
)


def _base_python() -> str:
    """The real 3.11 interpreter behind the running venv (never a venv's own)."""
    base = Path(sys.base_prefix) / "bin" / f"python{PY_VERSION}"
    if base.exists() and sys.version_info[:2] == (3, 11):
        return str(base)
    found = shutil.which(f"python{PY_VERSION}")
    if not found:
        raise SetupError("triton: python3.11 is not installed (the python backend stub is built for 3.11)",
                         "install python3.11 with a shared libpython")
    return found


class TritonComponent(Component):
    name = "triton"

    @property
    def ports(self) -> tuple[int, ...]:
        return (HTTP_PORT, GRPC_PORT, METRICS_PORT)

    # -- cache layout ----------------------------------------------------------
    @property
    def home(self) -> Path:
        digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
        return self.paths.cache / "triton" / digest

    @property
    def venv(self) -> Path:
        return self.home / "venv"

    @property
    def server(self) -> Path:
        return self.home / "server"

    def installed(self) -> bool:
        return (self.home / ".complete").is_file()

    def _meta(self) -> dict[str, str]:
        try:
            return dict(json.loads((self.home / "triton.json").read_text()))
        except (OSError, ValueError) as e:
            raise SetupError(f"triton: the install at {self.home} is incomplete ({e})",
                             f"remove {self.home} and run 'lfr stack install --only triton'") from e

    # -- install ---------------------------------------------------------------
    def install(self) -> None:
        if self.installed():
            return
        lock_path = self.paths.cache / "triton" / ".install.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # a second `lfr stack install` waits, then finds it done
            if not self.installed():
                self._install()

    def _install(self) -> None:
        home = self.home
        log.info("triton: building the server venv at %s (first run only)", home)
        # build in place under the final name (venv scripts hard-code their path);
        # the .complete marker, written last, is what makes the entry valid
        shutil.rmtree(home, ignore_errors=True)
        venv = home / "venv"
        self._run([_base_python(), "-m", "venv", str(venv)], "create the Triton venv",
                  "check that python3.11 has the venv module (apt-get install python3.11-venv)")
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        self._run([*pip, "-r", str(REQUIREMENTS)], f"install {REQUIREMENTS.name} from PyPI",
                  "check the network to PyPI (pip config) and rerun 'lfr stack install --only triton'")
        probe = subprocess.run([str(venv / "bin" / "python"), "-c", _PROBE], capture_output=True, text=True,
                               check=False)
        if probe.returncode != 0:
            raise SetupError(f"triton: cannot inspect the Triton venv: {probe.stderr.strip()[-300:]}",
                             f"remove {home} and rerun 'lfr stack install --only triton'")
        info = json.loads(probe.stdout)
        if info["version"] != PY_VERSION or not info["shared"] or not Path(info["libpython"]).exists():
            raise SetupError(
                f"triton: the python backend stub needs a shared libpython {PY_VERSION}, found {info}",
                "use a python3.11 built with --enable-shared (pyenv: PYTHON_CONFIGURE_OPTS=--enable-shared)")
        site = Path(info["site"])
        bundled = site / "pytriton" / "tritonserver"
        stub = bundled / "python_backend_stubs" / PY_VERSION / "triton_python_backend_stub"
        libs = site / "nvidia_pytriton.libs"
        for p in (bundled / "bin" / "tritonserver", stub, libs):
            if not p.exists():
                raise SetupError(f"triton: {p} is missing from the nvidia-pytriton wheel",
                                 f"check the nvidia-pytriton pin in {REQUIREMENTS}")
        server = home / "server"
        shutil.copytree(bundled, server, symlinks=True, ignore=shutil.ignore_patterns("python_backend_stubs"))
        shutil.copy2(stub, server / "backends" / "python" / "triton_python_backend_stub")
        meta = {"libdir": info["libdir"], "libs": str(libs), "site": str(site)}
        (home / "triton.json").write_text(json.dumps(meta, indent=2))
        (home / ".complete").write_text("ok\n")
        log.info("triton: installed tritonserver into %s", server)

    @staticmethod
    def _run(argv: list[str], what: str, fix: str) -> None:
        r = subprocess.run(argv, capture_output=True, text=True, check=False)
        if r.returncode != 0:
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
            raise SetupError(f"triton: could not {what}: {tail[0][:300]}", fix)

    # -- run -------------------------------------------------------------------
    def prepare(self) -> None:
        from services.triton_repo.assemble import assemble

        assemble(self.paths)

    def start(self, timeout: float = 120.0) -> Health:
        """Start, or when already running without a model that is now built (or with
        one that is gone), restart so the repository matches the model cache."""
        if self.read_pid() is not None:
            from services.triton_repo.assemble import servable

            want, have = set(servable(self.paths)), set(self._models())
            if have and want != have:
                log.info("triton: restarting to serve %s (serving %s)", ", ".join(sorted(want)),
                         ", ".join(sorted(have)))
                self.stop()
        return super().start(timeout)

    def command(self) -> tuple[list[str], dict[str, str]]:
        from services.triton_repo.assemble import runtime_repo

        meta = self._meta()
        argv = [
            str(self.server / "bin" / "tritonserver"),
            f"--model-repository={runtime_repo(self.paths)}",
            f"--backend-directory={self.server / 'backends'}",
            f"--http-address={self.host}", f"--http-port={HTTP_PORT}",
            f"--grpc-address={self.host}", f"--grpc-port={GRPC_PORT}",
            f"--metrics-address={self.host}", f"--metrics-port={METRICS_PORT}",
            "--allow-metrics=true", "--allow-gpu-metrics=false", "--allow-cpu-metrics=true",
            "--pinned-memory-pool-byte-size=0",
            "--strict-readiness=true", "--exit-on-error=true",
            "--log-verbose=0",
        ]
        env = {
            "LD_LIBRARY_PATH": ":".join(p for p in (meta["libdir"], meta["libs"], os.environ.get("LD_LIBRARY_PATH", ""))
                                        if p),
            "PATH": f"{self.venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "VIRTUAL_ENV": str(self.venv),
        }
        return argv, env

    def health(self) -> Health:
        endpoint = f"grpc {self.host}:{GRPC_PORT} http {self.host}:{HTTP_PORT}"
        url = f"http://{self.host}:{HTTP_PORT}/v2/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=2.0) as r:
                ready = r.status == 200
        except urllib.error.HTTPError as e:
            return Health(self.name, False, f"/v2/health/ready answered {e.code}", endpoint=endpoint)
        except (urllib.error.URLError, OSError) as e:
            return Health(self.name, False, f"no answer on {url}: {e}", endpoint=endpoint)
        return Health(self.name, ready, f"ready; models: {', '.join(self._models()) or 'none'}", endpoint=endpoint)

    def _models(self) -> list[str]:
        req = urllib.request.Request(f"http://{self.host}:{HTTP_PORT}/v2/repository/index", data=b"{}",
                                     method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=2.0) as r:
                index = json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError):
            return []
        return sorted(m["name"] for m in index if m.get("state") == "READY")
