"""`lfr eval --groups` end to end on the real Triton and Milvus of the local stack: a slice of lfw_dev (15
subjects, 20 passers-by and one passer-by the groups file does not list), per-group figures, the per-group DET
image, one calibration record per embedder, the temporary collections dropped; an embedder the manifest does
not have is refused before any work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from rig_support import require_triton_model

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LFW = REPO / ".." / "shared" / "data" / "lfw_dev"
SEX = REPO / ".." / "shared" / "data" / "lfw_dev_sex.csv"
SUBJECTS, PASSERS_BY = 15, 20
UNLISTED = "Zz_Unlisted_Passer_By"  # a passer-by's folder under a name the CSV does not have


@pytest.fixture(scope="module", autouse=True)
def triton_up() -> None:
    if not LFW.is_dir() or not SEX.is_file():
        pytest.fail(f"shared data missing: {LFW}, {SEX}")
    require_triton_model()


def _slice(root: Path) -> dict[str, str]:
    """Symlinks to the first SUBJECTS subjects and PASSERS_BY + 1 passers-by of lfw_dev; identity -> sex."""
    folders = sorted(p for p in LFW.iterdir() if p.is_dir())
    subjects = [p for p in folders if len(list(p.iterdir())) >= 2][:SUBJECTS]
    passers = [p for p in folders if len(list(p.iterdir())) == 1][:PASSERS_BY + 1]
    root.mkdir()
    for p in [*subjects, *passers[:-1]]:
        (root / p.name).symlink_to(p.resolve())
    (root / UNLISTED).symlink_to(passers[-1].resolve())
    rows = dict(line.split(",", 1) for line in SEX.read_text().splitlines()[1:])
    return {p.name: rows[p.name].strip() for p in [*subjects, *passers[:-1]]}


def _lfr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "services.cli.main", *args], check=False, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def _eval_collections() -> set[str]:
    from services.common.clients import milvus_client

    client = milvus_client("http://127.0.0.1:19530")
    try:
        return {n for n in client.list_collections() if n.startswith("lfr_eval_")}
    finally:
        client.close()


def test_lfr_eval_per_group_on_an_lfw_slice(tmp_path: Path) -> None:
    before = _eval_collections()  # another eval may be running on the shared stack
    data = tmp_path / "slice"
    sex = _slice(data)
    out, plot, cal = tmp_path / "eval.json", tmp_path / "det.png", tmp_path / "calibration"
    proc = _lfr("eval", str(data), "--groups", str(SEX), "--json", str(out), "--plot", str(plot),
                "--calibrate", str(cal), "--resamples", "300", "--no-progress")
    # 21 passers-by are too few to calibrate: the report stands, no calibration is written, exit 2 with the fix
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "no calibration written: 21 passers-by" in proc.stderr and "at least 100" in proc.stderr
    assert not cal.exists() or not list(cal.iterdir())
    printed = json.loads(proc.stdout)
    rep = json.loads(out.read_text())
    (name,) = rep["embedders"]
    c = rep["counts"]
    assert (c["subjects"], c["nonmated_probes"]) == (SUBJECTS, PASSERS_BY + 1)
    # the one-embedder keys stay at the top level
    for key in ("tpir_at_zero_false_alerts", "tpir_at_fpir_0.01", "rank1", "recommended_threshold", "per_threshold",
                "bootstrap_95", "embedder"):
        assert rep[key] == rep["results"][name][key], key
    assert rep["rank1"] > 0.8 and rep["comparison"] == []

    groups = rep["results"][name]["groups"]
    thresholds = groups["thresholds"]
    assert thresholds["zero_false_alerts"]["value"] == rep["threshold_zero_false_alerts"]
    if "operating_threshold" in rep:
        assert thresholds["operating"]["value"] == rep["operating_threshold"]
        assert thresholds["operating"]["source"].startswith("calibration ")
    else:
        assert thresholds["operating"]["source"].startswith("uncalibrated")
    by = groups["columns"]["sex"]["groups"]
    assert set(by) == {*(v for v in sex.values() if v), "unknown"}
    assert by["unknown"]["counts"]["nonmated_probes"] >= 1  # the unlisted passer-by (and any blank one)
    assert sum(g["counts"]["subjects"] for g in by.values()) == SUBJECTS
    assert sum(g["counts"]["mated_probes"] for g in by.values()) == c["mated_probes"]
    assert sum(g["counts"]["nonmated_probes"] for g in by.values()) == PASSERS_BY + 1
    subjects_f = sum(1 for i, v in sex.items() if v == "F" and len(list((data / i).iterdir())) >= 2)
    assert by["F"]["counts"]["subjects"] == subjects_f
    for g in by.values():
        for at in g["at"].values():
            if at["tpir"]["of"]:
                assert at["fnir"]["value"] == round(1 - at["tpir"]["value"], 4)
                lo, hi = at["tpir"]["interval_95"]
                assert lo <= at["tpir"]["value"] <= hi
            fp = at["fpir"]
            if fp["of"] and fp["count"] == 0:  # 0 false alerts: said plainly, an upper bound only
                assert any("0 false alerts of" in n for n in g["notes"])
    assert all(any(f"only {g['counts']['nonmated_probes']} passer" in n for n in g["notes"])
               for g in by.values() if 0 < g["counts"]["nonmated_probes"] < 100)
    assert isinstance(groups["columns"]["sex"]["flags"], list) and printed["group_flags"]

    assert rep["group_plots"] == [str(tmp_path / "det-sex.png")]
    for p in (plot, tmp_path / "det-sex.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "calibration" not in rep
    assert _eval_collections() <= before  # its temporary collection is gone


def test_an_unknown_embedder_is_refused_before_any_work(tmp_path: Path) -> None:
    proc = _lfr("eval", str(tmp_path), "--embedder", "mobilefacenet512,no_such_embedder")
    assert proc.returncode == 2
    assert "unknown embedder 'no_such_embedder'" in proc.stderr and "mobilefacenet512" in proc.stderr
