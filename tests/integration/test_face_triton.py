"""The face pipeline through the REAL Triton of the local stack (`lfr stack up --only triton`),
and `lfr eval` end to end (real Triton + real Milvus) on a tiny generated set."""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from rig_support import require_triton_model

from services.common.triton_client import TritonClient, TritonClientSettings
from services.eval.evaluation import load_rgb
from services.face.config import FaceConfig
from services.face.embedder import EMBEDDING_DIM
from services.face.embedders import DEFAULT_EMBEDDER, calibrated_threshold
from services.face.pipeline import FacePipeline

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FACES = Path(REPO) / ".." / "shared" / "data" / "faces"
IDENTITIES = ("obama", "biden", "kit_harington", "rose_leslie", "alex_lacamoire")
URL = "127.0.0.1:8001"


@pytest.fixture(scope="module", autouse=True)
def triton_up() -> None:
    if not FACES.is_dir():
        pytest.fail(f"shared face data missing at {FACES}")
    require_triton_model()


def load(name: str) -> np.ndarray:
    img = load_rgb(FACES / name)
    assert img is not None, name
    return img


def identity(name: str) -> str | None:
    return next((i for i in IDENTITIES if name.startswith(i + "_")), None)


async def analyse(images: list[np.ndarray]):
    async with TritonClient(TritonClientSettings(url=URL, timeout_s=60, max_batch=8)) as client:
        return await FacePipeline(client, FaceConfig()).analyse(images)


@pytest.mark.parametrize("name,count", [("group_friends_cast_6_faces.jpg", 6), ("group_obama_biden_1.jpg", 2)])
def test_detector_finds_every_face_through_triton(name: str, count: int) -> None:
    (faces,) = asyncio.run(analyse([load(name)]))
    assert len(faces) == count, faces
    for f in faces:
        assert f.det_score >= 0.8
        assert f.embedding is not None and f.embedding.shape == (EMBEDDING_DIM,)
        assert abs(float(np.linalg.norm(f.embedding)) - 1) < 1e-4


def test_same_person_above_default_threshold_different_below_through_triton() -> None:
    names = sorted(p.name for p in FACES.iterdir() if identity(p.name) and "partial" not in p.name)
    assert len(names) >= 15
    results = asyncio.run(analyse([load(n) for n in names]))
    emb = {}
    for n, faces in zip(names, results):
        assert faces, f"no face in {n}"
        main = max(faces, key=lambda f: float(f.box[2] - f.box[0]))
        assert main.embedding is not None, (n, main.quality)
        emb[n] = main.embedding
    same, diff = [], []
    for a, b in itertools.combinations(names, 2):
        s = float(emb[a] @ emb[b])
        (same if identity(a) == identity(b) else diff).append((s, a, b))
    assert min(same)[0] >= calibrated_threshold(DEFAULT_EMBEDDER), min(same)
    assert max(diff)[0] < calibrated_threshold(DEFAULT_EMBEDDER), max(diff)


def test_lfr_eval_on_a_tiny_set(tmp_path: Path) -> None:
    data = tmp_path / "set"
    layout = {"obama": ["obama_1.jpg", "obama_2.jpg", "obama_3.jpg"], "biden": ["biden_1.jpg", "biden_2.jpg"],
              "kit_harington": ["kit_harington_1.jpg", "kit_harington_2.jpg"],
              "paul_rudd": ["paul_rudd_1.jpg"], "kate_siegel": ["kate_siegel_1.jpg"],
              "shea_whigham": ["shea_whigham_1.jpg"], "nobody": ["blank.png"]}
    for ident, files in layout.items():
        (data / ident).mkdir(parents=True)
        for f in files:
            if f == "blank.png":
                cv2.imwrite(str(data / ident / f), np.full((120, 160, 3), 128, np.uint8))
            else:
                shutil.copyfile(FACES / f, data / ident / f)
    out, plot = tmp_path / "eval.json", tmp_path / "det.png"
    proc = subprocess.run([sys.executable, "-m", "services.cli.main", "eval", str(data), "--json", str(out),
                           "--plot", str(plot), "--no-progress"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads(out.read_text())
    for key in ("tpir_at_zero_false_alerts", "tpir_at_fpir_0.01", "tpir_at_fpir_0.001", "per_threshold",
                "recommended_threshold", "rank1", "counts", "no_face"):
        assert key in rep, key
    c = rep["counts"]
    assert (c["images"], c["subjects"], c["subjects_enrolled"], c["mated_probes"], c["nonmated_probes"]) == \
        (11, 3, 3, 4, 4)
    assert rep["no_face"] == ["nobody/blank.png"]
    assert rep["rank1"] == 1.0 and rep["tpir_at_zero_false_alerts"] == 1.0
    assert 0 < rep["recommended_threshold"] < 1
    table = rep["per_threshold"]
    assert all(0 <= r["tpir"] <= 1 and 0 <= r["fpir"] <= 1 for r in table)
    assert all(a["tpir"] >= b["tpir"] and a["fpir"] >= b["fpir"] for a, b in zip(table, table[1:]))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the temporary collection is gone
    from services.common.clients import milvus_client

    client = milvus_client("http://127.0.0.1:19530")
    try:
        assert not [n for n in client.list_collections() if n.startswith("lfr_eval_")]
    finally:
        client.close()
