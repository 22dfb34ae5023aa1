"""`make proto`: regenerate the Python code for proto/lfr/v1/*.proto.

Runs grpcio-tools' protoc (``--python_out``, ``--pyi_out``, ``--grpc_python_out``)
from ``proto/`` into ``services/gen/`` so that ``lfr.v1`` is importable (the
``services/gen`` folder is a package root in pyproject.toml).

``--check`` generates into a temporary folder and compares it with the committed
code: exit 1 and a list of stale files when they differ. ``tests/unit/test_proto_fresh.py``
runs the check.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from services.common.paths import REPO_ROOT as REPO

PROTO_ROOT = REPO / "proto"
GEN_ROOT = REPO / "services" / "gen"
PACKAGE_DIR = Path("lfr") / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


class ProtocError(RuntimeError):
    pass


def proto_files(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """The .proto sources, relative to proto_root, sorted."""
    return sorted(p.relative_to(proto_root) for p in (proto_root / PACKAGE_DIR).glob("*.proto"))


def generated_files(gen_root: Path) -> dict[str, Path]:
    """Generated files under gen_root/lfr/v1, keyed by name."""
    folder = gen_root / PACKAGE_DIR
    if not folder.is_dir():
        return {}
    return {p.name: p for p in folder.iterdir() if p.is_file() and p.name.endswith(GENERATED_SUFFIXES)}


def generate(out_root: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Run protoc for every .proto into out_root; returns the generated files."""
    from grpc_tools import protoc  # heavy: imported only when generating

    sources = proto_files(proto_root)
    if not sources:
        raise ProtocError(f"no .proto files under {proto_root / PACKAGE_DIR}")
    well_known = str(resources.files("grpc_tools") / "_proto")
    out_root.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{proto_root}",
        f"-I{well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(s) for s in sources),
    ]
    rc = protoc.main(args)
    if rc != 0:
        raise ProtocError(f"protoc failed with exit code {rc} (see the messages above)")
    return sorted(generated_files(out_root).values())


def stale_files(gen_root: Path = GEN_ROOT, proto_root: Path = PROTO_ROOT) -> list[str]:
    """Names of generated files that are missing, extra or different from a fresh run."""
    with tempfile.TemporaryDirectory(prefix="lfr-protogen-") as tmp:
        generate(Path(tmp), proto_root)
        fresh = generated_files(Path(tmp))
        current = generated_files(gen_root)
        out: list[str] = []
        for name in sorted(set(fresh) | set(current)):
            if name not in current:
                out.append(f"{name} (missing)")
            elif name not in fresh:
                out.append(f"{name} (no longer generated)")
            elif not filecmp.cmp(fresh[name], current[name], shallow=False):
                out.append(f"{name} (differs)")
        return out


def write(gen_root: Path = GEN_ROOT, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Regenerate into gen_root, replacing the previous generated files (and only those)."""
    with tempfile.TemporaryDirectory(prefix="lfr-protogen-") as tmp:
        generate(Path(tmp), proto_root)
        target = gen_root / PACKAGE_DIR
        target.mkdir(parents=True, exist_ok=True)
        for old in generated_files(gen_root).values():
            old.unlink()
        written = []
        for name, src in sorted(generated_files(Path(tmp)).items()):
            shutil.copyfile(src, target / name)
            written.append(target / name)
        for init in (gen_root / "lfr" / "__init__.py", target / "__init__.py"):
            init.touch(exist_ok=True)
        return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.cli.protogen", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if services/gen is stale; write nothing")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        if stale:
            print("generated code is stale — fix: run `make proto` and commit services/gen:", file=sys.stderr)
            for s in stale:
                print(f"  {s}", file=sys.stderr)
            return 1
        print(f"services/gen is up to date ({len(proto_files())} .proto files)")
        return 0
    written = write()
    print(f"generated {len(written)} files into {GEN_ROOT.relative_to(REPO) / PACKAGE_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
