"""5-point similarity alignment to the standard ArcFace 112x112 template."""

from __future__ import annotations

import cv2
import numpy as np

# left eye, right eye, nose tip, left mouth corner, right mouth corner (x, y), for 112x112
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64)
ALIGNED_SIZE = 112


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation)
    mapping src points onto dst points (Umeyama 1991). Returns a 2x3 matrix."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rot = u @ sign @ vt
    var_s = (s ** 2).sum() / len(src)
    scale = (sig * np.diag(sign)).sum() / var_s if var_s > 0 else 1.0
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def alignment_matrix(landmarks: np.ndarray) -> np.ndarray:
    """2x3 matrix taking the 5 landmarks (5x2, x/y in the frame) to the template."""
    return umeyama(np.asarray(landmarks, np.float64).reshape(5, 2), ARCFACE_TEMPLATE)


def align(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112x112 aligned crop (same channels and dtype as image)."""
    m = alignment_matrix(landmarks)
    return cv2.warpAffine(image, m, (ALIGNED_SIZE, ALIGNED_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def transform_points(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    pts = np.asarray(pts, np.float64).reshape(-1, 2)
    return pts @ m[:, :2].T + m[:, 2]
