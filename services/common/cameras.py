"""The camera registry: which cameras exist, where they are (zone) and which
deployment (operation) they serve. Shared by ingest (what to read) and the
matcher (which watchlists apply; unknown cameras go to the DLQ).

Loaded from a YAML file (``deploy/local/cameras.yaml`` locally, a ConfigMap in
Kubernetes). A typo in a key fails at load."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field


class Camera(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$", description="camera id (Kafka key)")
    zone: str = Field(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$", description="patrol zone the camera covers")
    deployment_id: str = Field(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$",
                               description="the operation whose watchlists apply to this camera")
    source: str = Field(..., min_length=1, description="rtsp://..., http(s)://... (MJPEG), a video file, or a directory of images")
    fps: float = Field(5.0, gt=0, le=60, description="frames per second sampled and published")
    loop: bool = Field(False, description="loop a video file or image directory (demos)")
    max_width: int = Field(1920, ge=64, le=7680, description="frames wider than this are downscaled before encoding")
    jpeg_quality: int = Field(90, ge=30, le=100, description="JPEG quality of published frames")
    lat: float | None = Field(None, ge=-90, le=90, description="camera latitude (WGS84): alerts go to the nearest officers first")
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
