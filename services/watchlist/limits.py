"""Enrolment image limits: image count, encoded bytes, format, pixel dimensions and
the decoded bytes of a whole request, all checked before any pixel is decoded.

Only JPEG, PNG and WebP are accepted, recognised by their magic bytes; anything else OpenCV would
decode (TIFF, PNM, BMP, GIF, JPEG 2000, Radiance HDR, OpenEXR, ...) is refused by name. The
dimensions come from the accepted format's header (JPEG SOFn, PNG IHDR, WebP VP8/VP8L/VP8X) read by
the small parser below, so a small file that would decode to a huge bitmap (a decompression bomb)
is refused before anything is allocated; a header that cannot be read is refused as truncated or
corrupt rather than handed to the decoder. services.watchlist.enrol then decodes one image at a time
and refuses one whose decoded shape differs from its header.

The decoded bytes of an image are its width x height x 3 (the decoder's output). Decoding one image
takes about twice that at its peak (OpenCV's temporary bitmap), and a progressive JPEG up to a further
width x height x components x 2 (its coefficients): bounded by ``max_image_pixels``, one image at a time.
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from collections.abc import Sequence

from services.watchlist.config import WatchlistOptions

# reasons of lfr_enrolment_images_refused_total
TOO_MANY = "too_many"
TOO_LARGE_BYTES = "bytes"
TOO_LARGE_DIMENSIONS = "dimensions"
FORMAT = "format"
CORRUPT = "corrupt"
DECODED_BYTES = "decoded_bytes"

JPEG, PNG, WEBP = "JPEG", "PNG", "WebP"
ACCEPTED_FORMATS = (JPEG, PNG, WEBP)
DECODED_CHANNELS = 3  # the decoder runs with cv2.IMREAD_COLOR: every accepted image becomes 8-bit BGR
SEND = "send JPEG, PNG or WebP"

# JPEG frame headers: SOF0-SOF15 less DHT (C4), JPG (C8) and DAC (CC)
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# formats refused by name: (magic at offset 0, name); checked in order, the first match wins
_REFUSED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "BigTIFF"), (b"MM\x00+", "BigTIFF"),
    (b"BM", "BMP"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"), (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"#?RADIANCE", "Radiance HDR"), (b"#?RGBE", "Radiance HDR"), (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"\x59\xa6\x6a\x95", "Sun raster"), (b"PF", "PFM"), (b"Pf", "PFM"),
    (b"\xff\x0a", "JPEG XL"), (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"8BPS", "Photoshop"), (b"\x00\x00\x01\x00", "ICO"), (b"%PDF", "PDF"),
)


@dataclasses.dataclass(frozen=True)
class Header:
    """What an accepted image's header declares."""

    format: str
    width: int
    height: int

    @property
    def decoded_bytes(self) -> int:
        return self.width * self.height * DECODED_CHANNELS


