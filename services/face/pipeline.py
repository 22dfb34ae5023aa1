"""FacePipeline: frames in, faces out (box, landmarks, score, quality, aligned
crop, embedding or None when the quality gate rejects the face). Batches
FaceBoxes by frame size, O-Net, Face Mesh and the embedder across all frames of a call."""

from __future__ import annotations

import dataclasses

import numpy as np

from services.common.runner import ModelRunner
from services.face.align import align
from services.face.config import FaceConfig
from services.face.detector import FACEBOXES, FACEMESH, ONET, FaceDetector
from services.face.embedder import Embedder
from services.face.quality import Quality, assess

# the models FacePipeline calls before the embedder
DETECTOR_MODELS: tuple[str, ...] = (FACEBOXES, ONET, FACEMESH)


def face_models(config: FaceConfig | None = None) -> tuple[str, ...]:
    """Every model a FacePipeline of ``config`` calls (Triton must serve them all)."""
    return (*DETECTOR_MODELS, (config or FaceConfig()).embedder)


@dataclasses.dataclass
class Face:
    box: np.ndarray  # (4,) float32 x1, y1, x2, y2, frame px
    landmarks: np.ndarray  # (5, 2) float32
    det_score: float
    quality: Quality
    aligned: np.ndarray  # (112, 112, 3) uint8 RGB
    embedding: np.ndarray | None  # (dim,) float32 unit norm; None when rejected

    def __repr__(self) -> str:  # never print pixels or embeddings
        return (f"Face(box={np.round(self.box, 1).tolist()}, det_score={self.det_score:.3f}, "
                f"quality={self.quality.reason or 'PASS'}, embedded={self.embedding is not None})")


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Accept grey, RGB or RGBA uint8; return contiguous RGB uint8."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = img[:, :, :3]
    elif not (img.ndim == 3 and img.shape[2] == 3):
        raise ValueError(f"expected HxW, HxWx3 or HxWx4, got shape {img.shape}")
    if min(img.shape[:2]) < 1:
        raise ValueError("empty image")
    return np.ascontiguousarray(img)


class FacePipeline:
    def __init__(self, runner: ModelRunner, config: FaceConfig | None = None) -> None:
        self.config = config or FaceConfig()
        self.detector = FaceDetector(runner, self.config.detector)
        self.embedder = Embedder(runner, self.config.flip_average, self.config.embed_batch, self.config.embedder)

    async def analyse(self, images: list[np.ndarray]) -> list[list[Face]]:
        faces = await self.aligned_faces(images)
        todo = [f for row in faces for f in row if f.quality.passed]
        if todo:
            emb = await self.embedder.embed([f.aligned for f in todo])
            for f, e in zip(todo, emb):
                f.embedding = e
        return faces

    async def aligned_faces(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Every face detected, aligned and assessed by the quality gate, none embedded (embedding None):
        what analyse embeds, for a caller that embeds the same crops with several embedders (lfr eval)."""
        rgb = [to_rgb(im) for im in images]
        detections = await self.detector.detect(rgb)
        faces: list[list[Face]] = []
        for img, dets in zip(rgb, detections):
            row = []
            for d in dets:
                crop = align(img, d.landmarks)
                q = assess(d.landmarks, crop, d.score, self.config.quality, d.pose)
                row.append(Face(box=d.box, landmarks=d.landmarks, det_score=d.score, quality=q, aligned=crop,
                                embedding=None))
            faces.append(row)
        return faces
