"""Enrolment checks: decode each image, run detection, the quality gate and the
embedder (services.face.FacePipeline on Triton), and decide per image.

An image is accepted only when it holds exactly one face and that face passes
the quality gate; the rejection says which rule failed. The whole request is
refused if any image is (nothing is stored): an operator fixes the image and
enrols again, rather than ending up with half a subject."""

from __future__ import annotations

import base64
import dataclasses
import hashlib

import numpy as np
from lfr.v1 import watchlist_pb2

from services.face.pipeline import Face, FacePipeline
from services.watchlist import limits

NO_FACE = watchlist_pb2.ENROL_REJECTION_NO_FACE
MULTIPLE_FACES = watchlist_pb2.ENROL_REJECTION_MULTIPLE_FACES
LOW_QUALITY = watchlist_pb2.ENROL_REJECTION_LOW_QUALITY
DECODE_ERROR = watchlist_pb2.ENROL_REJECTION_DECODE_ERROR
MISSING_SOURCE = watchlist_pb2.ENROL_REJECTION_MISSING_SOURCE
ACCEPTED = watchlist_pb2.ENROL_REJECTION_UNSPECIFIED


@dataclasses.dataclass
class Checked:
    """One image's outcome; ``face`` (with its embedding) only when accepted."""

    index: int  # 1-based, as said to people ("image 1 holds 2 faces")
    sha256: bytes
    source_ref: str
    rejection: int
    detail: str
    face_count: int = 0
    face: Face | None = None

    @property
    def accepted(self) -> bool:
        return self.rejection == ACCEPTED

    def result(self, image_id: str = "") -> watchlist_pb2.EnrolImageResult:
        out = watchlist_pb2.EnrolImageResult(index=self.index - 1, image_id=image_id, accepted=self.accepted,
                                             rejection=self.rejection, face_count=self.face_count,
                                             detail=self.detail)
        if self.face is not None:
            q = self.face.quality
            out.quality = q.score
            out.quality_detail.CopyFrom(watchlist_pb2.QualityDetail(
                det_score=q.det_score, face_size_px=q.eye_distance_px, sharpness=q.sharpness, yaw_deg=q.yaw_deg))
        return out


def decode_image(data: bytes, header: limits.Header | None = None) -> np.ndarray:
    """An accepted JPEG/PNG/WebP (services.watchlist.limits) -> RGB uint8 of exactly the size its header
    declares; limits.ImageRefused (FORMAT, CORRUPT) otherwise. ``header`` is read here when not given.

    cv2.IMREAD_COLOR bounds the output at width x height x 3 bytes whatever the file holds (16-bit, alpha,
    grey: all become 8-bit BGR, converted to RGB in place), and IMREAD_IGNORE_ORIENTATION keeps the pixels
    as stored (no EXIF rotation), so the decoded shape must equal the header's; one that does not (a header
    the parser and the decoder read differently) is refused."""
    import cv2

    hd = header if header is not None else limits.read_header(data)
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if img is None or img.size == 0:
        raise limits.ImageRefused(limits.CORRUPT, f"is truncated or corrupt (its {hd.format} data does not decode)")
    if img.shape != (hd.height, hd.width, limits.DECODED_CHANNELS) or img.dtype != np.uint8:
        raise limits.ImageRefused(limits.CORRUPT,
                                  f"is truncated or corrupt (its {hd.format} header says {hd.width}x{hd.height} "
                                  f"px, its data decodes to {img.shape[1]}x{img.shape[0]} px)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)


def aligned_jpeg_b64(face: Face, quality: int) -> str:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(face.aligned, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("cannot encode the aligned face as JPEG")
    return base64.b64encode(buf.tobytes()).decode("ascii")


def decode_aligned_jpeg_b64(b64: str) -> np.ndarray:
    """The aligned face (RGB uint8) of a stored ``aligned_jpeg_b64``; ValueError when it does not decode."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(base64.b64decode(b64), np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("the stored aligned face does not decode as JPEG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _quality_detail(face: Face) -> str:
    q = face.quality
    return (f"face below the quality gate ({q.reason.value if q.reason else '?'}: eye distance "
            f"{q.eye_distance_px:.0f} px, sharpness {q.sharpness:.0f}, yaw {q.yaw_deg:.0f} deg, "
            f"pitch {q.pitch_deg:.0f} deg, detector score {q.det_score:.2f})")


async def check_images(pipeline: FacePipeline,
                       images: list[tuple[bytes, str, limits.Header]]) -> list[Checked]:
    """(encoded image, source_ref, its checked header) triples -> one Checked each, in order. The images
    are decoded and analysed one at a time, each bitmap released before the next is decoded, so that
    the request's decoded pixels are never all held at once."""
    checked: list[Checked] = []
    for i, (data, source_ref, header) in enumerate(images, start=1):
        c = Checked(index=i, sha256=hashlib.sha256(data).digest(), source_ref=source_ref, rejection=ACCEPTED,
                    detail="")
        checked.append(c)
        if not source_ref.strip():
            c.rejection, c.detail = MISSING_SOURCE, f"image {i} has no source reference (source_ref is required)"
            continue
        try:
            rgb = decode_image(data, header)
        except limits.ImageRefused as e:
            c.rejection, c.detail = DECODE_ERROR, f"image {i} {e}"
            continue
        faces = (await pipeline.analyse([rgb]))[0]
        del rgb  # the faces keep their 112x112 crops, not the bitmap
        c.face_count = len(faces)
        if not faces:
            c.rejection, c.detail = NO_FACE, f"image {i} holds no face"
        elif len(faces) > 1:
            c.rejection, c.detail = MULTIPLE_FACES, (f"image {i} holds {len(faces)} faces "
                                                     "(enrol images of exactly one face)")
        elif faces[0].embedding is None:
            c.face = faces[0]
            c.rejection, c.detail = LOW_QUALITY, f"image {i}: {_quality_detail(faces[0])}"
        else:
            c.face = faces[0]
            c.detail = "accepted"
    return checked
