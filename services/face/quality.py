"""Face quality gate, run on the landmarks and the aligned crop before embedding."""

from __future__ import annotations

import dataclasses
import enum
import math

import cv2
import numpy as np

from services.face.align import ARCFACE_TEMPLATE
from services.face.config import QualityConfig

# template ratio (nose below the eye line) / (mouth below the eye line), ~0.49
_T = ARCFACE_TEMPLATE
_TEMPLATE_PITCH_RATIO = float((_T[2, 1] - _T[:2, 1].mean()) / (_T[3:, 1].mean() - _T[:2, 1].mean()))


class RejectReason(str, enum.Enum):
    TOO_SMALL = "TOO_SMALL"
    BLURRED = "BLURRED"
    NOT_FRONTAL = "NOT_FRONTAL"
    LOW_SCORE = "LOW_SCORE"


@dataclasses.dataclass(frozen=True)
class Quality:
    eye_distance_px: float
    sharpness: float  # variance of the Laplacian of the aligned grey crop
    yaw_deg: float
    pitch_deg: float
    det_score: float
    reason: RejectReason | None  # None: passed

    @property
    def passed(self) -> bool:
        return self.reason is None

    @property
    def score(self) -> float:
        """A rough 0..1 summary for ranking faces of one track (1 = large, sharp, frontal)."""
        size = min(self.eye_distance_px / 40.0, 1.0)
        sharp = min(self.sharpness / 100.0, 1.0)
        pose = max(0.0, 1.0 - max(abs(self.yaw_deg), abs(self.pitch_deg)) / 90.0)
        return float(size * sharp * pose * self.det_score)


def head_pose(landmarks: np.ndarray) -> tuple[float, float]:
    """(yaw, pitch) in degrees, rough, from 5 landmarks: frame rotated so that the
    eyes are level; yaw from the nose's offset from the eye midpoint along the eye
    line relative to half the eye distance; pitch from the nose's height between
    the eye line and the mouth line against the template's ratio."""
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    le, re, nose = p[0], p[1], p[2]
    mouth = (p[3] + p[4]) / 2
    axis = re - le
    d = float(np.hypot(*axis))
    if d < 1e-6:
        return 90.0, 90.0
    ex = axis / d
    ey = np.array([-ex[1], ex[0]])
    mid = (le + re) / 2
    yaw = math.degrees(math.asin(float(np.clip((nose - mid) @ ex / (d / 2), -1, 1))))
    nose_h, mouth_h = float((nose - mid) @ ey), float((mouth - mid) @ ey)
    if mouth_h <= 1e-6:
        return yaw, 90.0
    pitch = math.degrees(math.asin(float(np.clip((nose_h / mouth_h - _TEMPLATE_PITCH_RATIO) / 0.5, -1, 1))))
    return yaw, pitch


def sharpness(aligned_rgb: np.ndarray) -> float:
    grey = cv2.cvtColor(aligned_rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def assess(landmarks: np.ndarray, aligned_rgb: np.ndarray, det_score: float, cfg: QualityConfig,
           pose: tuple[float, float] | None = None) -> Quality:
    """Measure and gate one face; the first failed check (in the order size, score, pose, blur) is the reason.
    pose: (yaw, pitch) from a 3-D landmark model when there is one, else estimated from the 5 points."""
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    eye = float(np.hypot(*(p[1] - p[0])))
    yaw, pitch = pose if pose is not None else head_pose(p)
    sharp = sharpness(aligned_rgb)
    reason: RejectReason | None = None
    if eye < cfg.min_eye_distance_px:
        reason = RejectReason.TOO_SMALL
    elif det_score < cfg.min_det_score:
        reason = RejectReason.LOW_SCORE
    elif abs(yaw) > cfg.max_yaw_deg or abs(pitch) > cfg.max_pitch_deg:
        reason = RejectReason.NOT_FRONTAL
    elif sharp < cfg.min_sharpness:
        reason = RejectReason.BLURRED
    return Quality(eye_distance_px=eye, sharpness=sharp, yaw_deg=yaw, pitch_deg=pitch, det_score=det_score,
                   reason=reason)
