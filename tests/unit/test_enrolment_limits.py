"""Enrolment image limits (issue 8): count, bytes and dimensions refused with INVALID_ARGUMENT and counted."""

from __future__ import annotations

import asyncio
import struct
import zlib

import cv2
import grpc
import numpy as np
import pytest

from lfr.v1 import common_pb2, watchlist_pb2
from services.watchlist import limits
from services.watchlist.config import WatchlistOptions, WatchlistSettings
from services.watchlist.service import Refusal, WatchlistCore


def _png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp"])
def test_header_dimensions_match_the_decoder(ext: str) -> None:
    img = np.zeros((37, 81, 3), np.uint8)
    ok, buf = cv2.imencode(ext, img)
    assert ok
    assert limits.image_size(buf.tobytes()) == (81, 37)


def test_unknown_or_truncated_headers_are_left_to_the_decoder() -> None:
    assert limits.image_size(b"") is None
    assert limits.image_size(b"\xff\xd8\xff") is None
    assert limits.image_size(b"not an image at all") is None
    assert limits.dimension_problem(b"garbage", 100, 10_000) is None


def _core(reasons: list[str], **opts: int) -> WatchlistCore:
    settings = WatchlistSettings(watchlist=WatchlistOptions(**opts))
    return WatchlistCore(settings, store=None, pipeline=None, audit=None, on_limit=reasons.append)  # type: ignore[arg-type]


def _enrol(core: WatchlistCore, *images: bytes) -> Refusal:
    req = watchlist_pb2.EnrolSubjectRequest(
        watchlist_id="wl", subject_id="s1", category=common_pb2.SUBJECT_CATEGORY_WANTED,
        images=[watchlist_pb2.EnrolImage(image=im, source_ref=f"r{i}") for i, im in enumerate(images)])
    with pytest.raises(Refusal) as e:
        asyncio.run(core.enrol(req, "manager", None))
    return e.value


def test_oversized_dimensions_are_refused_and_counted() -> None:
    reasons: list[str] = []
    core = _core(reasons, max_image_side=4096, max_image_pixels=4_000_000)
    bomb = _png_header(60_000, 60_000)  # a few dozen bytes that would decode to ~10 GB
    r = _enrol(core, bomb)
    assert r.code == grpc.StatusCode.INVALID_ARGUMENT and "60000x60000 px" in r.message and "4096" in r.message
    r = _enrol(core, _png_header(3000, 3000))  # each side fits, the area does not
    assert r.code == grpc.StatusCode.INVALID_ARGUMENT and "4000000 px" in r.message
    assert reasons == [limits.TOO_LARGE_DIMENSIONS, limits.TOO_LARGE_DIMENSIONS]


def test_too_many_and_too_large_images_are_refused_and_counted() -> None:
    reasons: list[str] = []
    core = _core(reasons, max_images_per_request=2, max_image_bytes=2048)
    r = _enrol(core, b"a", b"b", b"c")
    assert r.code == grpc.StatusCode.INVALID_ARGUMENT and "at most 2" in r.message
    r = _enrol(core, b"x" * 4096)
    assert r.code == grpc.StatusCode.INVALID_ARGUMENT and "2048 bytes" in r.message
    assert reasons == [limits.TOO_MANY, limits.TOO_LARGE_BYTES]
