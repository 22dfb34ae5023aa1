"""`lfr eval DIR [--json OUT] [--plot OUT.png]`: identification accuracy through
the real Triton models and a temporary Milvus collection (see services.eval.core)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from services.common.errors import SetupError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="TPIR/FPIR of the deployed models on a folder-per-identity set (Triton + Milvus)")
    p.add_argument("dir", type=Path, help="one folder per identity; >= 2 images: subject, 1 image: passer-by")
    p.add_argument("--json", type=Path, help="write the full report (per-threshold table included) here")
    p.add_argument("--plot", type=Path, help="write the DET curve (PNG) here")
    p.add_argument("--triton", default="127.0.0.1:8001", help="Triton gRPC host:port")
    p.add_argument("--milvus", default="http://127.0.0.1:19530", help="Milvus URI")
    p.add_argument("--batch", type=int, default=8, help="images per pipeline call (<= faceboxes max_batch_size, 8)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


async def _evaluate(args: argparse.Namespace) -> tuple[dict[str, Any], Any, Any]:
    from tqdm import tqdm

    from services.common.triton_client import TritonClient, TritonClientSettings, TritonError
    from services.eval.core import EvalSettings, discover, evaluate
    from services.face.pipeline import FACE_MODELS

    settings = EvalSettings(triton_url=args.triton, milvus_uri=args.milvus, batch=args.batch)
    ds = discover(args.dir)
    if not ds.files:
        raise SetupError(f"no images under {args.dir}", "give a folder with one sub-folder of images per identity")
    client = TritonClient(TritonClientSettings(url=settings.triton_url, max_batch=8, timeout_s=60))
    try:
        try:
            await client.wait_ready(list(FACE_MODELS), timeout_s=30)
        except TritonError as e:
            raise SetupError(f"Triton models not ready at {settings.triton_url}: {e}",
                             "run '.venv/bin/lfr models build' and '.venv/bin/lfr stack up --only triton'") from e
        with tqdm(total=len(ds.files), unit="img", disable=args.no_progress, file=sys.stderr) as bar:
            try:
                return await evaluate(ds, client, settings, tick=bar.update)
            except TritonError as e:
                raise SetupError(f"inference failed: {e}", "check '.venv/bin/lfr stack status'") from e
    finally:
        await client.close()


def _run(args: argparse.Namespace) -> int:
    from pymilvus.exceptions import MilvusException

    from services.eval.core import plot_det

    try:
        report, mated, nonmated = asyncio.run(_evaluate(args))
    except MilvusException as e:
        raise SetupError(f"Milvus at {args.milvus} failed: {e}", "run '.venv/bin/lfr stack up --only milvus'") from e
    if args.plot:
        plot_det(mated, nonmated, args.plot, f"DET, {args.dir.name} ({report['counts']['subjects_enrolled']} "
                 f"enrolled, {report['counts']['nonmated_probes']} passers-by)",
                 {"zero false alerts": report["threshold_zero_false_alerts"],
                  "recommended": report["recommended_threshold"]})
        report["plot"] = str(args.plot)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    summary = {k: v for k, v in report.items() if k not in ("per_threshold", "rejected")}
    print(json.dumps(summary, indent=2))
    return 0
