"""`lfr eval DIR [--embedder A,B] [--groups FILE.csv] [--json OUT] [--plot OUT.png] [--calibrate [DIR]]`:
identification accuracy through the real Triton models and a temporary Milvus collection per embedder
(services.eval.evaluation); embedders compared on the same faces, accuracy per group."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from services.common.errors import SetupError
from services.common.paths import REPO_ROOT
from services.face.embedders import CALIBRATION_DIR


def _names(text: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise argparse.ArgumentTypeError("name at least one embedder")
    return names


def _resamples(text: str) -> int:
    n = int(text)
    if not 0 <= n <= 100_000:
        raise argparse.ArgumentTypeError("give 0 to 100000 resamples")
    return n


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="TPIR/FPIR of the deployed models on a folder-per-identity set (Triton + Milvus): "
                                    "embedders compared on the same faces, accuracy per group")
    p.add_argument("dir", type=Path, help="one folder per identity; >= 2 images: subject, 1 image: passer-by")
    p.add_argument("--embedder", type=_names, default=None, metavar="A[,B...]",
                   help="embedders to evaluate on the same detected, aligned faces (default: the default embedder, "
                        "mobilefacenet512); with two or more, every pair is compared (b - a, paired bootstrap)")
    p.add_argument("--groups", type=Path, metavar="FILE.csv",
                   help="CSV 'identity,<column>...' (e.g. identity,sex): TPIR, FNIR and FPIR per group of each "
                        "column, with intervals; identities it does not list are in the group 'unknown'")
    p.add_argument("--json", type=Path, help="write the full report (per-threshold table included) here")
    p.add_argument("--plot", type=Path, help="write the DET curves (PNG) here; with --groups also OUT-<column>.png")
    p.add_argument("--triton", default="127.0.0.1:8001", help="Triton gRPC host:port")
    p.add_argument("--milvus", default="http://127.0.0.1:19530", help="Milvus URI")
    p.add_argument("--batch", type=int, default=8, help="images per pipeline call (<= faceboxes max_batch_size, 8)")
    p.add_argument("--resamples", type=_resamples, default=2000,
                   help="bootstrap resamples of every interval (0: none; at most 100000)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--calibrate", nargs="?", type=Path, const=CALIBRATION_DIR, default=None, metavar="DIR",
                   help="write each embedder's calibration record (its thresholds on this set, the matcher's "
                        f"default) to DIR/<embedder>.json (default DIR: {CALIBRATION_DIR.relative_to(REPO_ROOT)})")
    p.set_defaults(func=_run)


def _check_embedders(names: list[str]) -> None:
    from services.face.embedders import embedder_spec, embedders

    for name in names:
        try:
            embedder_spec(name)
        except ValueError as e:
            raise SetupError(str(e), f"name embedders of the manifest: {', '.join(sorted(embedders()))} "
                                     "('lfr models list')") from e


def missing_embedders_error(url: str, missing: list[str]) -> SetupError:
    """The SetupError for embedders Triton does not serve: how to build each (with the licence token the manifest
    asks for, when its terms forbid operational use) and to restart Triton."""
    from services.models.acknowledgement import how_to_build
    from services.models.manifest import load_manifest

    models = load_manifest().models
    builds = [f"'.venv/bin/{how_to_build(name, models[name])}'"
              + (" (its terms forbid operational use: research only)" if models[name].requires_acknowledgement
                 else "") for name in missing]
    return SetupError(f"Triton at {url} does not serve the embedder{'s' if len(missing) > 1 else ''} "
                      f"{', '.join(missing)}",
                      f"build {' and '.join(builds)}, then restart Triton so that it loads "
                      f"{'them' if len(missing) > 1 else 'it'}: '.venv/bin/lfr stack up --only triton'")


async def _evaluate(args: argparse.Namespace, names: list[str],
                    groups_table: dict[str, dict[str, str]] | None) -> Any:
    from tqdm import tqdm

    from services.common.triton_client import TritonClient, TritonClientSettings, TritonError
    from services.eval.evaluation import EvalSettings, discover, evaluate
    from services.face.pipeline import DETECTOR_MODELS

    settings = EvalSettings(triton_url=args.triton, milvus_uri=args.milvus, batch=args.batch,
                            bootstrap_resamples=args.resamples)
    try:
        ds = discover(args.dir)
    except FileNotFoundError as e:
        raise SetupError(str(e), "give a folder with one sub-folder of images per identity") from e
    if not ds.files:
        raise SetupError(f"no images under {args.dir}", "give a folder with one sub-folder of images per identity")
    client = TritonClient(TritonClientSettings(url=settings.triton_url, max_batch=8, timeout_s=60))
    try:
        try:
            await client.wait_ready(list(DETECTOR_MODELS), timeout_s=30)
            missing = [n for n in names if not await client.model_ready(n)]
        except TritonError as e:
            raise SetupError(f"Triton models not ready at {settings.triton_url}: {e}",
                             "run '.venv/bin/lfr models build' and '.venv/bin/lfr stack up --only triton'") from e
        if missing:
            raise missing_embedders_error(settings.triton_url, missing)
        with tqdm(total=len(ds.files), unit="img", disable=args.no_progress, file=sys.stderr) as bar:
            try:
                return await evaluate(ds, client, settings, tick=bar.update, embedders=names,
                                      groups_table=groups_table)
            except TritonError as e:
                raise SetupError(f"inference failed: {e}", "check '.venv/bin/lfr stack status'") from e
    finally:
        await client.close()


def _run(args: argparse.Namespace) -> int:
    from pymilvus.exceptions import MilvusException

    from services.face.config import FaceConfig

    names = args.embedder or [FaceConfig().embedder]
    _check_embedders(names)
    groups_table = None
    if args.groups is not None:
        from services.eval.groups import read_groups

        try:
            groups_table = read_groups(args.groups)
        except (OSError, ValueError) as e:
            raise SetupError(f"groups file: {e}", "give a CSV whose header is 'identity,<group column>...' "
                                                  "(e.g. identity,sex), one row per identity") from e
    try:
        ev = asyncio.run(_evaluate(args, names, groups_table))
    except MilvusException as e:
        raise SetupError(f"Milvus at {args.milvus} failed: {e}", "run '.venv/bin/lfr stack up --only milvus'") from e
    report = ev.report
    if args.plot:
        from services.eval.plot import Curve, plot_det, plot_group_dets

        title = (f"DET, {args.dir.name} ({report['counts']['subjects_enrolled']} enrolled, "
                 f"{report['counts']['nonmated_probes']} passers-by)")
        plot_det([Curve(n, ev.scores[n], {"zero false alerts": r["threshold_zero_false_alerts"],
                                          "operating": ev.operating[n]}) for n, r in report["results"].items()],
                 args.plot, title)
        report["plot"] = str(args.plot)
        if ev.groups:
            report["group_plots"] = [str(p) for p in plot_group_dets(ev.scores, ev.groups, ev.operating, args.plot,
                                                                     f"DET, {args.dir.name}")]
    refused: ValueError | None = None
    if args.calibrate is not None:
        from services.eval.evaluation import write_calibrations

        try:
            report["calibration"] = write_calibrations(report, args.calibrate)
        except ValueError as e:  # too few passers-by, or a threshold no matcher could use: the report still stands
            refused = e
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary(report), indent=2))
    if refused is not None:
        raise SetupError(f"no calibration written: {refused}",
                         "calibrate on a labelled set with enough passers-by (lfw_dev has 800)") from refused
    return 0


# ------------------------------------------------------------------ the printed summary

def _fmt(value: float | None, interval: list[float] | None = None, sign: bool = False) -> str:
    if value is None:
        return "n/a"
    f = "+.4f" if sign else ".4f"
    text = format(value, f)
    return text + (f" [{format(interval[0], f)}, {format(interval[1], f)}]" if interval else "")


def _embedder_summary(r: dict[str, Any]) -> dict[str, Any]:
    b = r.get("bootstrap_95", {})
    out: dict[str, Any] = {
        "tpir_at_zero_false_alerts": f"{_fmt(r['tpir_at_zero_false_alerts'], b.get('tpir_at_zero_false_alerts'))} "
                                     f"at threshold {r['threshold_zero_false_alerts']:.4f}"}
    for f in (0.01, 0.001):
        out[f"tpir_at_fpir_{f}"] = (f"{_fmt(r[f'tpir_at_fpir_{f}'], b.get(f'tpir_at_fpir_{f}'))} at threshold "
                                    f"{r[f'threshold_fpir_{f}']:.4f} ({r[f'false_alerts_allowed_fpir_{f}']} "
                                    "false alerts allowed)")
    out["rank1"] = _fmt(r["rank1"], b.get("rank1"))
    out["recommended_threshold"] = (f"{r['recommended_threshold']:.2f} ({r['recommended_threshold_rule']}): TPIR "
                                    f"{r['tpir_at_recommended']:.4f}, FPIR {r['fpir_at_recommended']:.4f}")
    if "operating_threshold" in r:
        out["operating_threshold"] = (f"{r['operating_threshold']:.2f} ({r['operating_threshold_source']}): TPIR "
                                      f"{r['tpir_at_operating']:.4f}, FPIR {r['fpir_at_operating']:.4f}")
    else:
        out["operating_threshold"] = r["operating_threshold_source"]
    if "ms_per_face" in r:
        out["ms_per_face"] = r["ms_per_face"]
    return out


def _group_summary(g: dict[str, Any]) -> dict[str, Any]:
    c = g["counts"]
    out: dict[str, Any] = {"counts": f"{c['subjects']} subjects, {c['mated_probes']} mated probes, "
                                     f"{c['nonmated_probes']} non-mated probes"}
    for label, at in g["at"].items():
        fp = at["fpir"]
        out[f"at {label} ({at['threshold']:.4f})"] = (
            f"TPIR {_fmt(at['tpir']['value'], at['tpir'].get('interval_95'))}, "
            f"FNIR {_fmt(at['fnir']['value'], at['fnir'].get('interval_95'))}, "
            f"FPIR {_fmt(fp['value'], fp.get('interval_95'))} ({fp['count']} of {fp['of']})")
    if g["notes"]:
        out["notes"] = g["notes"]
    return out


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """What `lfr eval` prints: per embedder its main figures, the paired differences, per group the figures and
    the flags; the per-threshold tables and the per-file lists stay in --json."""
    results = report["results"]
    out: dict[str, Any] = {"dataset": report["dataset"], "counts": report["counts"],
                           "embedders": {n: _embedder_summary(r) for n, r in results.items()}}
    if report["comparison"]:
        out["comparison"] = {}
        for c in report["comparison"]:
            per = {}
            for k in ("tpir_at_zero_false_alerts", "tpir_at_fpir_0.01", "rank1"):
                e = c[k]
                text = f"{e['a']:.4f} -> {e['b']:.4f}: {_fmt(e['difference'], e.get('interval_95'), sign=True)}"
                if "interval_95" in e:
                    text += (f", excludes 0: {c['b'] if e['reading'] == 'b higher' else c['a']} higher"
                             if e["excludes_zero"] else ", includes 0: no difference shown")
                per[k] = text
            out["comparison"][f"{c['b']} - {c['a']}"] = per
    if any("groups" in r for r in results.values()):
        out["groups"] = {}
        flags = []
        for n, r in results.items():
            g = r["groups"]
            out["groups"][n] = {"thresholds": {k: f"{v['value']:.4f} ({v['source']})"
                                               for k, v in g["thresholds"].items()}}
            for column, col in g["columns"].items():
                out["groups"][n][column] = {name: _group_summary(x) for name, x in col["groups"].items()}
                flags += [f"{n}, {column}: {f['reading']}" for f in col["flags"]]
        out["group_flags"] = flags or ["none: every pair of groups has overlapping intervals"]
    for k in ("no_face", "not_enrolled", "seconds", "ms_per_image", "groups_file", "plot", "group_plots",
              "calibration"):
        if k in report:
            out[k] = report[k]
    out["rejected"] = len(report["rejected"])
    return out
