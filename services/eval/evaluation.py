"""Identification accuracy of the deployed models on a folder-per-identity set, for one embedder or several
compared on the same faces.

Protocol: an identity with >= 2 images is a watchlist subject, its first image by name is enrolled and the rest
are mated probes; an identity with one image is a passer-by (a non-mated probe). One face per image: the detected
face nearest the image centre. A probe with no usable face raises no alert (a mated one counts as a miss); a
subject whose enrolment image has no usable face is not enrolled (its probes count as misses).

Detection, alignment and the quality gate run once per image (services.face.pipeline.FacePipeline over Triton);
each embedder then embeds the same aligned crops, so a comparison of embedders is paired (the same probes, the
same faces). Each embedder's vectors are enrolled and searched in its own temporary Milvus collection (the
watchlist schema), dropped at the end. Metrics, for the top-1 candidate of each probe:

- TPIR(t): mated probes whose top candidate is their own subject with score >= t;
- FPIR(t): non-mated probes whose top candidate scores >= t;
- TPIR at zero false alerts: at the lowest threshold where no passer-by alerts
  (just above the highest non-mated top score); TPIR at FPIR f: at the lowest
  threshold allowing floor(f * non-mated) false alerts.

Intervals and the paired comparison: services/eval/stats.py; per group (--groups): services/eval/groups.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from services.common.faces_schema import MAX_ID
from services.common.paths import REPO_ROOT
from services.common.runner import ModelRunner
from services.eval.groups import Group, assign_groups, group_report
from services.eval.stats import (FPIR_TARGETS, Scores, allowed_false_alerts, bootstrap_intervals,
                                 paired_difference, threshold_at)
from services.face.config import FaceConfig
from services.face.embedder import Embedder
from services.face.embedders import (CALIBRATION_DIR, calibration_from_report, calibration_path,
                                     load_calibration, write_calibration)
from services.face.pipeline import Face, FacePipeline

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp"}
EVAL_WATCHLIST = "lfr-eval"
Hit = tuple[str, float] | None  # a search's best (subject, score), None when nothing is enrolled


class EvalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    triton_url: str = Field("127.0.0.1:8001", description="Triton gRPC endpoint")
    milvus_uri: str = Field("http://127.0.0.1:19530", description="Milvus endpoint")
    batch: int = Field(8, ge=1, le=256, description="images per pipeline call")
    concurrency: int = Field(2, ge=1, le=16, description="pipeline calls in flight")
    threshold_margin: float = Field(
        0.02, ge=0, le=0.5, description="recommended threshold = zero-false-alert threshold + margin, rounded up")
    grid_step: float = Field(0.01, gt=0, le=0.1, description="threshold step of the per-threshold table")
    bootstrap_resamples: int = Field(
        2000, ge=0, le=100_000,
        description="resamples for the 95 % bootstrap intervals of the TPIRs (0: none). Mated and non-mated probes "
                    "are resampled with replacement and each operating threshold is found again in every resample, "
                    "so the interval includes the uncertainty of where zero false alerts falls")
    bootstrap_seed: int = Field(0, ge=0, description="seed of the bootstrap (a report is reproducible)")
    timing_faces: int = Field(64, ge=0, le=1024,
                              description="aligned faces each embedder's cost per face is measured on (0: not timed)")


@dataclasses.dataclass
class Dataset:
    root: Path
    files: list[Path]
    ids: list[str]

    @property
    def subjects(self) -> dict[str, list[int]]:
        by: dict[str, list[int]] = {}
        for k, ident in enumerate(self.ids):
            by.setdefault(ident, []).append(k)
        return by


def discover(root: Path) -> Dataset:
    """One folder per identity; images sorted by name inside each."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a directory")
    files = [f for d in sorted(p for p in root.iterdir() if p.is_dir())
             for f in sorted(d.iterdir()) if f.is_file() and f.suffix.lower() in IMAGE_EXTS]
    return Dataset(root, files, [f.parent.name for f in files])


def central_face(faces: list[Face], shape: tuple[int, ...]) -> Face | None:
    if not faces:
        return None
    c = np.array([shape[1] / 2, shape[0] / 2])
    return min(faces, key=lambda f: float(np.hypot(*((f.box[:2] + f.box[2:]) / 2 - c))))


def load_rgb(path: Path) -> np.ndarray | None:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@dataclasses.dataclass
class Split:
    """The identification protocol on a Dataset (image indices): each subject's enrolment image, the mated
    probes (a subject's other images) and the non-mated probes (each passer-by's one image)."""

    gallery: list[int]
    mated: list[int]
    nonmated: list[int]


