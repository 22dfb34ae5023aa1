"""The face pipeline on the REAL models (ONNX from `lfr models build`), in-process."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

from services.eval.evaluation import load_rgb
from services.face.config import FaceConfig
from services.face.embedder import EMBEDDING_DIM
from services.face.embedders import DEFAULT_EMBEDDER, calibrated_threshold
from services.face.pipeline import FacePipeline, face_models
from services.face.runner import OnnxRunner
from services.models.paths import model_path

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / ".." / "shared" / "data" / "faces"
MODELS = face_models()

pytestmark = [
    pytest.mark.skipif(not all(model_path(m).is_file() for m in MODELS),
                       reason="face models not built: run 'lfr models build'"),
    pytest.mark.skipif(not FACES.is_dir(), reason=f"shared face data missing at {FACES}"),
]

IDENTITIES = ("obama", "biden", "kit_harington", "rose_leslie", "alex_lacamoire")


def load(name: str) -> np.ndarray:
    img = load_rgb(FACES / name)
    assert img is not None, name
    return img


def identity(name: str) -> str | None:
    return next((i for i in IDENTITIES if name.startswith(i + "_")), None)


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return FacePipeline(OnnxRunner(), FaceConfig())


@pytest.mark.parametrize("name,count", [("group_friends_cast_6_faces.jpg", 6), ("group_obama_biden_1.jpg", 2)])
async def test_detector_finds_every_face(pipeline: FacePipeline, name: str, count: int) -> None:
    (faces,) = await pipeline.analyse([load(name)])
    assert len(faces) == count, faces
    for f in faces:
        x1, y1, x2, y2 = f.box
        # the landmarks lie inside the box, eyes above the mouth, left eye left of the right eye
        assert np.all((f.landmarks[:, 0] > x1) & (f.landmarks[:, 0] < x2)), f
        assert np.all((f.landmarks[:, 1] > y1) & (f.landmarks[:, 1] < y2)), f
        assert f.landmarks[0, 0] < f.landmarks[1, 0]
        assert f.landmarks[:2, 1].max() < f.landmarks[3:, 1].min()
        assert f.det_score >= 0.8
        assert f.embedding is not None and f.embedding.shape == (EMBEDDING_DIM,) and f.embedding.dtype == np.float32
        assert abs(float(np.linalg.norm(f.embedding)) - 1) < 1e-4
        assert f.aligned.shape == (112, 112, 3) and f.aligned.dtype == np.uint8


async def test_same_person_above_threshold_different_below(pipeline: FacePipeline) -> None:
    names = sorted(p.name for p in FACES.iterdir()
                   if identity(p.name) and "partial" not in p.name)
    assert len(names) >= 15
    results = await pipeline.analyse([load(n) for n in names])
    emb = {}
    for n, faces in zip(names, results):
        assert faces, f"no face in {n}"
        main = max(faces, key=lambda f: float(f.box[2] - f.box[0]))  # single-person photo: the largest face
        assert main.embedding is not None, (n, main.quality)
        emb[n] = main.embedding
    same, diff = [], []
    for a, b in itertools.combinations(names, 2):
        s = float(emb[a] @ emb[b])
        (same if identity(a) == identity(b) else diff).append((s, a, b))
    assert min(same)[0] >= calibrated_threshold(DEFAULT_EMBEDDER), min(same)
    assert max(diff)[0] < calibrated_threshold(DEFAULT_EMBEDDER), max(diff)


async def test_batching_across_images_matches_one_by_one(pipeline: FacePipeline) -> None:
    names = ["obama_1.jpg", "group_obama_biden_1.jpg", "kit_harington_2.jpg"]
    together = await pipeline.analyse([load(n) for n in names])
    for n, faces in zip(names, together):
        (alone,) = await pipeline.analyse([load(n)])
        assert len(alone) == len(faces)
        for a, b in zip(alone, faces):
            np.testing.assert_allclose(a.box, b.box, atol=1e-3)
            np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-4)


async def test_rgba_and_grey_inputs(pipeline: FacePipeline) -> None:
    rgba = cv2.cvtColor(cv2.imread(str(FACES / "obama_2_rgba_32bit.png"), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    grey = cv2.cvtColor(load("obama_1.jpg"), cv2.COLOR_RGB2GRAY)
    blank = np.full((240, 320, 3), 127, np.uint8)
    res = await pipeline.analyse([rgba, grey, blank])
    assert len(res[0]) == 1 and len(res[1]) == 1 and res[2] == []
