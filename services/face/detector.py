"""FaceBoxes finds candidate boxes on the whole frame; O-Net refines each box
and gives a face score and 5 landmarks; NMS removes duplicates.

Resize policy (FaceBoxes): each frame is resized, aspect kept, so that its
longer side is ``DetectorConfig.max_side`` (up or down), then zero-padded at
the bottom/right to a multiple of 32. Padding does not change FaceBoxes'
outputs; frames with the same padded size go to FaceBoxes as one batch.

O-Net follows the original Caffe MTCNN conventions: the 48x48 crop (from a
square box, RGB, (x-127.5)/128) is TRANSPOSED (H and W swapped) before the
network; its outputs are then in the usual x/y order: box regression
(dx1, dy1, dx2, dy2) in units of the crop side, landmarks 5 x then 5 y,
relative to the crop. All candidates of all frames go to O-Net in one batch.

The 5 alignment points come, by default, from MediaPipe Face Mesh
(``DetectorConfig.landmarks``): O-Net's points jitter by ~6 % of the eye
distance and cost a quarter of the true matches at zero false alerts on
lfw_dev. Face Mesh sees a 192x192 RGB crop, scaled to [0, 1], of the kept
face's box enlarged 1.5x (then re-cropped around its own mesh); of its 468
points we use the centres of the two eye contours, the nose tip (1) and the
mouth corners (61, 291). All kept faces of all frames go in one batch per pass.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from services.common.runner import ModelRunner
from services.face.config import DetectorConfig

FACEBOXES = "faceboxes"
ONET = "onet"
ONET_SIZE = 48
FACEMESH = "facemesh"
MESH_SIZE = 192
# MediaPipe Face Mesh indices: the eye contours (image-left eye = the subject's right), nose tip, mouth corners
MESH_EYE_IMAGE_LEFT = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
MESH_EYE_IMAGE_RIGHT = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
MESH_NOSE_TIP = 1
MESH_MOUTH_IMAGE_LEFT, MESH_MOUTH_IMAGE_RIGHT = 61, 291


@dataclasses.dataclass
class Detection:
    box: np.ndarray  # (4,) x1, y1, x2, y2 in frame pixels
    landmarks: np.ndarray  # (5, 2) x, y: left eye, right eye, nose, left mouth, right mouth
    score: float  # O-Net face probability
    pose: tuple[float, float] | None = None  # (yaw, pitch) degrees from the 3-D Face Mesh; None with O-Net points


def letterbox(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Resize so the longer side is max_side and pad to a multiple of 32; returns (canvas, scale)."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (nw, nh), interpolation=interp) if scale != 1 else image
    ph, pw = -(-nh // 32) * 32, -(-nw // 32) * 32
    canvas = np.zeros((ph, pw, 3), np.uint8)
    canvas[:nh, :nw] = resized
    return canvas, scale


def square(boxes: np.ndarray) -> np.ndarray:
    """Square boxes around the same centres, side = the longer side (MTCNN 'rerec')."""
    b = boxes.astype(np.float64).copy()
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = np.maximum(w, h)
    cx, cy = b[:, 0] + w / 2, b[:, 1] + h / 2
    return np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], axis=1)


def crop_resize(image: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """The box's pixels (zero outside the frame), resized to size x size with
    INTER_AREA (anti-aliased, as MTCNN's reference code does: a bilinear warp of
    a large face down to 48 px aliases and shifts the landmarks)."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    side = max(x2 - x1, 1)
    y2 = y1 + side
    x2 = x1 + side
    h, w = image.shape[:2]
    crop = np.zeros((side, side, 3), np.uint8)
    sx1, sy1, sx2, sy2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    if sx2 > sx1 and sy2 > sy1:
        crop[sy1 - y1:sy2 - y1, sx1 - x1:sx2 - x1] = image[sy1:sy2, sx1:sx2]
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)


