"""lfr eval --groups (services/eval/groups.py): the groups file, group assignment with `unknown`, the
intervals at fixed thresholds, the non-overlap flags and the notes on small groups. Synthetic scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from services.eval.groups import UNKNOWN, assign_groups, group_report, read_groups
from services.eval.stats import Scores, exact_interval, share_at_threshold


def _csv(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "groups.csv"
    p.write_text(text)
    return p


def test_read_groups_leaves_empty_values_out(tmp_path: Path) -> None:
    table = read_groups(_csv(tmp_path, "identity,sex,band\nann,F,a\nbob,M,\ncy,,b\n"))
    assert table == {"sex": {"ann": "F", "bob": "M"}, "band": {"ann": "a", "cy": "b"}}


@pytest.mark.parametrize("text,match", [
    ("name,sex\nann,F\n", "header must be 'identity"),
    ("identity\nann\n", "header must be 'identity"),
    ("identity,sex\nann,F\nann,M\n", "ann is listed twice"),
    ("identity,sex\n,F\n", "no identity"),
    ("identity,sex\nann,unknown\n", "leave the value empty"),
])
def test_read_groups_says_what_is_wrong(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        read_groups(_csv(tmp_path, text))


def test_assignment_counts_subjects_probes_and_unknown() -> None:
    table = {"sex": {"ann": "F", "bob": "M", "pia": "F", "cy": "M"}}
    subjects = ["ann", "bob", "dee"]  # dee is not in the CSV
    mated = ["ann", "ann", "bob", "dee", "dee", "dee"]
    nonmated = ["pia", "cy", "zed", "pia2"]  # zed and pia2 unlisted
    (groups,) = assign_groups(table, subjects, mated, nonmated).values()
    by = {g.name: g for g in groups}
    assert [g.name for g in groups] == ["F", "M", UNKNOWN]  # unknown last
    assert (by["F"].subjects, by["F"].mated.tolist(), by["F"].nonmated.tolist()) == (1, [0, 1], [0])
    assert (by["M"].subjects, by["M"].mated.tolist(), by["M"].nonmated.tolist()) == (1, [2], [1])
    assert (by[UNKNOWN].subjects, by[UNKNOWN].mated.tolist(), by[UNKNOWN].nonmated.tolist()) == (1, [3, 4, 5],
                                                                                                 [2, 3])
    assert sum(g.subjects for g in groups) == len(subjects)
    assert sum(len(g.mated) for g in groups) == len(mated) and sum(len(g.nonmated) for g in groups) == len(nonmated)


def test_no_unknown_group_when_everyone_is_listed() -> None:
    (groups,) = assign_groups({"sex": {"a": "F", "b": "M"}}, ["a"], ["a"], ["b"]).values()
    assert [g.name for g in groups] == ["F", "M"]


def test_share_intervals_bracket_the_value_and_zero_of_n_is_exact() -> None:
    rng = np.random.default_rng(0)
    hits = np.arange(400) < 360  # 0.9
    s = share_at_threshold(hits, 1000, rng)
    assert (s["value"], s["count"], s["of"]) == (0.9, 360, 400)
    lo, hi = s["interval_95"]
    assert 0.86 < lo < 0.9 < hi < 0.94 and s["interval_method"] == "percentile bootstrap"
    zero = share_at_threshold(np.zeros(200, bool), 1000, rng)
    assert zero["value"] == 0 and zero["interval_95"] == exact_interval(0, 200)
    assert zero["interval_95"][1] == pytest.approx(1 - 0.025 ** (1 / 200), abs=1e-4)  # 0.0183
    assert share_at_threshold(np.ones(50, bool), 1000, rng)["interval_95"] == exact_interval(50, 50)
    assert "interval_95" not in share_at_threshold(hits, 0, rng)
    assert share_at_threshold(np.zeros(0, bool), 1000, rng)["value"] is None


def _two_groups(f_mated_mean: float, f_nonmated_mean: float, n: int = 400) -> tuple[Scores, dict]:
    """F: subjects 0..n/2-1 and passers-by 0..n-1; M: the rest. Scores drawn per group."""
    rng = np.random.default_rng(3)
    subjects = [f"s{i}" for i in range(n)]
    mated_owner = [f"s{i % n}" for i in range(2 * n)]
    nonmated_owner = [f"p{i}" for i in range(2 * n)]
    table = {"sex": {**{f"s{i}": "F" if i < n // 2 else "M" for i in range(n)},
                     **{f"p{i}": "F" if i < n else "M" for i in range(2 * n)}}}
    groups = assign_groups(table, subjects, mated_owner, nonmated_owner)
    f_m = np.array([(i % n) < n // 2 for i in range(2 * n)])
    f_nm = np.arange(2 * n) < n
    mated = np.where(f_m, rng.normal(f_mated_mean, 0.1, 2 * n), rng.normal(0.7, 0.1, 2 * n))
    nonmated = np.where(f_nm, rng.normal(f_nonmated_mean, 0.08, 2 * n), rng.normal(0.3, 0.08, 2 * n))
    return Scores(mated, nonmated), groups


def test_groups_alike_raise_no_flag() -> None:
    scores, groups = _two_groups(0.7, 0.3)
    rep = group_report(scores, groups, {"operating": 0.5, "zero_false_alerts": 0.55}, 1000, 0)["sex"]
    assert rep["flags"] == []
    f = rep["groups"]["F"]
    assert f["counts"] == {"subjects": 200, "mated_probes": 400, "nonmated_probes": 400}
    at = f["at"]["operating"]
    assert at["threshold"] == 0.5
    assert at["fnir"]["value"] == round(1 - at["tpir"]["value"], 4)
    assert at["fnir"]["interval_95"] == [round(1 - at["tpir"]["interval_95"][1], 4),
                                         round(1 - at["tpir"]["interval_95"][0], 4)]
    for metric in ("tpir", "fnir", "fpir"):
        lo, hi = at[metric]["interval_95"]
        assert lo <= at[metric]["value"] <= hi


def test_groups_apart_are_flagged_per_metric_and_threshold() -> None:
    # F: lower mated scores (more misses) and higher passer-by scores (more false alerts)
    scores, groups = _two_groups(0.55, 0.42)
    rep = group_report(scores, groups, {"operating": 0.5, "zero_false_alerts": 0.6}, 1000, 0)["sex"]
    flagged = {(f["metric"], f["threshold"]) for f in rep["flags"]}
    assert {("tpir", "operating"), ("fpir", "operating"), ("tpir", "zero_false_alerts")} <= flagged
    tp = next(f for f in rep["flags"] if (f["metric"], f["threshold"]) == ("tpir", "operating"))
    assert tp["groups"] == ["F", "M"] and tp["values"]["F"] < tp["values"]["M"]
    assert tp["intervals"]["F"][1] < tp["intervals"]["M"][0]
    assert tp["reading"].startswith("TPIR at operating: M ") and "do not overlap" in tp["reading"]


def test_small_groups_and_zero_false_alerts_are_said_plainly() -> None:
    table = {"sex": {"a": "F", "b": "M", **{f"p{i}": "F" for i in range(20)}}}
    mated = np.array([0.9, 0.8, 0.3, 0.9])
    nonmated = np.concatenate([np.full(20, 0.1), np.full(150, 0.2)])
    groups = assign_groups(table, ["a", "b"], ["a", "a", "b", "b"], [f"p{i}" for i in range(170)])
    rep = group_report(Scores(mated, nonmated), groups, {"operating": 0.5}, 500, 0)["sex"]["groups"]
    f_notes = " | ".join(rep["F"]["notes"])
    assert "only 2 mated probes" in f_notes
    assert "only 20 passers-by: one false alert is FPIR 0.050" in f_notes
    assert "at operating: 0 false alerts of 20 passers-by shows only that FPIR is below 0.1684" in f_notes
    assert rep["F"]["at"]["operating"]["fpir"]["interval_95"] == [0.0, 0.1684]
    assert "no passers-by: no FPIR" in rep["M"]["notes"]
    assert rep["M"]["at"]["operating"]["fpir"]["value"] is None
    assert rep[UNKNOWN]["counts"] == {"subjects": 0, "mated_probes": 0, "nonmated_probes": 150}
    assert "no mated probes: no TPIR / FNIR" in rep[UNKNOWN]["notes"]
    assert not any("passers-by:" in n and "only" in n for n in rep[UNKNOWN]["notes"])  # 150 >= 100