def split_dataset(ds: Dataset) -> Split:
    subjects = ds.subjects.values()
    return Split(gallery=[v[0] for v in subjects if len(v) >= 2],
                 mated=[k for v in subjects if len(v) >= 2 for k in v[1:]],
                 nonmated=[v[0] for v in subjects if len(v) == 1])


@dataclasses.dataclass
class Embeddings:
    status: list[str]  # per image: OK, NO_FACE, UNREADABLE or the quality gate's reason
    vectors: dict[str, np.ndarray]  # embedder -> (n, dim), NaN rows where the image has no usable face
    sample: list[np.ndarray]  # a few aligned crops that passed the gate (to time the embedders on)
    seconds: float


async def embed_dataset(runner: ModelRunner, ds: Dataset, face_cfg: FaceConfig, settings: EvalSettings,
                        embedders: list[str] | None = None,
                        tick: Callable[[int], None] | None = None) -> Embeddings:
    """Detection, alignment and the quality gate once per image (the central face); then each embedder embeds
    the same aligned crops, so that embedders are compared on exactly the same faces."""
    t0 = time.monotonic()
    pipe = FacePipeline(runner, face_cfg)
    models = {name: Embedder(runner, face_cfg.flip_average, face_cfg.embed_batch, name)
              for name in (embedders or [face_cfg.embedder])}
    n = len(ds.files)
    vectors = {name: np.full((n, e.dim), np.nan, np.float32) for name, e in models.items()}
    status = ["?"] * n
    sample: list[np.ndarray] = []
    sem = asyncio.Semaphore(settings.concurrency)

    async def one(start: int) -> None:
        async with sem:
            idx = list(range(start, min(start + settings.batch, n)))
            imgs = await asyncio.to_thread(lambda: [load_rgb(ds.files[k]) for k in idx])
            ok = [(k, im) for k, im in zip(idx, imgs) if im is not None]
            for k, im in zip(idx, imgs):
                if im is None:
                    status[k] = "UNREADABLE"
            res = await pipe.aligned_faces([im for _, im in ok]) if ok else []
            passed: list[tuple[int, Face]] = []
            for (k, im), faces in zip(ok, res):
                f = central_face(faces, im.shape)
                if f is None:
                    status[k] = "NO_FACE"
                elif not f.quality.passed:
                    status[k] = f.quality.reason.value if f.quality.reason else "REJECTED"
                else:
                    status[k] = "OK"
                    passed.append((k, f))
            if passed:
                crops = [f.aligned for _, f in passed]
                sample.extend(crops[:max(0, settings.timing_faces - len(sample))])
                for name, e in models.items():
                    vectors[name][[k for k, _ in passed]] = await e.embed(crops)
            if tick:
                tick(len(idx))

    await asyncio.gather(*(one(s) for s in range(0, n, settings.batch)))
    return Embeddings(status, vectors, sample, time.monotonic() - t0)


async def time_embedders(runner: ModelRunner, face_cfg: FaceConfig, embedders: list[str],
                         crops: list[np.ndarray], repeats: int = 3) -> dict[str, float]:
    """Milliseconds per face of each embedder on the same crops (median of ``repeats``, the embedders
    interleaved so that both see the same machine load)."""
    models = {name: Embedder(runner, face_cfg.flip_average, face_cfg.embed_batch, name) for name in embedders}
    runs: dict[str, list[float]] = {name: [] for name in embedders}
    if not crops:
        return {}
    for _ in range(repeats):
        for name, e in models.items():
            t = time.perf_counter()
            await e.embed(crops)
            runs[name].append(1000 * (time.perf_counter() - t) / len(crops))
    return {name: round(float(np.median(v)), 2) for name, v in runs.items()}


# ------------------------------------------------------------------ Milvus

