"""The camera registry: which cameras exist, where they are (zone) and which
deployment (operation) they serve. Shared by ingest (what to read), the
recognizer and the matcher (unknown cameras go to the DLQ; which watchlists
apply), officers (camera locations, zones) and the console (the cameras page).

Loaded from a YAML file (``deploy/local/cameras.yaml`` locally, a ConfigMap in
Kubernetes). A typo in a key fails at load. A service holds its file as a
:class:`CameraFile`: one error wording for a missing or invalid file, and edits
picked up while it runs."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from services.common.errors import SetupError

log = logging.getLogger(__name__)

CHECK_EVERY_S = 1.0  # how often a CameraFile looks at its file (a stat) for an edit
FORMAT = "deploy/local/cameras.yaml"  # the format to follow, in every fix


class Camera(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$",
                    description="camera id (Kafka key)")
    zone: str = Field(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$",
                      description="patrol zone the camera covers")
    deployment_id: str = Field(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$",
                               description="the operation whose watchlists apply to this camera")
    source: str = Field(..., min_length=1,
                        description="rtsp://..., http(s)://... (MJPEG), a video file, or a directory of images")
    fps: float = Field(5.0, gt=0, le=60, description="frames per second sampled and published")
    loop: bool = Field(False, description="loop a video file or image directory (demos)")
    max_width: int = Field(1920, ge=64, le=7680, description="frames wider than this are downscaled before encoding")
    jpeg_quality: int = Field(90, ge=30, le=100, description="JPEG quality of published frames")
    lat: float | None = Field(None, ge=-90, le=90,
                              description="camera latitude (WGS84): alerts go to the nearest officers first")
    lon: float | None = Field(None, ge=-180, le=180, description="camera longitude (WGS84)")


class CameraRegistry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cameras: list[Camera] = Field(default_factory=list)

    def get(self, camera_id: str) -> Camera | None:
        for c in self.cameras:
            if c.id == camera_id:
                return c
        return None

    @classmethod
    def load(cls, path: Path) -> "CameraRegistry":
        data = yaml.safe_load(Path(path).read_text()) or {}
        reg = cls.model_validate(data)
        ids = [c.id for c in reg.cameras]
        if len(ids) != len(set(ids)):
            raise ValueError(f"{path}: duplicate camera ids")
        return reg


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of the file (a ConfigMap update swaps a link: another inode); None without one."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class CameraFile:
    """A service's camera registry file, read on first use and read again when it changes.

    :meth:`current` looks at the file (a stat: inode, size, mtime) at most once per
    ``check_every_s`` and reads it again only when that changed. The first read
    raises :class:`SetupError` when the file is missing or invalid (naming the
    setting to fix); later, a broken edit (or a removed file) keeps the last good
    registry (logged). With ``missing_ok`` a file missing at first is an empty
    registry (logged) until it appears.
    ``get`` and ``cameras`` read :meth:`current`, like a :class:`CameraRegistry`."""

    def __init__(self, path: Path, setting: str, *, missing_ok: bool = False, check_every_s: float = CHECK_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.setting = setting  # the environment variable of the path, e.g. LFR_MATCHER__CAMERAS_FILE
        self.missing_ok = missing_ok
        self.check_every_s = check_every_s
        self._clock = clock
        self._lock = threading.Lock()  # the console reads it from worker threads
        self._registry: CameraRegistry | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0

    def current(self) -> CameraRegistry:
        with self._lock:
            if self._registry is None:
                self._registry, self._stamp = self._read(self.missing_ok)
                self._checked = self._clock()
            elif self._clock() - self._checked >= self.check_every_s:
                self._checked = self._clock()
                if _stamp(self.path) != self._stamp:
                    self._reload()
            return self._registry

    def get(self, camera_id: str) -> Camera | None:
        return self.current().get(camera_id)

    @property
    def cameras(self) -> list[Camera]:
        return self.current().cameras

    def _reload(self) -> None:
        try:
            self._registry, self._stamp = self._read(missing_ok=False)
        except SetupError as e:
            self._stamp = _stamp(self.path)  # not read again until it changes again
            log.warning("camera registry not reloaded: the last good one stays", extra={"error": e.one_line()})

    def _read(self, missing_ok: bool) -> tuple[CameraRegistry, tuple[int, int, int] | None]:
        stamp = _stamp(self.path)
        try:
            registry = CameraRegistry.load(self.path)
        except FileNotFoundError as e:
            if not missing_ok:
                raise SetupError(f"camera registry {self.path} does not exist",
                                 f"create it (the format of {FORMAT}) or set {self.setting}") from e
            log.warning("no camera registry: an empty one until the file appears", extra={"path": str(self.path)})
            return CameraRegistry(), stamp
        except (OSError, ValueError, yaml.YAMLError) as e:  # pydantic's errors are ValueErrors
            raise SetupError(f"camera registry {self.path} is invalid: {e}",
                             f"fix the file (the format of {FORMAT}) or set {self.setting}") from e
        log.info("camera registry loaded", extra={"path": str(self.path), "cameras": len(registry.cameras)})
        return registry, stamp
