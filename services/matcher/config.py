"""Settings of the matcher service (gRPC 50053, metrics 9103)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from services.common.kafka import FACES_TOPIC, MATCHES_TOPIC
from services.common.settings import MilvusSettings, RedisSettings, Section, ServiceSettings


class MatcherOptions(Section):
    faces_topic: str = Field(FACES_TOPIC, min_length=1, description="input topic")
    matches_topic: str = Field(MATCHES_TOPIC, min_length=1, description="output topic")


class MatcherSettings(ServiceSettings):
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = {"grpc": {"port": 50053}, "metrics": {"port": 9103}}

    milvus: MilvusSettings = Field(default_factory=MilvusSettings, description="Milvus vector store")
    redis: RedisSettings = Field(default_factory=RedisSettings, description="Redis (gating, ephemeral crop keys)")
    matcher: MatcherOptions = Field(default_factory=MatcherOptions, description="matcher options")
