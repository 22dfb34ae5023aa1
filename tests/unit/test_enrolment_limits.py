"""Enrolment image limits: count, bytes, format, dimensions and decoded bytes refused with
INVALID_ARGUMENT before any pixel is decoded, and counted; every file here is a real one (cv2.imencode) or
a header written byte by byte as an attacker would."""

from __future__ import annotations

import asyncio
from typing import Any

import cv2
import grpc
import numpy as np
import pytest

from image_bombs import IMG, encode, jpeg_bomb, png_bomb, png_header, riff, tiff_bomb, webp_bomb
from lfr.v1 import common_pb2, watchlist_pb2
from services.watchlist import enrol, limits
from services.watchlist.config import WatchlistOptions, WatchlistSettings
from services.watchlist.service import Refusal, WatchlistCore


# -- formats ----------------------------------------------------------------------------------------------


def _webp_vp8x() -> bytes:
    data = encode(".webp", np.dstack([IMG, IMG[:, :, 0]]), cv2.IMWRITE_WEBP_QUALITY, 80)  # lossy + alpha
    assert data[12:16] == b"VP8X"
    return data


ACCEPTED: dict[str, Any] = {
    "jpeg baseline": lambda: encode(".jpg"),
    "jpeg progressive": lambda: encode(".jpg", IMG, cv2.IMWRITE_JPEG_PROGRESSIVE, 1),
    "jpeg grey": lambda: encode(".jpg", IMG[:, :, 0]),
    "png rgb": lambda: encode(".png"),
    "png grey 16-bit": lambda: encode(".png", IMG[:, :, 0].astype(np.uint16) * 257),
    "png rgba": lambda: encode(".png", np.dstack([IMG, IMG[:, :, 0]])),
    "webp VP8 (lossy)": lambda: encode(".webp", IMG, cv2.IMWRITE_WEBP_QUALITY, 80),
    "webp VP8L (lossless)": lambda: encode(".webp"),
    "webp VP8X (extended)": _webp_vp8x,
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_formats_header_matches_the_decoder(name: str) -> None:
    data = ACCEPTED[name]()
    hd = limits.read_header(data)
    assert (hd.width, hd.height) == (81, 37) and hd.format in limits.ACCEPTED_FORMATS
    rgb = enrol.decode_image(data, hd)
    assert rgb.shape == (37, 81, 3) and rgb.dtype == np.uint8 and hd.decoded_bytes == rgb.nbytes


REFUSED: dict[str, tuple[str, Any]] = {
    "tiff": ("TIFF", lambda: encode(".tiff")),
    "ppm": ("PNM", lambda: encode(".ppm")),
    "pgm": ("PNM", lambda: encode(".pgm", IMG[:, :, 0])),
    "pam": ("PNM", lambda: encode(".pam")),
    "pfm": ("PFM", lambda: encode(".pfm", IMG.astype(np.float32))),
    "bmp": ("BMP", lambda: encode(".bmp")),
    "gif": ("GIF", lambda: encode(".gif")),
    "jpeg 2000": ("JPEG 2000", lambda: encode(".jp2")),
    "radiance hdr": ("Radiance HDR", lambda: encode(".hdr", IMG.astype(np.float32))),
    "sun raster": ("Sun raster", lambda: encode(".sr")),
    "avif": ("HEIF/AVIF", lambda: encode(".avif")),
    "openexr": ("OpenEXR", lambda: b"\x76\x2f\x31\x01\x02\x00\x00\x00channels\x00" + bytes(64)),
    "jpeg xl": ("JPEG XL", lambda: b"\xff\x0a" + bytes(64)),
    "svg": ("SVG", lambda: b'  <?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="9e9"/>'),
    "unknown": ("not an image format this service knows", lambda: b"MZ\x90\x00 an executable" + bytes(64)),
    "empty": ("empty", lambda: b""),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_every_other_format_is_refused_by_name_before_decoding(name: str) -> None:
    fmt, make = REFUSED[name]
    reasons: list[str] = []
    r = _enrol(_core(reasons), ACCEPTED["png rgb"](), make())
    assert r.code == grpc.StatusCode.INVALID_ARGUMENT
    assert r.message == f"image 2 is {fmt}: send JPEG, PNG or WebP"
    assert reasons == [limits.FORMAT]


def test_a_9000x9000_tiff_bomb_is_refused_as_tiff() -> None:
    """The issue's case: a small TIFF (deflate) that decodes to 243 MB passed the old header check."""
    bomb = tiff_bomb(9000, 9000)
    assert len(bomb) < WatchlistOptions().max_image_bytes
    reasons: list[str] = []
    r = _enrol(_core(reasons), bomb)
    assert r.code == grpc.StatusCode.INVALID_ARGUMENT and r.message == "image 1 is TIFF: send JPEG, PNG or WebP"
    assert reasons == [limits.FORMAT]


# -- decompression bombs of the accepted formats ----------------------------------------------------------

BOMBS: dict[str, tuple[int, int, Any]] = {
    "png": (10_000, 10_000, png_bomb),  # 300 MB decoded; a real, complete file
    "jpeg baseline": (30_000, 30_000, jpeg_bomb),
    "jpeg progressive": (65_535, 65_535, lambda w, h: jpeg_bomb(w, h).replace(b"\xff\xc0", b"\xff\xc2", 1)),
    "webp VP8X": (1 << 24, 1 << 24, lambda w, h: webp_bomb("VP8X", w, h)),
    "webp VP8L": (16_384, 16_384, lambda w, h: webp_bomb("VP8L", w, h)),
    "webp VP8": (16_383, 16_383, lambda w, h: webp_bomb("VP8 ", w, h)),
}


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_decompression_bombs_of_each_accepted_format_are_refused_from_the_header(name: str) -> None:
    w, h, make = BOMBS[name]
    bomb = make(w, h)
    assert len(bomb) < 4 * 1024 * 1024
    hd = limits.read_header(bomb)
    assert (hd.width, hd.height) == (w, h)
    reasons: list[str] = []
    r = _enrol(_core(reasons), bomb)
    assert r.code == grpc.StatusCode.INVALID_ARGUMENT
    assert r.message == f"image 1 is {w}x{h} px; at most 8192 px a side and 40000000 px in all"
    assert reasons == [limits.TOO_LARGE_DIMENSIONS]


def test_images_each_within_the_caps_are_refused_when_their_sum_is_over_the_request_cap() -> None:
    """Three real PNG bombs of 3000x2000 (each 18 MB decoded, within every per-image limit; 54 MB together)."""
    bomb = png_bomb(3000, 2000)
    reasons: list[str] = []
    core = _core(reasons, max_decoded_bytes_per_request=32 * 1024 * 1024)
    r = _enrol(core, bomb, bomb, bomb)
    assert r.code == grpc.StatusCode.INVALID_ARGUMENT
    assert r.message == ("images: the 3 images decode to 54000000 bytes in all (width x height x 3 each); at most "
                         "33554432 per request: send fewer or smaller images")
    assert reasons == [limits.DECODED_BYTES]
    assert [h.decoded_bytes for h in limits.check_request([bomb], core.options)] == [18_000_000]


def test_the_request_cap_is_a_bounded_setting() -> None:
    assert WatchlistOptions().max_decoded_bytes_per_request == 256 * 1024 * 1024
    with pytest.raises(ValueError):
        WatchlistOptions(max_decoded_bytes_per_request=0)
    with pytest.raises(ValueError):
        WatchlistOptions(max_decoded_bytes_per_request=1 << 40)


# -- truncated, corrupt and lying files -------------------------------------------------------------------

TRUNCATED: dict[str, Any] = {
    "jpeg SOI only": lambda: b"\xff\xd8\xff",
    "jpeg cut in the APP0 segment": lambda: encode(".jpg")[:12],
    "jpeg cut in the frame header": lambda: jpeg_bomb(64, 64)[:8],
    "jpeg scan before any frame": lambda: b"\xff\xd8\xff\xda\x00\x08" + bytes(6),
    "jpeg garbage after SOI": lambda: b"\xff\xd8\xff\xe0\x00\x04ab" + b"garbage" * 4,
    "jpeg height 0 (DNL)": lambda: jpeg_bomb(64, 0),
    "png magic only": lambda: b"\x89PNG\r\n\x1a\n",
    "png cut in IHDR": lambda: encode(".png")[:20],
    "png IHDR checksum": lambda: png_header(64, 64)[:-1] + b"\x00",
    "png 0 px wide": lambda: png_header(0, 64),
    "webp RIFF only": lambda: encode(".webp")[:16],
    "webp cut in VP8X": lambda: _webp_vp8x()[:26],
    "webp VP8 without start code": lambda: webp_bomb("VP8 ", 64, 64).replace(b"\x9d\x01\x2a", b"\x00\x00\x00"),
    "webp unknown first chunk": lambda: riff(b"ALPH", bytes(32)),
}


@pytest.mark.parametrize("name", sorted(TRUNCATED))
def test_a_header_that_cannot_be_read_is_refused_as_truncated_or_corrupt(name: str) -> None:
    reasons: list[str] = []
    r = _enrol(_core(reasons), ACCEPTED["jpeg baseline"](), TRUNCATED[name]())
    assert r.code == grpc.StatusCode.INVALID_ARGUMENT
    assert r.message.startswith("image 2 is truncated or corrupt ("), r.message
    assert reasons == [limits.CORRUPT]


def test_a_lying_header_is_refused_after_decoding() -> None:
    """The decoded shape must be the header's: a parser and a decoder that disagree never let through more
    pixels than were checked."""
    data = encode(".png")
    with pytest.raises(limits.ImageRefused) as e:
        enrol.decode_image(data, limits.Header(limits.PNG, 10, 10))
    assert e.value.reason == limits.CORRUPT
    assert str(e.value) == "is truncated or corrupt (its PNG header says 10x10 px, its data decodes to 81x37 px)"


class _OneAtATime:
    """A FacePipeline stand-in that records how many bitmaps each call holds (no faces found)."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[int, ...]]] = []

    async def analyse(self, images: list[np.ndarray]) -> list[list[Any]]:
        self.calls.append([im.shape for im in images])
        return [[] for _ in images]


def test_images_are_decoded_one_at_a_time_and_cut_pixel_data_is_refused() -> None:
    good = encode(".png")
    cut = png_bomb(200, 100)
    cut = cut[:-40]  # the IDAT stream and IEND cut off: the header is whole, the pixels are not
    pipeline = _OneAtATime()
    images = [(d, f"ref{i}", limits.read_header(d)) for i, d in enumerate([good, cut, good])]
    checked = asyncio.run(enrol.check_images(pipeline, images))  # type: ignore[arg-type]
    assert pipeline.calls == [[(37, 81, 3)], [(37, 81, 3)]]
    assert [c.rejection for c in checked] == [enrol.NO_FACE, enrol.DECODE_ERROR, enrol.NO_FACE]
    assert checked[1].detail == "image 2 is truncated or corrupt (its PNG data does not decode)"


# -- count and bytes ----------------------------------------------------------------------------


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
    bomb = png_header(60_000, 60_000)  # a few dozen bytes that would decode to ~10 GB
    r = _enrol(core, bomb)
    assert r.code == grpc.StatusCode.INVALID_ARGUMENT and "60000x60000 px" in r.message and "4096" in r.message
    r = _enrol(core, png_header(3000, 3000))  # each side fits, the area does not
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
