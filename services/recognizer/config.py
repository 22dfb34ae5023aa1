"""Settings of the recognizer service (gRPC 50052, metrics 9102)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from services.common.kafka import FACES_TOPIC, FRAMES_TOPIC
from services.common.settings import Section, ServiceSettings, TritonSettings


class RecognizerOptions(Section):
    frames_topic: str = Field(FRAMES_TOPIC, min_length=1, description="input topic")
    faces_topic: str = Field(FACES_TOPIC, min_length=1, description="output topic")


class RecognizerSettings(ServiceSettings):
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = {"grpc": {"port": 50052}, "metrics": {"port": 9102}}

    triton: TritonSettings = Field(default_factory=TritonSettings, description="Triton inference server")
    recognizer: RecognizerOptions = Field(default_factory=RecognizerOptions, description="recognizer options")
