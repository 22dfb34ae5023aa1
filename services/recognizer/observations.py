"""From a face of the pipeline to a sealed FaceObservation (and its data key).

The officer adjudicating a match sees the crop: the face BOX with a margin
(hair, ears, some context) from the original frame, longest side at most
``crop_max_px``, rather than the 112 px aligned crop (rotated, tight, made for
the embedder). The crop and the embedding are serialized as a FaceSecret and
sealed with a fresh key (associated data: the observation id); only the key id
travels with the observation, the key goes to Redis (docs/design.md).
"""

from __future__ import annotations

import dataclasses
import time
import uuid

import cv2
import numpy as np
from lfr.v1 import common_pb2, faces_pb2, frames_pb2

from services.common.sealing import redis_key, seal
from services.face.pipeline import Face
from services.recognizer.runners import MODEL_VERSION_DETECTOR


@dataclasses.dataclass(frozen=True)
class SealedObservation:
    observation: faces_pb2.FaceObservation
    redis_key: str
    key: bytes  # the data key: Redis only, never logged

    def __repr__(self) -> str:
        return f"SealedObservation(id={self.observation.observation_id})"


def box_crop(image_bgr: np.ndarray, box: np.ndarray, margin: float, max_px: int,
             quality: int) -> tuple[bytes, int, int]:
    """JPEG of the box plus ``margin`` x its size on each side, clipped to the frame, longest side <= max_px."""
    h, w = image_bgr.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in box)
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    ix1, iy1 = max(int(np.floor(x1 - mx)), 0), max(int(np.floor(y1 - my)), 0)
    ix2, iy2 = min(int(np.ceil(x2 + mx)), w), min(int(np.ceil(y2 + my)), h)
    if ix2 <= ix1 or iy2 <= iy1:
        raise ValueError("face box lies outside the frame")
    crop = image_bgr[iy1:iy2, ix1:ix2]
    ch, cw = crop.shape[:2]
    scale = min(1.0, max_px / max(ch, cw))
    if scale < 1.0:
        crop = cv2.resize(crop, (max(1, round(cw * scale)), max(1, round(ch * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", crop, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError("crop JPEG encoding failed")
    return buf.tobytes(), int(crop.shape[1]), int(crop.shape[0])


def frame_ref(frame: frames_pb2.Frame) -> common_pb2.FrameRef:
    return common_pb2.FrameRef(camera_id=frame.camera_id, zone=frame.zone, deployment_id=frame.deployment_id,
                               seq=frame.seq, capture_unix_ns=frame.capture_unix_ns)


def build_observation(
    frame: frames_pb2.Frame,
    image_bgr: np.ndarray,
    face: Face,
    index: int,
    faces_in_frame: int,
    *,
    margin: float,
    max_px: int,
    quality: int,
    detect_unix_ns: int,
    embed_unix_ns: int,
    embedder: str,
) -> SealedObservation:
    if face.embedding is None:
        raise ValueError("face has no embedding (rejected by the quality gate)")
    crop, cw, chh = box_crop(image_bgr, face.box, margin, max_px, quality)
    secret = faces_pb2.FaceSecret(embedding=np.asarray(face.embedding, np.float32).tolist(), crop_jpeg=crop,
                                  crop_width=cw, crop_height=chh)
    observation_id = uuid.uuid4().hex
    sealed = seal(secret.SerializeToString(), observation_id)
    x1, y1, x2, y2 = (float(v) for v in face.box)
    obs = faces_pb2.FaceObservation(
        observation_id=observation_id,
        frame=frame_ref(frame),
        face_index=index,
        faces_in_frame=faces_in_frame,
        box=common_pb2.BoundingBox(x1=x1, y1=y1, x2=x2, y2=y2),
        landmarks=common_pb2.Landmarks(points=[common_pb2.Point(x=float(x), y=float(y))
                                               for x, y in np.asarray(face.landmarks).reshape(5, 2)]),
        det_score=float(face.det_score),
        quality=face.quality.score,
        model=common_pb2.ModelVersion(detector=MODEL_VERSION_DETECTOR, embedder=embedder),
        detect_unix_ns=detect_unix_ns,
        embed_unix_ns=embed_unix_ns or time.time_ns(),
        secret=sealed.sealed,
    )
    return SealedObservation(observation=obs, redis_key=redis_key(sealed.sealed.key_id), key=sealed.key)
