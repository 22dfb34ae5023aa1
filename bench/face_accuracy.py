"""Quick identification accuracy of the in-process face pipeline (OnnxRunner, no Triton, no Milvus) on a
folder-per-identity set such as ../shared/data/lfw_dev: `lfr eval`'s protocol, metrics and report
(services/eval/evaluation.py), with the models run by onnxruntime and the gallery searched exactly in numpy.

    .venv/bin/python -m bench.face_accuracy ../shared/data/lfw_dev [--embedder a,b] [--groups FILE.csv]
        [--config '{"flip_average": true}'] [--json out.json] [--save-embeddings out.npz]

Use it to try FaceConfig variants offline; the figures of record come from `lfr eval` (docs/accuracy.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import numpy as np

from services.eval.cli import summary
from services.eval.evaluation import EvalSettings, discover, evaluate, exact_search
from services.eval.groups import read_groups
from services.face.config import FaceConfig
from services.face.runner import OnnxRunner


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--embedder", help="embedders, comma-separated (default: the config's)")
    ap.add_argument("--groups", type=Path, help="CSV identity,<column>... (lfr eval --groups)")
    ap.add_argument("--json", type=Path, help="write the full report here")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (0: none)")
    ap.add_argument("--config", type=str, default="{}", help="FaceConfig overrides as JSON")
    ap.add_argument("--save-embeddings", type=Path,
                    help="npz (ids, status, emb_<embedder> per embedder) for offline threshold studies; stays local")
    args = ap.parse_args(argv)
    cfg = FaceConfig.model_validate(json.loads(args.config))
    names = [n.strip() for n in args.embedder.split(",")] if args.embedder else [cfg.embedder]
    settings = EvalSettings(batch=args.batch, bootstrap_resamples=args.resamples)
    ds = discover(args.dir)
    ev = asyncio.run(evaluate(ds, OnnxRunner(), settings, cfg, embedders=names, search=exact_search,
                              groups_table=read_groups(args.groups) if args.groups else None))
    if args.save_embeddings:
        np.savez(args.save_embeddings, ids=np.array(ds.ids), status=np.array(ev.embedded.status),
                 **{f"emb_{n}": v for n, v in ev.embedded.vectors.items()})
    ev.report["config"] = cfg.model_dump(mode="json")
    if args.json:
        args.json.write_text(json.dumps(ev.report, indent=2) + "\n")
    print(json.dumps(summary(ev.report), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
