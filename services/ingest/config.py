"""Settings of the ingest service (gRPC 50051, metrics 9101)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from services.common.kafka import FRAMES_TOPIC
from services.common.settings import Section, ServiceSettings


class IngestOptions(Section):
    frames_topic: str = Field(FRAMES_TOPIC, min_length=1, description="topic the frames are published to")
    max_frame_bytes: int = Field(
        1_000_000, ge=10_000, le=16_000_000, description="largest encoded frame published (bigger ones are dropped)"
    )


class IngestSettings(ServiceSettings):
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = {"grpc": {"port": 50051}, "metrics": {"port": 9101}}

    ingest: IngestOptions = Field(default_factory=IngestOptions, description="ingest options")
