"""Identification accuracy of the deployed models on a folder-per-identity set.

Protocol (issue 3): an identity with >= 2 images is a watchlist subject, its
first image by name is enrolled and the rest are mated probes; an identity with
one image is a passer-by (a non-mated probe). One face per image: the detected
face nearest the image centre. A probe with no usable face raises no alert (a
mated one counts as a miss); a subject whose enrolment image has no usable face
is not enrolled (its probes count as misses).

Embeddings come from the face pipeline over Triton (TritonClient); enrolment
and search use a temporary Milvus collection built with the watchlist schema,
dropped at the end. Metrics, for the top-1 candidate of each probe:

- TPIR(t): mated probes whose top candidate is their own subject with score >= t;
- FPIR(t): non-mated probes whose top candidate scores >= t;
- TPIR at zero false alerts: at the lowest threshold where no passer-by alerts
  (just above the highest non-mated top score); TPIR at FPIR f: at the lowest
  threshold allowing floor(f * non-mated) false alerts.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from services.common.runner import ModelRunner
from services.face.config import DEFAULT_MATCH_THRESHOLD, FaceConfig
from services.face.embedder import EMBEDDING_DIM
from services.face.pipeline import Face, FacePipeline

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp"}
EVAL_WATCHLIST = "lfr-eval"


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


async def embed_dataset(runner: ModelRunner, ds: Dataset, face_cfg: FaceConfig, settings: EvalSettings,
                        tick: Callable[[int], None] | None = None) -> tuple[np.ndarray, list[str]]:
    """(n, EMBEDDING_DIM) embeddings (NaN rows where no usable face) and a status per image
    (OK, NO_FACE, UNREADABLE or the quality gate's reason)."""
    pipe = FacePipeline(runner, face_cfg)
    n = len(ds.files)
    emb = np.full((n, EMBEDDING_DIM), np.nan, np.float32)
    status = ["?"] * n
    sem = asyncio.Semaphore(settings.concurrency)

    async def one(start: int) -> None:
        async with sem:
            idx = list(range(start, min(start + settings.batch, n)))
            imgs = await asyncio.to_thread(lambda: [load_rgb(ds.files[k]) for k in idx])
            ok = [(k, im) for k, im in zip(idx, imgs) if im is not None]
            for k, im in zip(idx, imgs):
                if im is None:
                    status[k] = "UNREADABLE"
            res = await pipe.analyse([im for _, im in ok]) if ok else []
            for (k, im), faces in zip(ok, res):
                f = central_face(faces, im.shape)
                if f is None:
                    status[k] = "NO_FACE"
                elif f.embedding is None:
                    status[k] = f.quality.reason.value if f.quality.reason else "REJECTED"
                else:
                    status[k] = "OK"
                    emb[k] = f.embedding
            if tick:
                tick(len(idx))

    await asyncio.gather(*(one(s) for s in range(0, n, settings.batch)))
    return emb, status


# ------------------------------------------------------------------ Milvus

class MilvusGallery:
    """A temporary collection with the watchlist schema (services.watchlist.schema),
    dropped on close."""

    def __init__(self, uri: str, name: str | None = None) -> None:
        from services.common.clients import milvus_client

        from services.watchlist import schema

        self.client = milvus_client(uri)
        self.name = name or f"lfr_eval_{uuid.uuid4().hex[:12]}"
        self.client.create_collection(self.name, schema=schema.build_schema(self.client),
                                      index_params=schema.build_index(self.client), consistency_level="Strong")
        self.client.load_collection(self.name)

    def enrol(self, subjects: list[str], embeddings: np.ndarray) -> None:
        now = int(time.time())
        rows = [{"watchlist_id": EVAL_WATCHLIST, "deployment_id": EVAL_WATCHLIST, "subject_id": s[:128],
                 "category": "eval", "valid_from": now - 60, "valid_until": now + 86_400, "image_ref": "",
                 "image_jpeg_b64": "", "embedding": e.tolist()} for s, e in zip(subjects, embeddings)]
        for i in range(0, len(rows), 500):
            self.client.insert(self.name, rows[i:i + 500])
        self.client.flush(self.name)

    def top1(self, embeddings: np.ndarray, chunk: int = 200) -> list[tuple[str, float] | None]:
        out: list[tuple[str, float] | None] = []
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


# ------------------------------------------------------------------ metrics

def _above(x: float) -> float:
    return float(np.nextafter(np.float32(x), np.float32(np.inf)))


def compute_metrics(mated_scores: np.ndarray, nonmated_scores: np.ndarray, rank1_hits: int,
                    settings: EvalSettings) -> dict[str, Any]:
    """mated_scores: per mated probe the top-1 score when it is its own subject, else -inf;
    nonmated_scores: per non-mated probe the top-1 score (-inf when no face)."""
    m = np.asarray(mated_scores, np.float64)
    nm = np.sort(np.asarray(nonmated_scores, np.float64))[::-1]
    n_m, n_nm = len(m), len(nm)

    def tpir(t: float) -> float:
        return float(np.mean(m >= t)) if n_m else 0.0

    def fpir(t: float) -> float:
        return float(np.mean(nm >= t)) if n_nm else 0.0

    def at_false_alerts(allowed: int) -> tuple[float, float]:
        t = _threshold_at(nm, allowed)
        return tpir(t), t

    out: dict[str, Any] = {}
    t0_tpir, t0 = at_false_alerts(0)
    out["tpir_at_zero_false_alerts"] = t0_tpir
    out["threshold_zero_false_alerts"] = t0
    for f in (0.01, 0.001):
        allowed = int(math.floor(f * n_nm))
        tp, t = at_false_alerts(allowed)
        out[f"tpir_at_fpir_{f}"] = tp
        out[f"threshold_fpir_{f}"] = t
        out[f"false_alerts_allowed_fpir_{f}"] = allowed
    rec = math.ceil((t0 + settings.threshold_margin) * 100 - 1e-9) / 100
    out["recommended_threshold"] = rec
    out["recommended_threshold_rule"] = (f"zero-false-alert threshold + {settings.threshold_margin}, "
                                         "rounded up to 0.01")
    out["tpir_at_recommended"] = tpir(rec)
    out["fpir_at_recommended"] = fpir(rec)
    out["default_threshold"] = DEFAULT_MATCH_THRESHOLD
    out["tpir_at_default"] = tpir(DEFAULT_MATCH_THRESHOLD)
    out["fpir_at_default"] = fpir(DEFAULT_MATCH_THRESHOLD)
    out["rank1"] = rank1_hits / n_m if n_m else 0.0
    grid = np.round(np.arange(0.0, 1.0 + 1e-9, settings.grid_step), 4)
    out["per_threshold"] = [{"threshold": float(t), "tpir": tpir(t), "fpir": fpir(t),
                             "false_alerts": int(np.sum(nm >= t))} for t in grid]
    if settings.bootstrap_resamples and n_m and n_nm:
        out["bootstrap_95"] = bootstrap_intervals(m, nm, settings.bootstrap_resamples, settings.bootstrap_seed)
    return out


def _threshold_at(nm_desc: np.ndarray, allowed: int) -> float:
    """The lowest threshold that lets at most `allowed` non-mated probes through
    (nm_desc: their top-1 scores, sorted descending)."""
    finite = nm_desc[np.isfinite(nm_desc)]
    return _above(finite[allowed]) if allowed < len(finite) else -1.0


def bootstrap_intervals(mated: np.ndarray, nonmated: np.ndarray, resamples: int, seed: int) -> dict[str, Any]:
    """95 % percentile-bootstrap intervals of TPIR at zero false alerts and at FPIR 1e-2 / 1e-3."""
    rng = np.random.default_rng(seed)
    n_m, n_nm = len(mated), len(nonmated)
    keys = {"tpir_at_zero_false_alerts": 0.0, "tpir_at_fpir_0.01": 0.01, "tpir_at_fpir_0.001": 0.001}
    draws: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(resamples):
        m = mated[rng.integers(0, n_m, n_m)]
        nm = np.sort(nonmated[rng.integers(0, n_nm, n_nm)])[::-1]
        for k, f in keys.items():
            draws[k].append(float(np.mean(m >= _threshold_at(nm, int(math.floor(f * n_nm))))))
    out: dict[str, Any] = {"resamples": resamples, "seed": seed,
                           "method": "percentile bootstrap over mated and non-mated probes; thresholds re-found "
                                     "in each resample"}
    for k, values in draws.items():
        lo, hi = np.percentile(values, [2.5, 97.5])
        out[k] = [round(float(lo), 4), round(float(hi), 4)]
    return out


def det_points(mated_scores: np.ndarray, nonmated_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPIR, FNIR) at every distinct score used as a threshold."""
    m = np.asarray(mated_scores, np.float64)
    nm = np.asarray(nonmated_scores, np.float64)
    ts = np.unique(np.concatenate([m[np.isfinite(m)], nm[np.isfinite(nm)]]))
    fpir = np.array([np.mean(nm >= t) for t in ts])
    fnir = np.array([1 - np.mean(m >= t) for t in ts])
    return fpir, fnir


def plot_det(mated_scores: np.ndarray, nonmated_scores: np.ndarray, out: Path, title: str,
             marks: dict[str, float] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fpir, fnir = det_points(mated_scores, nonmated_scores)
    n_nm = max(len(nonmated_scores), 1)
    floor = 0.5 / n_nm
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    ax.step(np.maximum(fpir, floor), np.maximum(fnir, 1e-3), where="post", label="this system")
    for name, t in (marks or {}).items():
        tp = float(np.mean(np.asarray(mated_scores) >= t))
        fp = float(np.mean(np.asarray(nonmated_scores) >= t))
        ax.plot([max(fp, floor)], [max(1 - tp, 1e-3)], "o", label=f"{name} (t={t:.2f})")
    ax.plot([1 / 6000], [1 - 0.89], "s", color="grey", label="NPL NeoFace (10k watchlist)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"FPIR (false positive identification rate; left edge = 0 of {n_nm})")
    ax.set_ylabel("FNIR = 1 - TPIR")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


# ------------------------------------------------------------------ the whole run

async def evaluate(ds: Dataset, runner: ModelRunner, settings: EvalSettings, face_cfg: FaceConfig | None = None,
                   tick: Callable[[int], None] | None = None) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Returns (report, mated scores, non-mated scores)."""
    t_start = time.monotonic()
    emb, status = await embed_dataset(runner, ds, face_cfg or FaceConfig(), settings, tick)
    t_embed = time.monotonic() - t_start
    subjects = ds.subjects
    gallery = [v[0] for v in subjects.values() if len(v) >= 2]
    mated = [k for v in subjects.values() if len(v) >= 2 for k in v[1:]]
    nonmated = [v[0] for v in subjects.values() if len(v) == 1]
    enrolled = [k for k in gallery if status[k] == "OK"]

    t1 = time.monotonic()
    mated_scores = np.full(len(mated), -np.inf)
    nonmated_scores = np.full(len(nonmated), -np.inf)
    rank1_hits = 0
    gal = await asyncio.to_thread(MilvusGallery, settings.milvus_uri)
    try:
        if enrolled:
            await asyncio.to_thread(gal.enrol, [ds.ids[k] for k in enrolled], emb[enrolled])
            for probes, scores, is_mated in ((mated, mated_scores, True), (nonmated, nonmated_scores, False)):
                ok = [j for j, k in enumerate(probes) if status[k] == "OK"]
                hits = await asyncio.to_thread(gal.top1, emb[[probes[j] for j in ok]]) if ok else []
                for j, hit in zip(ok, hits):
                    if hit is None:
                        continue
                    who, score = hit
                    if not is_mated:
                        scores[j] = score
                    elif who == ds.ids[probes[j]][:128]:
                        scores[j] = score
                        rank1_hits += 1
    finally:
        await asyncio.to_thread(gal.drop)
    t_search = time.monotonic() - t1

    report: dict[str, Any] = {"dataset": str(ds.root)}
    report.update(compute_metrics(mated_scores, nonmated_scores, rank1_hits, settings))
    counts = {s: status.count(s) for s in sorted(set(status))}
    report["counts"] = {
        "images": len(ds.files), "identities": len(subjects), "subjects": len(gallery),
        "subjects_enrolled": len(enrolled), "mated_probes": len(mated), "nonmated_probes": len(nonmated),
        "gallery_comparisons": len(enrolled) * (len(mated) + len(nonmated)), "status": counts}
    report["no_face"] = [str(ds.files[k].relative_to(ds.root)) for k in range(len(ds.files)) if status[k] == "NO_FACE"]
    report["rejected"] = {str(ds.files[k].relative_to(ds.root)): status[k]
                          for k in range(len(ds.files)) if status[k] not in ("OK", "NO_FACE")}
    report["not_enrolled"] = [str(ds.files[k].relative_to(ds.root)) for k in gallery if status[k] != "OK"]
    report["seconds"] = {"embed": round(t_embed, 1), "milvus": round(t_search, 1),
                         "total": round(time.monotonic() - t_start, 1)}
    report["ms_per_image"] = round(1000 * t_embed / max(len(ds.files), 1), 1)
    return report, mated_scores, nonmated_scores
