"""Settings of the ingest service (gRPC 50051, metrics 9101)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from services.common import ports
from services.common.availability import GatingOptions
from services.common.frame_keys import FrameKeyOptions
from services.common.kafka import AUDIT_TOPIC, FRAMES_TOPIC
from services.common.settings import RedisSettings, Section, ServiceSettings
from services.common.topics import FRAMES

DEFAULT_CAMERAS_FILE = Path("deploy/local/cameras.yaml")
# room for the Frame envelope (ids, timestamps) and the record batch overhead
_ENVELOPE_BYTES = 4096


class IngestOptions(Section):
    frames_topic: str = Field(FRAMES_TOPIC, min_length=1, description="topic the frames are published to")
    cameras_file: Path = Field(
        DEFAULT_CAMERAS_FILE, description="camera registry (YAML); relative paths resolve against the repo root"
    )
    max_frame_bytes: int = Field(
        1_000_000,
        ge=10_000,
        le=FRAMES.max_message_bytes - _ENVELOPE_BYTES,
        description="largest serialized Frame published; bigger ones are dropped and dead-lettered (OVERSIZED)",
    )
    buffer_size: int = Field(
        1, ge=1, le=2, description="frames held between capture and publish per camera; when full the OLDEST is dropped"
    )
    reconnect_initial_s: float = Field(0.5, gt=0, le=60, description="first delay before reopening a failed source")
    reconnect_max_s: float = Field(10.0, gt=0, le=600, description="longest delay between reopen attempts")
    max_lag_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="file/directory sources: when pacing falls this far behind real time, re-anchor instead of "
                    "bursting",
    )
    gating: GatingOptions = Field(
        default_factory=GatingOptions, description="cameras run only while officers are on duty in their zone"
    )
    audit_topic: str = Field(AUDIT_TOPIC, min_length=1,
                             description="hash-chained audit log (camera on/off transitions)")
    frame_keys: FrameKeyOptions = Field(
        default_factory=FrameKeyOptions,
        description="frame encryption (crypto-shredding, services/common/frame_keys.py)",
    )


class IngestSettings(ServiceSettings):
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = ports.section_defaults("ingest")

    redis: RedisSettings = Field(default_factory=RedisSettings, description="Redis (officer availability for gating)")
    ingest: IngestOptions = Field(default_factory=IngestOptions, description="ingest options")