class MilvusGallery:
    """A temporary collection with the faces schema (services.common.faces_schema) for one embedder's
    vectors, dropped on close."""

    def __init__(self, uri: str, embedder: str, name: str | None = None) -> None:
        from services.common import faces_schema as schema
        from services.common.clients import milvus_client

        self.client = milvus_client(uri)
        self.name = name or f"lfr_eval_{uuid.uuid4().hex[:12]}"
        self.client.create_collection(self.name, schema=schema.build_schema(self.client, embedder),
                                      index_params=schema.build_index(self.client), consistency_level="Strong")
        self.client.load_collection(self.name)

    def enrol(self, subjects: list[str], embeddings: np.ndarray) -> None:
        now = int(time.time())
        rows = [{"watchlist_id": EVAL_WATCHLIST, "deployment_id": EVAL_WATCHLIST, "subject_id": s[:MAX_ID],
                 "category": "eval", "valid_from": now - 60, "valid_until": now + 86_400, "image_ref": "",
                 "image_jpeg_b64": "", "embedding": e.tolist()} for s, e in zip(subjects, embeddings)]
        for i in range(0, len(rows), 500):
            self.client.insert(self.name, rows[i:i + 500])
        self.client.flush(self.name)

    def top1(self, embeddings: np.ndarray, chunk: int = 200) -> list[Hit]:
        out: list[Hit] = []
        for i in range(0, len(embeddings), chunk):
            res = self.client.search(self.name, data=[e.tolist() for e in embeddings[i:i + chunk]], limit=1,
                                     output_fields=["subject_id"], search_params={"metric_type": "COSINE"})
            for hits in res:
                out.append((hits[0]["entity"]["subject_id"], float(hits[0]["distance"])) if hits else None)
        return out

    def drop(self) -> None:
        try:
            self.client.drop_collection(self.name)
        finally:
            self.client.close()


def probe_scores(ds: Dataset, sp: Split, status: list[str], emb: np.ndarray,
                 top1: Callable[[np.ndarray], list[Hit]]) -> Scores:
    """Each probe's top-1 score (services.eval.stats.Scores) from ``top1`` (embeddings -> (subject, score) of the
    best enrolled face, None when there is none); probes without a usable face keep -inf."""
    out = []
    for probes, is_mated in ((sp.mated, True), (sp.nonmated, False)):
        scores = np.full(len(probes), -np.inf)
        ok = [j for j, k in enumerate(probes) if status[k] == "OK"]
        for j, hit in zip(ok, top1(emb[[probes[j] for j in ok]]) if ok else []):
            if hit is not None and (not is_mated or hit[0] == ds.ids[probes[j]][:MAX_ID]):
                scores[j] = hit[1]
        out.append(scores)
    return Scores(*out)


def search_milvus(uri: str, embedder: str, ds: Dataset, sp: Split, status: list[str], emb: np.ndarray) -> Scores:
    """Enrol the subjects whose enrolment image has a usable face in a temporary collection, search every
    probe, drop the collection."""
    enrolled = [k for k in sp.gallery if status[k] == "OK"]
    if not enrolled:
        return Scores(np.full(len(sp.mated), -np.inf), np.full(len(sp.nonmated), -np.inf))
    gal = MilvusGallery(uri, embedder)
    try:
        gal.enrol([ds.ids[k] for k in enrolled], emb[enrolled])
        return probe_scores(ds, sp, status, emb, gal.top1)
    finally:
        gal.drop()


def exact_search(uri: str, embedder: str, ds: Dataset, sp: Split, status: list[str], emb: np.ndarray) -> Scores:
    """search_milvus's answer without Milvus: the enrolled faces' cosine similarity in numpy (the same top-1 up
    to Milvus's float rounding; bench/face_accuracy.py)."""
    enrolled = [k for k in sp.gallery if status[k] == "OK"]
    gallery, who = emb[enrolled], [ds.ids[k][:MAX_ID] for k in enrolled]

    def top1(probes: np.ndarray) -> list[Hit]:
        if not enrolled:
            return [None] * len(probes)
        sims = probes @ gallery.T
        best = np.argmax(sims, axis=1)
        return [(who[j], float(sims[i, j])) for i, j in enumerate(best)]

    return probe_scores(ds, sp, status, emb, top1)


Search = Callable[[str, str, Dataset, Split, list[str], np.ndarray], Scores]  # search_milvus, exact_search


# ------------------------------------------------------------------ metrics

