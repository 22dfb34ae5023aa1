"""Quality gate and alignment. The gate tests run the REAL models in-process."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from services.face.align import ARCFACE_TEMPLATE, align, alignment_matrix, transform_points, umeyama
from services.face.config import FaceConfig, QualityConfig
from services.face.pipeline import FacePipeline, face_models
from services.face.quality import RejectReason, assess, head_pose
from services.face.runner import OnnxRunner
from services.models.paths import model_path

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / ".." / "shared" / "data" / "faces"
needs_models = pytest.mark.skipif(
    not all(model_path(m).is_file() for m in face_models()) or not FACES.is_dir(),
    reason="face models not built ('lfr models build') or shared face data missing")


def load(name: str) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(FACES / name), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_alignment_maps_template_to_itself() -> None:
    m = alignment_matrix(ARCFACE_TEMPLATE)
    np.testing.assert_allclose(m, [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    np.testing.assert_allclose(transform_points(m, ARCFACE_TEMPLATE), ARCFACE_TEMPLATE, atol=1e-9)


def test_alignment_undoes_a_similarity_transform() -> None:
    theta, s, t = np.deg2rad(25), 2.7, np.array([310.0, -40.0])
    r = s * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    moved = ARCFACE_TEMPLATE @ r.T + t
    np.testing.assert_allclose(transform_points(alignment_matrix(moved), moved), ARCFACE_TEMPLATE, atol=1e-6)
    np.testing.assert_allclose(umeyama(ARCFACE_TEMPLATE, moved)[:, :2], r, atol=1e-9)
    # and the warp puts a marked pixel where the template says
    img = np.zeros((800, 800, 3), np.uint8)
    nose = moved[2].round().astype(int)
    cv2.circle(img, tuple(int(v) for v in nose), 6, (255, 255, 255), -1)
    crop = align(img, moved)
    ys, xs = np.nonzero(crop[:, :, 0] > 128)
    assert abs(xs.mean() - ARCFACE_TEMPLATE[2, 0]) < 1.0 and abs(ys.mean() - ARCFACE_TEMPLATE[2, 1]) < 1.0


def test_head_pose_frontal_and_turned() -> None:
    yaw, pitch = head_pose(ARCFACE_TEMPLATE)
    assert abs(yaw) < 2 and abs(pitch) < 2
    turned = ARCFACE_TEMPLATE.copy()
    turned[2, 0] += 15  # nose far towards the right eye: a strongly turned head
    yaw, _ = head_pose(turned)
    assert yaw > 45
    cfg = QualityConfig()
    crop = np.random.default_rng(0).integers(0, 255, (112, 112, 3), dtype=np.uint8)  # sharp
    assert assess(turned * 3, crop, 0.99, cfg).reason is RejectReason.NOT_FRONTAL
    assert assess(ARCFACE_TEMPLATE * 3, crop, 0.5, cfg).reason is RejectReason.LOW_SCORE
    assert assess(ARCFACE_TEMPLATE * 3, crop, 0.99, cfg).reason is None


def test_config_forbids_unknown_keys() -> None:
    with pytest.raises(ValueError):
        FaceConfig.model_validate({"quality": {"min_eye_px": 3}})


@needs_models
async def test_gate_rejects_tiny_and_blurred_faces() -> None:
    pipe = FacePipeline(OnnxRunner(), FaceConfig())
    img = load("obama_small_320x240.jpg")
    (sharp,) = await pipe.analyse([img])
    assert len(sharp) == 1 and sharp[0].quality.reason is None

    # the same photo shrunk on a 640x480 canvas: the face is still found but its eyes are ~14 px apart
    small = cv2.resize(img, None, fx=0.28, fy=0.28, interpolation=cv2.INTER_AREA)
    canvas = np.full((480, 640, 3), 90, np.uint8)
    canvas[200:200 + small.shape[0], 300:300 + small.shape[1]] = small
    blurred = cv2.GaussianBlur(img, (0, 0), 4)
    tiny, blur = await pipe.analyse([canvas, blurred])
    assert len(tiny) == 1, tiny
    assert tiny[0].quality.reason is RejectReason.TOO_SMALL and tiny[0].embedding is None
    assert len(blur) == 1, blur
    assert blur[0].quality.reason is RejectReason.BLURRED and blur[0].embedding is None
    assert blur[0].quality.sharpness < sharp[0].quality.sharpness / 5
