"""Real image files for the enrolment limit tests (tests/unit/test_enrolment_limits.py and, loaded by path,
tests/integration/test_enrolment_images.py): files made by cv2.imencode, and decompression bombs as an
attacker writes them, byte by byte: a real PNG whose zlib stream inflates to w*h*3 bytes, a real deflate
TIFF, and JPEG / WebP headers declaring any size."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

IMG = np.random.default_rng(7).integers(0, 255, (37, 81, 3), dtype=np.uint8)


def encode(ext: str, img: np.ndarray = IMG, *params: int) -> bytes:
    ok, buf = cv2.imencode(ext, img, list(params))
    assert ok, ext
    return buf.tobytes()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header(w: int, h: int) -> bytes:
    """The PNG signature and an IHDR (8-bit RGB) declaring w x h: nothing else."""
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))


def png_bomb(w: int, h: int) -> bytes:
    """A real, complete RGB PNG of w x h black pixels: a few hundred KB that decode to w*h*3 bytes."""
    z = zlib.compressobj(9)
    row = bytes(1 + 3 * w)  # filter byte 0, then black
    idat = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    return png_header(w, h) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def jpeg_bomb(w: int, h: int) -> bytes:
    """SOI, a baseline frame header declaring w x h (3 components), a Huffman table and a scan header: a few
    dozen bytes."""
    sof = struct.pack(">BHHB", 8, h, w, 3) + b"".join(bytes([c, 0x11, 0]) for c in (1, 2, 3))
    dht = bytes([0x00]) + bytes([1] + [0] * 15) + b"\x00"
    sos = bytes([3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0])
    return (b"\xff\xd8" + b"\xff\xc0" + struct.pack(">H", 2 + len(sof)) + sof
            + b"\xff\xc4" + struct.pack(">H", 2 + len(dht)) + dht
            + b"\xff\xda" + struct.pack(">H", 2 + len(sos)) + sos + b"\x00" * 16 + b"\xff\xd9")


def tiff_bomb(w: int, h: int) -> bytes:
    """A real deflate TIFF of w x h black pixels (np.zeros pages are never written: no w*h*3 bytes held here)."""
    return encode(".tiff", np.zeros((h, w, 3), np.uint8), cv2.IMWRITE_TIFF_COMPRESSION, 8)


def riff(chunk: bytes, body: bytes) -> bytes:
    """A WebP file of one chunk."""
    inner = b"WEBP" + chunk + struct.pack("<I", len(body)) + body
    return b"RIFF" + struct.pack("<I", len(inner)) + inner


def webp_bomb(kind: str, w: int, h: int) -> bytes:
    """A WebP whose first chunk (VP8X, VP8L or "VP8 ") declares w x h."""
    if kind == "VP8X":
        return riff(b"VP8X", b"\x00\x00\x00\x00" + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little"))
    if kind == "VP8L":
        return riff(b"VP8L", b"\x2f" + struct.pack("<I", (w - 1) | (h - 1) << 14) + bytes(16))
    return riff(b"VP8 ", b"\x10\x02\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", w, h) + bytes(16))