def compute_metrics(mated_scores: np.ndarray, nonmated_scores: np.ndarray, rank1_hits: int,
                    settings: EvalSettings, operating_threshold: float | None = None) -> dict[str, Any]:
    """mated_scores: per mated probe the top-1 score when it is its own subject, else -inf;
    nonmated_scores: per non-mated probe the top-1 score (-inf when no face)."""
    m = np.asarray(mated_scores, np.float64)
    nm = np.sort(np.asarray(nonmated_scores, np.float64))[::-1]
    n_m, n_nm = len(m), len(nm)

    def tpir(t: float) -> float:
        return float(np.mean(m >= t)) if n_m else 0.0

    def fpir(t: float) -> float:
        return float(np.mean(nm >= t)) if n_nm else 0.0

    out: dict[str, Any] = {}
    for key, f in FPIR_TARGETS.items():
        allowed = allowed_false_alerts(f, n_nm)
        t = threshold_at(nm, allowed)
        out[key] = tpir(t)
        if f == 0:
            out["threshold_zero_false_alerts"] = t
        else:
            out[f"threshold_fpir_{f}"] = t
            out[f"false_alerts_allowed_fpir_{f}"] = allowed
    t0 = out["threshold_zero_false_alerts"]
    rec = math.ceil((t0 + settings.threshold_margin) * 100 - 1e-9) / 100
    out["recommended_threshold"] = rec
    out["recommended_threshold_rule"] = (f"zero-false-alert threshold + {settings.threshold_margin}, "
                                         "rounded up to 0.01")
    out["tpir_at_recommended"] = tpir(rec)
    out["fpir_at_recommended"] = fpir(rec)
    if operating_threshold is not None:  # the embedder's calibrated threshold (what the matcher runs at)
        out["operating_threshold"] = operating_threshold
        out["tpir_at_operating"] = tpir(operating_threshold)
        out["fpir_at_operating"] = fpir(operating_threshold)
    out["rank1"] = rank1_hits / n_m if n_m else 0.0
    grid = np.round(np.arange(0.0, 1.0 + 1e-9, settings.grid_step), 4)
    out["per_threshold"] = [{"threshold": float(t), "tpir": tpir(t), "fpir": fpir(t),
                             "false_alerts": int(np.sum(nm >= t))} for t in grid]
    if settings.bootstrap_resamples and n_m and n_nm:
        out["bootstrap_95"] = bootstrap_intervals(m, nm, settings.bootstrap_resamples, settings.bootstrap_seed)
    return out


# ------------------------------------------------------------------ the whole run

@dataclasses.dataclass
class Evaluation:
    report: dict[str, Any]
    scores: dict[str, Scores]  # per embedder, in the order asked
    groups: dict[str, list[Group]]  # per column of the groups file ({} without one)
    operating: dict[str, float]  # per embedder: the threshold its group figures are read at
    embedded: Embeddings  # every image's status and embeddings


def operating_threshold(embedder: str, zero_false_alerts: float) -> tuple[float, str]:
    """The threshold the matcher runs ``embedder`` at (its calibration) and where it comes from; the overall
    zero-false-alert threshold of this run when it was never calibrated."""
    cal = load_calibration(embedder)
    if cal is None:
        return zero_false_alerts, "uncalibrated: this run's overall zero-false-alert threshold"
    return cal.recommended_threshold, (f"calibration {calibration_path(embedder).relative_to(REPO_ROOT)} "
                                       f"(measured on {cal.dataset}, {cal.measured})")


def embedder_results(scores: dict[str, Scores], settings: EvalSettings,
                     groups: dict[str, list[Group]] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]],
                                                                            dict[str, float]]:
    """(results, comparison, operating) of embedders' scores on the same probes: per embedder compute_metrics at
    its calibrated operating threshold, with ``groups`` its per-group report; for every pair (a before b in
    ``scores``) the paired differences b - a; per embedder the threshold its group figures are read at."""
    results: dict[str, dict[str, Any]] = {}
    operating: dict[str, float] = {}
    for name, s in scores.items():
        cal = load_calibration(name)
        res: dict[str, Any] = {"embedder": name}
        res.update(compute_metrics(s.mated, s.nonmated, int(np.isfinite(s.mated).sum()), settings,
                                   cal.recommended_threshold if cal else None))
        operating[name], source = operating_threshold(name, res["threshold_zero_false_alerts"])
        res["operating_threshold_source"] = source
        if groups:
            # at zero false alerts every group's FPIR is 0 by construction; at FPIR 1e-2 the overall false
            # alerts are let through and the groups show where they fall
            at_fpir = f"this run's overall FPIR 1e-2 threshold ({res['false_alerts_allowed_fpir_0.01']} false alerts)"
            thresholds = {"operating": (operating[name], source),
                          "zero_false_alerts": (res["threshold_zero_false_alerts"],
                                                "this run's overall zero-false-alert threshold"),
                          "fpir_0.01": (res["threshold_fpir_0.01"], at_fpir)}
            res["groups"] = {"thresholds": {k: {"value": t, "source": why} for k, (t, why) in thresholds.items()},
                             "columns": group_report(s, groups, {k: t for k, (t, _) in thresholds.items()},
                                                     settings.bootstrap_resamples, settings.bootstrap_seed)}
        results[name] = res
    comparison = [{"a": a, "b": b, "difference": "b - a", "resamples": settings.bootstrap_resamples,
                   "seed": settings.bootstrap_seed,
                   "method": "paired percentile bootstrap: the same resampled mated and non-mated probes for both "
                             "embedders in each resample, thresholds re-found per embedder",
                   **paired_difference(scores[a], scores[b], settings.bootstrap_resamples, settings.bootstrap_seed)}
                  for a, b in itertools.combinations(scores, 2)]
    return results, comparison, operating


