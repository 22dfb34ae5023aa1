"""lfr eval's bootstrap intervals (services/eval/evaluation.py): they bracket the point
estimates, are reproducible, and widen when there are fewer probes."""

from __future__ import annotations

import numpy as np

from services.eval.evaluation import EvalSettings, compute_metrics


def _scores(n_m: int, n_nm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mated = rng.normal(0.7, 0.1, n_m)
    mated[: n_m // 30] = -np.inf  # a few probes matched someone else / had no face
    return mated, rng.normal(0.3, 0.08, n_nm)


def test_intervals_bracket_the_estimates_and_are_reproducible() -> None:
    mated, non = _scores(667, 800)
    settings = EvalSettings(bootstrap_resamples=500)
    a = compute_metrics(mated, non, 640, settings)
    b = compute_metrics(mated, non, 640, settings)
    assert a["bootstrap_95"] == b["bootstrap_95"]
    for key in ("tpir_at_zero_false_alerts", "tpir_at_fpir_0.01", "tpir_at_fpir_0.001"):
        lo, hi = a["bootstrap_95"][key]
        assert 0 <= lo <= a[key] <= hi <= 1, (key, lo, a[key], hi)
    # zero false alerts rests on the single highest passer-by: wider than at FPIR 1e-2
    z, f = a["bootstrap_95"]["tpir_at_zero_false_alerts"], a["bootstrap_95"]["tpir_at_fpir_0.01"]
    assert z[1] - z[0] > f[1] - f[0]


def test_fewer_probes_give_wider_intervals_and_zero_resamples_none() -> None:
    big = compute_metrics(*_scores(2000, 2000), 0, EvalSettings(bootstrap_resamples=300))["bootstrap_95"]
    small = compute_metrics(*_scores(100, 100), 0, EvalSettings(bootstrap_resamples=300))["bootstrap_95"]
    width = lambda r: r["tpir_at_fpir_0.01"][1] - r["tpir_at_fpir_0.01"][0]  # noqa: E731
    assert width(small) > width(big)
    assert "bootstrap_95" not in compute_metrics(*_scores(50, 50), 0, EvalSettings(bootstrap_resamples=0))
