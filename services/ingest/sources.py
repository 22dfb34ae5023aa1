"""Camera sources. Everything here BLOCKS (OpenCV decoding): call it from the
camera's own thread, never from the event loop.

- live streams (``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://`` MJPEG):
  cv2.VideoCapture; every frame is grabbed (so the capture buffer never fills
  with old frames) and only the sampled ones are decoded; timestamps are the
  wall clock.
- a video file: cv2.VideoCapture; sampled by media time (frame index / fps), so
  a 30 fps file sampled at 10 fps decodes every 3rd frame; loops if asked.
- a directory of images: sorted by name, one image per sampling period; loops if asked.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from services.common.cameras import Camera
from services.common.paths import REPO_ROOT, resolve
from services.ingest.sampling import LoopClock, Sampler, media_time

log = logging.getLogger(__name__)

LIVE_SCHEMES: tuple[str, ...] = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://")
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


class SourceError(RuntimeError):
    """The source cannot be opened or stopped delivering frames (reopen with backoff)."""


@dataclasses.dataclass(frozen=True)
class RawFrame:
    image: np.ndarray  # BGR uint8 (OpenCV order)
    media_t: float  # seconds; monotonic across loops (files, dirs) or the wall clock (live)


class FrameSource(Protocol):
    live: bool

    def open(self) -> None: ...

    def next_sampled(self) -> RawFrame | None:
        """The next frame the sampler keeps; None at the end of a non-looping source."""
        ...

    def close(self) -> None: ...


def is_live(source: str) -> bool:
    return source.lower().startswith(LIVE_SCHEMES)


def source_path(source: str, root: Path = REPO_ROOT) -> Path:
    return resolve(source, root)


class VideoSource:
    """A cv2.VideoCapture source: a live stream or a (looping) file."""

    def __init__(self, source: str, fps: float, loop: bool = False, root: Path = REPO_ROOT) -> None:
        self.live = is_live(source)
        self.uri = source if self.live else str(source_path(source, root))
        self.loop = loop and not self.live
        self.target_fps = fps
        self._cap: Any = None
        self._index = 0
        self._read_since_open = 0
        self.source_fps: float | None = None
        self.sampler = Sampler(fps)
        self.clock = LoopClock()

    def open(self) -> None:
        self.close()
        cap = cv2.VideoCapture(self.uri)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {'stream' if self.live else 'file'}")
        self._cap = cap
        self._index = 0
        self._read_since_open = 0
        if not self.live:
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self.source_fps = fps if 0 < fps < 1000 else None
            self.sampler.source_fps = self.source_fps
            self.clock.frame_period = 1.0 / self.source_fps if self.source_fps else 0.0

    def _restart(self) -> None:
        if self._read_since_open == 0:
            raise SourceError("file has no readable frames")
        self.clock.wrap()
        self.open()

    def next_sampled(self) -> RawFrame | None:
        if self._cap is None:
            raise SourceError("source not open")
        while True:
            if not self._cap.grab():
                if self.live:
                    raise SourceError("stream stopped delivering frames")
                if not self.loop:
                    return None
                self._restart()
                continue
            self._read_since_open += 1
            if self.live:
                t = time.monotonic()
            else:
                pos = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
                t = self.clock.at(media_time(self._index, self.source_fps, pos))
            self._index += 1
            if not self.sampler.keep(t):
                continue
            ok, image = self._cap.retrieve()
            if ok and image is not None:
                return RawFrame(image=image, media_t=t)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageDirSource:
    """Images of a directory in name order, one per sampling period (``fps``)."""

    live = False

    def __init__(self, directory: str, fps: float, loop: bool = False, root: Path = REPO_ROOT) -> None:
        self.directory = source_path(directory, root)
        self.fps = fps
        self.loop = loop
        self.files: list[Path] = []
        self._pos = 0
        self._emitted = 0
        self._pass_emitted = 0
        self.unreadable = 0

    def open(self) -> None:
        if not self.directory.is_dir():
            raise SourceError("image directory does not exist")
        self.files = sorted(p for p in self.directory.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not self.files:
            raise SourceError("image directory holds no images")
        self._pos = 0
        self._pass_emitted = 0

    def next_sampled(self) -> RawFrame | None:
        while True:
            if self._pos >= len(self.files):
                if not self.loop:
                    return None
                if self._pass_emitted == 0:
                    raise SourceError("no image of the directory decodes")
                self._pos = 0
                self._pass_emitted = 0
            path = self.files[self._pos]
            self._pos += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self.unreadable += 1
                log.warning("unreadable image skipped", extra={"file": path.name})
                continue
            t = self._emitted / self.fps
            self._emitted += 1
            self._pass_emitted += 1
            return RawFrame(image=image, media_t=t)

    def close(self) -> None:
        self.files = []


def open_source(camera: Camera, root: Path = REPO_ROOT) -> FrameSource:
    """The source object for a camera (not opened yet)."""
    if not is_live(camera.source) and source_path(camera.source, root).is_dir():
        return ImageDirSource(camera.source, camera.fps, camera.loop, root)
    return VideoSource(camera.source, camera.fps, camera.loop, root)


def encode_jpeg(image: np.ndarray, max_width: int, quality: int) -> tuple[bytes, int, int]:
    """Downscale (aspect kept) to at most ``max_width`` and JPEG-encode; returns (jpeg, width, height)."""
    h, w = image.shape[:2]
    if w > max_width:
        nh = max(1, round(h * max_width / w))
        image = cv2.resize(image, (max_width, nh), interpolation=cv2.INTER_AREA)
        h, w = nh, max_width
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes(), int(w), int(h)
