"""Settings of the alerts service (gRPC 50054, metrics 9104)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from services.common import ports
from services.common.kafka import ALERTS_TOPIC, MATCHES_TOPIC
from services.common.settings import RedisSettings, Section, ServiceSettings


class AlertsOptions(Section):
    matches_topic: str = Field(MATCHES_TOPIC, min_length=1, description="input topic")
    alerts_topic: str = Field(ALERTS_TOPIC, min_length=1, description="output topic")
    group_id: str = Field("lfr-alerts", min_length=1, description="Kafka consumer group")
    stream_queue: int = Field(256, ge=1, le=100_000, description="alerts buffered per StreamAlerts client")
    pass_window_s: float = Field(
        10.0, gt=0, le=3600,
        description="a pass of one subject past one camera ends when no match was captured for this long; "
                    "the next match after that starts a new pass (a new alert)",
    )
    pass_ttl_s: float = Field(
        60.0, gt=0, le=86_400,
        description="how long Redis keeps a pass record after its last sighting (>= pass_window_s; covers "
                    "processing lag and restarts)",
    )
    retry_max_backoff_s: float = Field(5.0, gt=0, le=300,
                                       description="longest wait between retries while Redis is down")

    @model_validator(mode="after")
    def _ttl_covers_window(self) -> "AlertsOptions":
        if self.pass_ttl_s < self.pass_window_s:
            raise ValueError("alerts.pass_ttl_s must be >= alerts.pass_window_s")
        return self


class AlertsSettings(ServiceSettings):
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = ports.section_defaults("alerts")

    redis: RedisSettings = Field(default_factory=RedisSettings, description="Redis (pass state, officer availability)")
    alerts: AlertsOptions = Field(default_factory=AlertsOptions, description="alerts options")
