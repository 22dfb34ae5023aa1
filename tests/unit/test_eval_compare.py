"""lfr eval with several embedders (services/eval/stats.py, services/eval/evaluation.py): the paired bootstrap of
the differences, the per-embedder results and comparisons, one calibration record per embedder, the missing-
embedder error and the DET plots. Synthetic scores; no servers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from services.eval.cli import missing_embedders_error, summary
from services.eval.evaluation import EvalSettings, embedder_results, write_calibrations
from services.eval.groups import assign_groups
from services.eval.plot import Curve, group_plot_path, plot_det, plot_group_dets
from services.eval.stats import COMPARED, Scores, paired_difference
from services.face.embedders import load_calibration
from services.models.manifest import load_manifest


def _scores(n_m: int = 600, n_nm: int = 800, seed: int = 1, mean: float = 0.6) -> Scores:
    rng = np.random.default_rng(seed)
    mated = rng.normal(mean, 0.1, n_m)
    mated[rng.choice(n_m, n_m // 30, replace=False)] = -np.inf  # top candidate someone else / no face
    return Scores(mated, rng.normal(0.3, 0.08, n_nm))


def test_identical_embedders_differ_by_exactly_zero() -> None:
    a = _scores()
    d = paired_difference(a, Scores(a.mated.copy(), a.nonmated.copy()), 300, 0)
    for k in COMPARED:
        assert d[k]["difference"] == 0 and d[k]["interval_95"] == [0.0, 0.0], (k, d[k])
        assert d[k]["excludes_zero"] is False and d[k]["reading"].startswith("no difference")


def test_two_equally_good_embedders_give_an_interval_around_zero() -> None:
    # the same probes, the same score distribution, independent noise: no difference to find
    d = paired_difference(_scores(seed=1), _scores(seed=2), 500, 0)
    for k in COMPARED:
        lo, hi = d[k]["interval_95"]
        assert lo < 0 < hi, (k, d[k])
        assert not d[k]["excludes_zero"]


def test_a_clearly_better_embedder_gives_an_interval_above_zero_and_the_order_matters() -> None:
    a = _scores()
    better_m = a.mated + 0.08  # every mated probe scores higher, the passers-by the same
    better_m[~np.isfinite(a.mated)] = 0.9  # and it finds the subjects a missed (rank-1)
    b = Scores(better_m, a.nonmated.copy())
    d = paired_difference(a, b, 500, 0)
    for k in COMPARED:
        lo, hi = d[k]["interval_95"]
        assert 0 < lo <= d[k]["difference"] <= hi, (k, d[k])
        assert d[k]["excludes_zero"] and d[k]["reading"] == "b higher"
        assert d[k]["difference"] == round(d[k]["b"] - d[k]["a"], 4)
    back = paired_difference(b, a, 500, 0)
    for k in COMPARED:
        assert back[k]["interval_95"][1] < 0 and back[k]["reading"] == "a higher"


def test_pairing_finds_a_small_consistent_gain() -> None:
    # +0.01 on every mated score moves TPIR at FPIR 1e-2 by a few probes only: within each embedder's own
    # interval, yet in every resample b is at least as good as a on the same probes
    a = _scores()
    b = Scores(a.mated + 0.01, a.nonmated.copy())
    d = paired_difference(a, b, 500, 0)["tpir_at_fpir_0.01"]
    assert d["interval_95"][0] > 0, d
    settings = EvalSettings(bootstrap_resamples=500)
    results, _, _ = embedder_results({"emb_a": a, "emb_b": b}, settings)
    own_a = results["emb_a"]["bootstrap_95"]["tpir_at_fpir_0.01"]
    assert own_a[0] < results["emb_b"]["tpir_at_fpir_0.01"] < own_a[1]  # unpaired, the gain hides in the noise


def test_the_pair_must_share_its_probes() -> None:
    a = _scores()
    with pytest.raises(ValueError, match="same mated and non-mated probes"):
        paired_difference(a, Scores(a.mated[:-1], a.nonmated), 10, 0)


def test_results_per_embedder_and_every_pair_compared() -> None:
    scores = {"emb_a": _scores(seed=1), "emb_b": _scores(seed=2, mean=0.7), "emb_c": _scores(seed=3)}
    results, comparison, operating = embedder_results(scores, EvalSettings(bootstrap_resamples=100))
    assert list(results) == ["emb_a", "emb_b", "emb_c"]
    assert [(c["a"], c["b"]) for c in comparison] == [("emb_a", "emb_b"), ("emb_a", "emb_c"), ("emb_b", "emb_c")]
    for name, r in results.items():
        assert r["embedder"] == name and "bootstrap_95" in r and "per_threshold" in r
        # never calibrated: the operating threshold is this run's zero-false-alert threshold, and it says so
        assert "operating_threshold" not in r
        assert operating[name] == r["threshold_zero_false_alerts"]
        assert r["operating_threshold_source"].startswith("uncalibrated")
    assert comparison[0]["tpir_at_fpir_0.01"]["reading"] == "b higher"


def test_calibrate_writes_one_record_per_embedder(tmp_path: Path) -> None:
    scores = {"emb_a": _scores(seed=1), "emb_b": _scores(seed=2, mean=0.7)}
    results, comparison, _ = embedder_results(scores, EvalSettings(bootstrap_resamples=0))
    report = {"dataset": "/data/lfw_dev", "counts": {"subjects_enrolled": 300, "mated_probes": 600,
                                                       "nonmated_probes": 800},
              "results": results, "comparison": comparison}
    written = write_calibrations(report, tmp_path)
    assert written == {n: str(tmp_path / f"{n}.json") for n in scores}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb_a.json", "emb_b.json"]
    for name, r in results.items():
        cal = load_calibration(name, tmp_path)
        assert cal is not None and cal.embedder == name and cal.dataset == "lfw_dev"
        assert cal.recommended_threshold == r["recommended_threshold"]
        assert cal.threshold_zero_false_alerts == round(r["threshold_zero_false_alerts"], 4)
        assert cal.counts == {"subjects_enrolled": 300, "mated_probes": 600, "nonmated_probes": 800}
    assert load_calibration("emb_a", tmp_path).recommended_threshold != \
        load_calibration("emb_b", tmp_path).recommended_threshold


def test_summary_reads_the_comparison_and_groups() -> None:
    a = _scores()
    b = Scores(a.mated + 0.08, a.nonmated.copy())
    groups = assign_groups({"sex": {f"s{i}": "F" if i % 3 == 0 else "M" for i in range(100)}},
                           [f"s{i}" for i in range(100)], [f"s{i % 100}" for i in range(600)],
                           [f"p{i}" for i in range(800)])
    settings = EvalSettings(bootstrap_resamples=200)
    results, comparison, _ = embedder_results({"emb_a": a, "emb_b": b}, settings, groups)
    report = {"dataset": "d", "counts": {}, "results": results, "comparison": comparison, "rejected": {},
              "no_face": []}
    text = summary(report)
    line = text["comparison"]["emb_b - emb_a"]["tpir_at_fpir_0.01"]
    assert "excludes 0: emb_b higher" in line, line
    assert set(text["groups"]["emb_a"]["sex"]) == {"F", "M", "unknown"}  # every passer-by is unlisted
    assert text["groups"]["emb_a"]["sex"]["unknown"]["counts"] == "0 subjects, 0 mated probes, 800 non-mated probes"
    assert text["groups"]["emb_a"]["thresholds"]["operating"].endswith("(uncalibrated: this run's overall "
                                                                        "zero-false-alert threshold)")
    json.dumps(text)


def test_a_missing_embedder_names_the_build_and_the_licence_token() -> None:
    err = missing_embedders_error("127.0.0.1:8001", ["mobilefacenet512"])
    assert "does not serve the embedder mobilefacenet512" in err.cause
    assert "'.venv/bin/lfr models build mobilefacenet512'" in err.fix and "--accept-licence" not in err.fix
    assert "lfr stack up --only triton" in err.fix
    for name, m in load_manifest().models.items():
        if m.requires_acknowledgement:
            fix = missing_embedders_error("x", [name]).fix
            assert f"lfr models build {name} --accept-licence {m.requires_acknowledgement}'" in fix, fix


def test_det_plots_overall_and_one_file_per_group_column(tmp_path: Path) -> None:
    scores = {"emb_a": _scores(seed=1), "emb_b": _scores(seed=2, mean=0.7)}
    out = tmp_path / "det.png"
    plot_det([Curve(n, s, {"operating": 0.5}) for n, s in scores.items()], out, "DET")
    groups = assign_groups({"sex": {f"s{i}": "F" if i % 2 else "M" for i in range(100)},
                            "age band": {f"p{i}": "old" for i in range(400)}},
                           [f"s{i}" for i in range(100)], [f"s{i % 100}" for i in range(600)],
                           [f"p{i}" for i in range(800)])
    written = plot_group_dets(scores, groups, {"emb_a": 0.5, "emb_b": 0.55}, out, "DET")
    assert written == [tmp_path / "det-sex.png", tmp_path / "det-age_band.png"]
    assert group_plot_path(out, "age band") == tmp_path / "det-age_band.png"
    for p in (out, *written):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_calibration_no_matcher_could_use_is_refused(tmp_path: Path) -> None:
    """Too few passers-by, a threshold at or below 0 (no passer-by had a usable face: every face would alert),
    or a record copied under another embedder's name: never a matcher's default."""
    import json

    import pytest

    from services.face.embedders import calibration_from_report

    scores = {"emb_a": _scores(seed=1)}
    results, _, _ = embedder_results(scores, EvalSettings(bootstrap_resamples=0))
    few = {**results["emb_a"], "dataset": "tiny", "counts": {"nonmated_probes": 20}}
    with pytest.raises(ValueError, match="20 passers-by .* too few"):
        calibration_from_report("emb_a", few)
    blind = {**results["emb_a"], "dataset": "blind", "counts": {"nonmated_probes": 800},
             "threshold_zero_false_alerts": -1.0, "recommended_threshold": -0.98}
    with pytest.raises(ValueError, match="recommended_threshold"):
        calibration_from_report("emb_a", blind)
    report = {"dataset": "/d/lfw_dev", "counts": {"nonmated_probes": 800}, "results": results, "comparison": []}
    path = tmp_path / "emb_a.json"
    write_calibrations(report, tmp_path)
    path.rename(tmp_path / "emb_b.json")
    with pytest.raises(ValueError, match="calibrates emb_a, not emb_b"):
        load_calibration("emb_b", tmp_path)
    assert json.loads((tmp_path / "emb_b.json").read_text())["embedder"] == "emb_a"