async def evaluate(ds: Dataset, runner: ModelRunner, settings: EvalSettings, face_cfg: FaceConfig | None = None,
                   tick: Callable[[int], None] | None = None, embedders: list[str] | None = None,
                   groups_table: dict[str, dict[str, str]] | None = None,
                   search: Search = search_milvus) -> Evaluation:
    """Every embedder of ``embedders`` (default: face_cfg's) on the same detected, aligned and gated faces, each
    searched on its own (search_milvus: a temporary Milvus collection per embedder). The report: per embedder
    its full figures (``results``), for every pair the paired differences (``comparison``), with
    ``groups_table`` per group. The first embedder's figures also stand at the top level, as in a one-embedder
    report."""
    t_start = time.monotonic()
    face_cfg = face_cfg or FaceConfig()
    names = list(dict.fromkeys(embedders or [face_cfg.embedder]))
    embedded = await embed_dataset(runner, ds, face_cfg, settings, names, tick)
    status = embedded.status
    ms_per_face = await time_embedders(runner, face_cfg, names, embedded.sample) if settings.timing_faces else {}
    sp = split_dataset(ds)
    enrolled = [k for k in sp.gallery if status[k] == "OK"]
    groups = assign_groups(groups_table, [ds.ids[k] for k in sp.gallery], [ds.ids[k] for k in sp.mated],
                           [ds.ids[k] for k in sp.nonmated]) if groups_table else {}

    scores: dict[str, Scores] = {}
    search_s: dict[str, float] = {}
    for name in names:
        t1 = time.monotonic()
        scores[name] = await asyncio.to_thread(search, settings.milvus_uri, name, ds, sp, status,
                                               embedded.vectors[name])
        search_s[name] = round(time.monotonic() - t1, 1)
    results, comparison, operating = embedder_results(scores, settings, groups)
    for name, res in results.items():
        if name in ms_per_face:
            res["ms_per_face"] = ms_per_face[name]

    t_embed = embedded.seconds
    report: dict[str, Any] = {"dataset": str(ds.root), "embedders": names}
    report.update(results[names[0]])
    counts = {s: status.count(s) for s in sorted(set(status))}
    report["counts"] = {
        "images": len(ds.files), "identities": len(ds.subjects), "subjects": len(sp.gallery),
        "subjects_enrolled": len(enrolled), "mated_probes": len(sp.mated), "nonmated_probes": len(sp.nonmated),
        "gallery_comparisons": len(enrolled) * (len(sp.mated) + len(sp.nonmated)), "status": counts}
    report["no_face"] = [str(ds.files[k].relative_to(ds.root)) for k in range(len(ds.files)) if status[k] == "NO_FACE"]
    report["rejected"] = {str(ds.files[k].relative_to(ds.root)): status[k]
                          for k in range(len(ds.files)) if status[k] not in ("OK", "NO_FACE")}
    report["not_enrolled"] = [str(ds.files[k].relative_to(ds.root)) for k in sp.gallery if status[k] != "OK"]
    report["seconds"] = {"embed": round(t_embed, 1), "milvus": round(sum(search_s.values()), 1),
                         "milvus_per_embedder": search_s, "total": round(time.monotonic() - t_start, 1)}
    report["ms_per_image"] = round(1000 * t_embed / max(len(ds.files), 1), 1)
    report["ms_per_image_note"] = (f"detection, alignment, quality gate and {len(names)} embedder(s) per image; "
                                   "ms_per_face (per embedder) is the embedder alone, median of 3 runs on "
                                   f"{len(embedded.sample)} aligned faces through the same runner")
    if groups_table is not None:
        listed = set().union(*groups_table.values()) if groups_table else set()
        report["groups_file"] = {"columns": list(groups_table), "identities_with_a_value": len(listed),
                                 "of_them_not_in_dataset": len(listed - set(ds.ids))}
    report["results"] = results
    report["comparison"] = comparison
    return Evaluation(report, scores, groups, operating, embedded)


def write_calibrations(report: dict[str, Any], directory: Path = CALIBRATION_DIR) -> dict[str, str]:
    """One calibration record per embedder of the report (services.face.embedders.write_calibration);
    embedder -> the file written. All are checked before any is written (ValueError: none written)."""
    records = [calibration_from_report(name, {**res, "dataset": report["dataset"], "counts": report["counts"]})
               for name, res in report["results"].items()]
    return {cal.embedder: str(write_calibration(cal, directory)) for cal in records}
