"""The statistics of `lfr eval`: thresholds read off the passers-by's top-1 scores, the operating points
(TPIR at zero false alerts, at FPIR 1e-2 / 1e-3, rank-1) and the 95 % intervals around them.

Scores, per embedder: ``mated[i]`` is mated probe i's top-1 score when the top candidate is its own subject, else
-inf (so rank-1 is the share of finite mated scores); ``nonmated[j]`` is passer-by j's top-1 score (-inf: no
usable face, it can raise no alert).

Intervals are percentile bootstraps over probes (mated and non-mated resampled with replacement, 2.5th and 97.5th
percentiles). Where a threshold is read off the passers-by (zero false alerts, FPIR f) it is found again in every
resample. A share at a FIXED threshold that is 0 of n or n of n gives a bootstrap interval of one point, which says
nothing: there the exact (Clopper-Pearson) interval is given instead."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Final

import numpy as np

# report key -> the FPIR whose threshold it is read at (0: zero false alerts)
FPIR_TARGETS: Final[dict[str, float]] = {
    "tpir_at_zero_false_alerts": 0.0, "tpir_at_fpir_0.01": 0.01, "tpir_at_fpir_0.001": 0.001}
# what a comparison of two embedders compares
COMPARED: Final[tuple[str, ...]] = ("tpir_at_zero_false_alerts", "tpir_at_fpir_0.01", "rank1")
ALPHA: Final[float] = 0.05


@dataclasses.dataclass(frozen=True)
class Scores:
    """One embedder's top-1 scores of the mated and the non-mated probes (see the module's doc)."""

    mated: np.ndarray
    nonmated: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "mated", np.asarray(self.mated, np.float64))
        object.__setattr__(self, "nonmated", np.asarray(self.nonmated, np.float64))


def above(x: float) -> float:
    """The smallest float32 above x: the threshold at which a score of exactly x no longer passes."""
    return float(np.nextafter(np.float32(x), np.float32(np.inf)))


def allowed_false_alerts(fpir: float, n_nonmated: int) -> int:
    return math.floor(fpir * n_nonmated)


def threshold_at(nm_desc: np.ndarray, allowed: int) -> float:
    """The lowest threshold that lets at most `allowed` non-mated probes through
    (nm_desc: their top-1 scores, sorted descending)."""
    finite = nm_desc[np.isfinite(nm_desc)]
    return above(finite[allowed]) if allowed < len(finite) else -1.0


def operating_points(mated: np.ndarray, nonmated: np.ndarray) -> dict[str, float]:
    """TPIR at each of FPIR_TARGETS (thresholds read off these passers-by) and rank-1."""
    nm_desc = np.sort(nonmated)[::-1]
    n_m = len(mated)
    out = {k: float(np.mean(mated >= threshold_at(nm_desc, allowed_false_alerts(f, len(nonmated)))))
           if n_m else 0.0 for k, f in FPIR_TARGETS.items()}
    out["rank1"] = float(np.mean(np.isfinite(mated))) if n_m else 0.0
    return out


def percentile_interval(values: np.ndarray | list[float]) -> list[float]:
    lo, hi = np.percentile(np.asarray(values, np.float64), [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return [round(float(lo), 4), round(float(hi), 4)]


def _probe_resamples(n_m: int, n_nm: int, resamples: int, seed: int):
    """(mated indices, non-mated indices) of each resample, drawn with replacement."""
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        yield rng.integers(0, n_m, n_m), rng.integers(0, n_nm, n_nm)


def bootstrap_intervals(mated: np.ndarray, nonmated: np.ndarray, resamples: int, seed: int) -> dict[str, Any]:
    """95 % intervals of TPIR at zero false alerts, at FPIR 1e-2 / 1e-3 and of rank-1."""
    mated, nonmated = np.asarray(mated, np.float64), np.asarray(nonmated, np.float64)
    draws: dict[str, list[float]] = {k: [] for k in (*FPIR_TARGETS, "rank1")}
    for im, inm in _probe_resamples(len(mated), len(nonmated), resamples, seed):
        for k, v in operating_points(mated[im], nonmated[inm]).items():
            draws[k].append(v)
    out: dict[str, Any] = {"resamples": resamples, "seed": seed,
                           "method": "percentile bootstrap over mated and non-mated probes; thresholds re-found "
                                     "in each resample"}
    out.update({k: percentile_interval(v) for k, v in draws.items()})
    return out


def paired_difference(a: Scores, b: Scores, resamples: int, seed: int) -> dict[str, Any]:
    """b - a of each COMPARED figure, with its paired 95 % bootstrap interval: every resample draws ONE set of
    mated and non-mated probe indices and applies it to both embedders (the same probes, embedded by each), and
    each embedder's thresholds are found again in it. An interval that excludes 0 is a difference these probes
    show; one that includes 0 is not."""
    if len(a.mated) != len(b.mated) or len(a.nonmated) != len(b.nonmated):
        raise ValueError("a paired comparison needs the same mated and non-mated probes for both embedders")
    pa, pb = operating_points(a.mated, a.nonmated), operating_points(b.mated, b.nonmated)
    draws: dict[str, list[float]] = {k: [] for k in COMPARED}
    if len(a.mated) and len(a.nonmated):
        for im, inm in _probe_resamples(len(a.mated), len(a.nonmated), resamples, seed):
            ra = operating_points(a.mated[im], a.nonmated[inm])
            rb = operating_points(b.mated[im], b.nonmated[inm])
            for k in COMPARED:
                draws[k].append(rb[k] - ra[k])
    out: dict[str, Any] = {}
    for k in COMPARED:
        d = round(pb[k] - pa[k], 4)
        entry: dict[str, Any] = {"a": round(pa[k], 4), "b": round(pb[k], 4), "difference": d}
        if draws[k]:
            lo, hi = percentile_interval(draws[k])
            entry["interval_95"] = [lo, hi]
            entry["excludes_zero"] = bool(lo > 0 or hi < 0)
            entry["reading"] = ("b higher" if lo > 0 else "a higher" if hi < 0
                                else "no difference shown (the interval includes 0)")
        out[k] = entry
    return out


def exact_interval(k: int, n: int) -> list[float]:
    """Clopper-Pearson 95 % interval of k of n, for k = 0 or k = n (closed form; no other k is asked)."""
    if k == 0:
        return [0.0, round(1 - (ALPHA / 2) ** (1 / n), 4)]
    if k == n:
        return [round((ALPHA / 2) ** (1 / n), 4), 1.0]
    raise ValueError("exact_interval is only for 0 of n or n of n")


def share_at_threshold(hits: np.ndarray, resamples: int, rng: np.random.Generator) -> dict[str, Any]:
    """A share (k of n) at a fixed threshold with its 95 % interval: percentile bootstrap over the n, or the exact
    interval when k is 0 or n (a bootstrap cannot move off those)."""
    hits = np.asarray(hits, bool)
    n, k = len(hits), int(hits.sum())
    out: dict[str, Any] = {"value": round(k / n, 4) if n else None, "count": k, "of": n}
    if n == 0 or resamples == 0:
        return out
    if k in (0, n):
        out["interval_95"] = exact_interval(k, n)
        out["interval_method"] = "exact (Clopper-Pearson): a bootstrap of 0 or all of n is a single point"
    else:
        out["interval_95"] = percentile_interval(hits[rng.integers(0, n, (resamples, n))].mean(axis=1))
        out["interval_method"] = "percentile bootstrap"
    return out


def intervals_overlap(a: list[float], b: list[float]) -> bool:
    return not (a[1] < b[0] or b[1] < a[0])