class ImageRefused(ValueError):
    """An image (or the request) over a limit; ``reason`` labels lfr_enrolment_images_refused_total and the
    message is meant for the caller."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _Corrupt(Exception):
    """A header that does not parse."""


def image_format(data: bytes) -> str:
    """The format named by the magic bytes: one of ACCEPTED_FORMATS, a refused format's name, or a description
    of what the bytes are not."""
    if data[:3] == b"\xff\xd8\xff":
        return JPEG
    if data[:8] == _PNG_MAGIC:
        return PNG
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if not data:
        return "empty"
    for magic, name in _REFUSED_MAGIC:
        if data.startswith(magic):
            return name
    if len(data) >= 3 and data[0:1] == b"P" and data[1:2] in b"1234567" and data[2:3] in b" \t\r\n":
        return "PNM"
    if data[4:8] == b"ftyp":
        return "HEIF/AVIF"
    if b"<svg" in data[:1024].lower():
        return "SVG"
    return "not an image format this service knows"


def read_header(data: bytes) -> Header:
    """The header of an accepted image; ImageRefused (FORMAT or CORRUPT) otherwise. ``data`` is one image."""
    fmt = image_format(data)
    if fmt not in ACCEPTED_FORMATS:
        raise ImageRefused(FORMAT, f"is {fmt}: {SEND}")
    try:
        w, h = (_jpeg if fmt == JPEG else _png if fmt == PNG else _webp)(data)
    except _Corrupt as e:
        raise ImageRefused(CORRUPT, f"is truncated or corrupt ({fmt} header: {e})") from None
    except (struct.error, IndexError):
        raise ImageRefused(CORRUPT, f"is truncated or corrupt ({fmt} header cut short)") from None
    if w < 1 or h < 1:
        raise ImageRefused(CORRUPT, f"is truncated or corrupt ({fmt} header declares {w}x{h} px)")
    return Header(fmt, w, h)


def _jpeg(data: bytes) -> tuple[int, int]:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise _Corrupt(f"no marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2:i + 4])
        if marker in _SOF:
            if length < 8:
                raise _Corrupt("frame header too short")
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        if marker in (0xDA, 0xD9):
            raise _Corrupt("no frame header before the scan")
        if length < 2:
            raise _Corrupt(f"segment length {length}")
        i += 2 + length
    raise _Corrupt("no frame header")


def _png(data: bytes) -> tuple[int, int]:
    if data[8:16] != b"\x00\x00\x00\x0dIHDR":
        raise _Corrupt("no IHDR chunk")
    ihdr = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    if zlib.crc32(b"IHDR" + ihdr) != crc:
        raise _Corrupt("IHDR checksum")
    w, h = struct.unpack(">II", ihdr[:8])
    return w, h


def _webp(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":
        if len(data) < 30:
            raise _Corrupt("VP8X chunk cut short")
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8 ":
        if data[23:26] != b"\x9d\x01\x2a":
            raise _Corrupt("no VP8 start code")
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        if data[20:21] != b"\x2f":
            raise _Corrupt("no VP8L signature")
        (b,) = struct.unpack("<I", data[21:25])
        return (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
    raise _Corrupt(f"first chunk {chunk!r} is not VP8, VP8L or VP8X")


def check_request(images: Sequence[bytes], opts: WatchlistOptions) -> list[Header]:
    """The headers of one EnrolSubject's images, in order, once every limit holds: at most
    ``max_images_per_request`` images, each at most ``max_image_bytes``, an accepted format with a readable
    header, within ``max_image_side`` and ``max_image_pixels``, and ``max_decoded_bytes_per_request`` decoded
    bytes in all. ImageRefused, its message starting "image N" or "images", at the first that does not."""
    if len(images) > opts.max_images_per_request:
        raise ImageRefused(TOO_MANY, f"images: at most {opts.max_images_per_request} per request")
    headers: list[Header] = []
    for i, data in enumerate(images, start=1):
        if len(data) > opts.max_image_bytes:
            raise ImageRefused(TOO_LARGE_BYTES, f"image {i} is larger than {opts.max_image_bytes} bytes")
        try:
            hd = read_header(data)
        except ImageRefused as e:
            raise ImageRefused(e.reason, f"image {i} {e}") from None
        if hd.width > opts.max_image_side or hd.height > opts.max_image_side \
                or hd.width * hd.height > opts.max_image_pixels:
            raise ImageRefused(TOO_LARGE_DIMENSIONS,
                               f"image {i} is {hd.width}x{hd.height} px; at most {opts.max_image_side} px a side "
                               f"and {opts.max_image_pixels} px in all")
        headers.append(hd)
    total = sum(hd.decoded_bytes for hd in headers)
    if total > opts.max_decoded_bytes_per_request:
        raise ImageRefused(DECODED_BYTES,
                           f"images: the {len(headers)} images decode to {total} bytes in all "
                           f"(width x height x {DECODED_CHANNELS} each); at most "
                           f"{opts.max_decoded_bytes_per_request} per request: send fewer or smaller images")
    return headers