def mesh_crop(image: np.ndarray, centre: np.ndarray, side: float) -> tuple[np.ndarray, np.ndarray]:
    """The square of this side around centre, resized to MESH_SIZE (zero outside the frame); returns the
    crop and the 2x3 matrix taking crop pixels back to frame pixels."""
    k = MESH_SIZE / max(side, 1.0)
    m = np.array([[k, 0.0, MESH_SIZE / 2 - centre[0] * k], [0.0, k, MESH_SIZE / 2 - centre[1] * k]])
    interp = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(image, m, (MESH_SIZE, MESH_SIZE), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return crop, cv2.invertAffineTransform(m)


def five_points(mesh: np.ndarray) -> np.ndarray:
    """(5, 2) alignment points from a (468, 2) mesh, in the ArcFace template's order."""
    return np.stack([mesh[list(MESH_EYE_IMAGE_LEFT)].mean(0), mesh[list(MESH_EYE_IMAGE_RIGHT)].mean(0),
                     mesh[MESH_NOSE_TIP], mesh[MESH_MOUTH_IMAGE_LEFT], mesh[MESH_MOUTH_IMAGE_RIGHT]])


def mesh_pose(mesh3d: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees from a (468, 3) mesh (x, y, z in one scale): yaw is the angle of the line
    between the eye centres out of the image plane; pitch the same for the line from the eye midpoint to
    the mouth midpoint (Face Mesh's depth is relative to a frontal face: the median on lfw_dev is 0.2 deg
    yaw, 0.1 deg pitch; 98 % of its faces lie within +-36 deg yaw and -28..+22 deg pitch)."""
    le, re = mesh3d[list(MESH_EYE_IMAGE_LEFT)].mean(0), mesh3d[list(MESH_EYE_IMAGE_RIGHT)].mean(0)
    eyes = re - le
    yaw = math.degrees(math.atan2(float(eyes[2]), float(np.hypot(eyes[0], eyes[1]))))
    down = (mesh3d[MESH_MOUTH_IMAGE_LEFT] + mesh3d[MESH_MOUTH_IMAGE_RIGHT]) / 2 - (le + re) / 2
    pitch = math.degrees(math.atan2(float(down[2]), float(np.hypot(down[0], down[1]))))
    return yaw, pitch


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    order = np.argsort(-scores)
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        ov = inter / np.maximum(area[i] + area[rest] - inter, 1e-9)
        order = rest[ov <= iou]
    return keep


class FaceDetector:
    def __init__(self, runner: ModelRunner, config: DetectorConfig | None = None) -> None:
        self.runner = runner
        self.config = config or DetectorConfig()

    async def candidates(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """FaceBoxes boxes (k x 4, x1 y1 x2 y2 in frame px) per image, batched by canvas size."""
        cfg = self.config
        prepared = [letterbox(im, cfg.max_side) for im in images]
        out: list[np.ndarray] = [np.zeros((0, 4))] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, (canvas, _) in enumerate(prepared):
            groups.setdefault(canvas.shape[:2], []).append(i)
        for (ch, cw), idx in groups.items():
            res = await self.runner.infer(FACEBOXES, {"input": np.stack([prepared[i][0] for i in idx])})
            for row, i in enumerate(idx):
                scores, boxes = res["scores"][row], res["boxes"][row]
                keep = np.flatnonzero(scores >= cfg.candidate_score)[: cfg.max_candidates]
                b = boxes[keep].astype(np.float64)  # ymin xmin ymax xmax, normalised to the canvas
                scale = prepared[i][1]
                px = np.stack([b[:, 1] * cw, b[:, 0] * ch, b[:, 3] * cw, b[:, 2] * ch], axis=1) / scale
                out[i] = px
        return out

    async def onet(self, crops: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """O-Net on (image, square box) pairs in one batch: (scores, refined boxes, landmarks 5x2)."""
        if not crops:
            return np.zeros(0), np.zeros((0, 4)), np.zeros((0, 5, 2))
        batch = np.stack([crop_resize(im, box, ONET_SIZE) for im, box in crops]).astype(np.float32)
        batch = (batch - 127.5) / 128.0
        batch = np.ascontiguousarray(batch.transpose(0, 2, 1, 3))  # Caffe MTCNN: transposed crop
        res = await self.runner.infer(ONET, {"input": batch})
        boxes = np.stack([b for _, b in crops]).round()
        side = np.maximum(boxes[:, 2] - boxes[:, 0], 1)[:, None]
        refined = boxes + res["box"].astype(np.float64) * side
        lm = res["landmarks"].astype(np.float64)
        pts = np.stack([boxes[:, [0]] + lm[:, :5] * side, boxes[:, [1]] + lm[:, 5:] * side], axis=2)
        return res["prob"][:, 1].astype(np.float64), refined, pts

    async def facemesh(self, faces: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Face Mesh on (image, box) pairs, all in one batch per pass: (n, 468, 3) points, x and y in frame
        pixels, z (depth, smaller is nearer) in the same scale."""
        cfg = self.config
        if not faces:
            return np.zeros((0, 468, 3))
        boxes = np.stack([b for _, b in faces]).astype(np.float64)
        centres = (boxes[:, :2] + boxes[:, 2:]) / 2
        sides = np.max(boxes[:, 2:] - boxes[:, :2], axis=1) * cfg.mesh_crop_scale
        pts = np.zeros((len(faces), 468, 3))
        for _ in range(cfg.mesh_passes):
            crops = [mesh_crop(im, c, s) for (im, _), c, s in zip(faces, centres, sides)]
            batch = np.stack([c for c, _ in crops]).astype(np.float32) / 255.0
            res = await self.runner.infer(FACEMESH, {"input": batch})
            raw = res["mesh"].reshape(len(faces), 468, 3).astype(np.float64)
            # crop -> frame: x, y through the inverse crop transform, z by its scale
            pts = np.stack([np.concatenate([p[:, :2] @ inv[:, :2].T + inv[:, 2], p[:, 2:] * inv[0, 0]], axis=1)
                            for p, (_, inv) in zip(raw, crops)])
            lo, hi = pts[:, :, :2].min(axis=1), pts[:, :, :2].max(axis=1)  # the next pass re-crops around this mesh
            centres, sides = (lo + hi) / 2, np.max(hi - lo, axis=1) * cfg.mesh_crop_scale
        return pts

    async def detect(self, images: list[np.ndarray]) -> list[list[Detection]]:
        cfg = self.config
        cands = await self.candidates(images)
        owner = np.concatenate([np.full(len(c), i) for i, c in enumerate(cands)]).astype(int) \
            if cands else np.zeros(0, int)
        boxes = square(np.concatenate(cands)) if len(owner) else np.zeros((0, 4))
        scores, pts = np.zeros(len(owner)), np.zeros((len(owner), 5, 2))
        for k in range(cfg.onet_passes):
            scores, refined, p = await self.onet([(images[o], b) for o, b in zip(owner, boxes)])
            if k == 0:
                pts = p  # landmarks from the crop around the FaceBoxes box: see DetectorConfig.onet_passes
            boxes = square(refined) if len(owner) else boxes
        kept: list[tuple[int, int]] = []  # (image, candidate)
        for i in range(len(images)):
            sel = np.flatnonzero((owner == i) & (scores >= cfg.onet_score))
            if not sel.size:
                continue
            b = boxes[sel]
            ok = (b[:, 2] - b[:, 0]) >= cfg.min_face_px
            sel, b = sel[ok], b[ok]
            kept.extend((i, int(sel[k])) for k in nms(b, scores[sel], cfg.nms_iou))
        poses: dict[int, tuple[float, float]] = {}
        if cfg.landmarks == "facemesh" and kept:
            meshes = await self.facemesh([(images[i], boxes[j]) for i, j in kept])
            for (_, j), mesh in zip(kept, meshes):
                pts[j] = five_points(mesh[:, :2])
                poses[j] = mesh_pose(mesh)
        result: list[list[Detection]] = [[] for _ in images]
        for i, j in kept:
            result[i].append(Detection(box=boxes[j].astype(np.float32), landmarks=pts[j].astype(np.float32),
                                       score=float(scores[j]), pose=poses.get(j)))
        return result
