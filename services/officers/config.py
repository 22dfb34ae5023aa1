"""Settings of the officers service (gRPC 50056, metrics 9106): OfficerService
(availability) and DeviceService (alert delivery, acknowledgement, adjudication)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, model_validator

from services.common import ports
from services.common.kafka import ALERTS_TOPIC, AUDIT_TOPIC
from services.common.settings import RedisSettings, Section, ServiceSettings


class OfficersOptions(Section):
    heartbeat_ttl_s: float = Field(
        30.0, ge=1, le=3600,
        description="an officer's availability lapses this long after the last heartbeat (cameras of the zone stop)",
    )
    alerts_topic: str = Field(ALERTS_TOPIC, min_length=1, description="alerts to route (from the alerts service)")
    group_id: str = Field("lfr-officers", min_length=1, description="Kafka consumer group of the router")
    audit_topic: str = Field(AUDIT_TOPIC, min_length=1, description="hash-chained audit log")
    cameras_file: Path = Field(
        Path("deploy/local/cameras.yaml"),
        description="camera registry (camera locations for nearest-first routing); relative to the working directory",
    )
    first_wave: int = Field(2, ge=1, le=100, description="nearest available officers who get an alert first")
    escalation_wave: int = Field(2, ge=1, le=100, description="further officers added at each escalation")
    ack_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="escalate when nobody acknowledged an alert within this long"
    )
    supervisor_devices: dict[str, str] = Field(
        default_factory=dict,
        description="zone -> a supervisor device that gets the zone's escalated alerts (besides on-duty supervisors)",
    )
    two_person_default: bool = Field(
        False, description="a confirmed outcome needs a second, different officer's confirmation (EU AI Act Art. 14(5))"
    )
    two_person_deployments: list[str] = Field(
        default_factory=list, description="deployments that require two-person confirmation (besides the default)"
    )
    alert_retention_s: float = Field(
        86_400.0, gt=0, le=90 * 86_400,
        description="an alert and its crops are deleted this long after it was raised, unless confirmed into a case",
    )
    tick_s: float = Field(0.2, gt=0, le=10, description="escalation/purge/metrics loop period")
    stream_poll_s: float = Field(1.0, gt=0, le=60, description="a device stream re-reads its inbox at least this often")
    retry_max_backoff_s: float = Field(5.0, gt=0, le=300,
                                       description="longest wait between retries while Redis is down")

    @model_validator(mode="after")
    def _waves(self) -> "OfficersOptions":
        for zone, device in self.supervisor_devices.items():
            if not zone or not device:
                raise ValueError("officers.supervisor_devices: zone and device must be non-empty")
        return self

    def two_person(self, deployment_id: str) -> bool:
        return self.two_person_default or deployment_id in self.two_person_deployments


class OfficersSettings(ServiceSettings):
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = ports.section_defaults("officers")

    redis: RedisSettings = Field(default_factory=RedisSettings, description="Redis (availability, alert state)")
    officers: OfficersOptions = Field(default_factory=OfficersOptions, description="officers options")
