"""Enrolment image limits (issue 8): image count, encoded bytes and pixel dimensions.

Dimensions are read from the image header (JPEG SOFn, PNG IHDR, GIF, BMP, WebP) without decoding,
so a small file that would decode to a huge bitmap (a decompression bomb) is refused before any
pixel is allocated. An image whose header is not understood goes on to the decoder, which refuses
what it cannot decode.
"""

from __future__ import annotations

import struct

# reasons of lfr_enrolment_images_refused_total
TOO_MANY = "too_many"
TOO_LARGE_BYTES = "bytes"
TOO_LARGE_DIMENSIONS = "dimensions"

_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header, or None when the format or header is not recognised."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return w, h
        if data[:6] in (b"GIF87a", b"GIF89a"):
            w, h = struct.unpack("<HH", data[6:10])
            return w, h
        if data[:2] == b"BM" and len(data) >= 26:
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:2] == b"\xff\xd8":
            return _jpeg(data)
    except struct.error:
        return None
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i = 2
    n = len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        if marker == 0xDA or length < 2:  # start of scan before any frame header
            return None
        i += 2 + length
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        b = int.from_bytes(data[21:25], "little")
        return (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
    return None


def dimension_problem(data: bytes, max_side: int, max_pixels: int) -> str | None:
    """Why the image's dimensions are over the limits, or None when they are within them (or unknown)."""
    size = image_size(data)
    if size is None:
        return None
    w, h = size
    if w > max_side or h > max_side or w * h > max_pixels:
        return f"is {w}x{h} px; at most {max_side} px a side and {max_pixels} px in all"
    return None
