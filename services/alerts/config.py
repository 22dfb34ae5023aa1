"""Settings of the alerts service (gRPC 50054, metrics 9104)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from services.common.kafka import ALERTS_TOPIC, MATCHES_TOPIC
from services.common.settings import RedisSettings, Section, ServiceSettings


class AlertsOptions(Section):
    matches_topic: str = Field(MATCHES_TOPIC, min_length=1, description="input topic")
    alerts_topic: str = Field(ALERTS_TOPIC, min_length=1, description="output topic")
    stream_queue: int = Field(256, ge=1, le=100_000, description="alerts buffered per StreamAlerts client")


class AlertsSettings(ServiceSettings):
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = {"grpc": {"port": 50054}, "metrics": {"port": 9104}}

    redis: RedisSettings = Field(default_factory=RedisSettings, description="Redis (officer availability)")
    alerts: AlertsOptions = Field(default_factory=AlertsOptions, description="alerts options")
