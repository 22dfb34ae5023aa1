"""Settings of the console (HTTP 8080, metrics 9107): ``LFR_CONSOLE__*``, or the
``console`` section of the ``LFR_CONFIG`` YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr, model_validator

from services.common.settings import Section, ServiceSettings
from services.officers.state import GatingOptions


class PlatformEndpoints(Section):
    """Where the console reaches the platform's gRPC APIs (the only way it reads or changes anything)."""

    alerts: str = Field("127.0.0.1:50054", min_length=1, description="AlertService (StreamAlerts)")
    watchlist: str = Field("127.0.0.1:50055", min_length=1, description="WatchlistService and AuditService")
    officers: str = Field("127.0.0.1:50056", min_length=1, description="OfficerService and DeviceService")
    timeout_s: float = Field(10.0, gt=0, le=300, description="deadline of each unary call")
    audit_timeout_s: float = Field(60.0, gt=0, le=600, description="deadline of AuditService.Verify (reads the whole log)")
    token_file: Path | None = Field(
        None, description="the console's own bearer token (file): sent as `authorization: Bearer` on every call"
    )
    ca_file: Path | None = Field(None, description="CA bundle (PEM) of the services' certificates; TLS when set")
    cert_file: Path | None = Field(None, description="the console's client certificate (mTLS)")
    key_file: Path | None = Field(None, description="the console's client key (mTLS)")

    @model_validator(mode="after")
    def _tls(self) -> "PlatformEndpoints":
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("console.platform.cert_file and key_file must be set together")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError("console.platform.cert_file needs ca_file")
        return self


class ConsoleOptions(Section):
    http_host: str = Field("127.0.0.1", min_length=1, description="listen address of the web page")
    http_port: int = Field(8080, ge=1, le=65535, description="listen port of the web page")
    users_file: Path = Field(Path("deploy/local/console-users.yaml"),
                             description="local users: salted scrypt password hashes and roles")
    session_secret_file: Path | None = Field(
        None, description="key that signs session cookies (file, >= 32 bytes); None: a random key per process "
                          "(everyone logs in again after a restart)")
    session_ttl_s: int = Field(8 * 3600, ge=60, le=7 * 86_400, description="a session lasts this long")
    cookie_secure: bool = Field(False, description="mark the session cookie Secure (set behind HTTPS)")
    cameras_file: Path = Field(Path("deploy/local/cameras.yaml"), description="the camera registry (what exists, zones)")
    gating: GatingOptions = Field(default_factory=GatingOptions,
                                  description="the gating rule, as ingest applies it (for the cameras view)")
    platform: PlatformEndpoints = Field(default_factory=PlatformEndpoints, description="the platform's gRPC APIs")
    metrics_targets: dict[str, str] = Field(
        default_factory=lambda: {
            "ingest": "http://127.0.0.1:9101/metrics", "recognizer": "http://127.0.0.1:9102/metrics",
            "matcher": "http://127.0.0.1:9103/metrics", "alerts": "http://127.0.0.1:9104/metrics",
            "watchlist": "http://127.0.0.1:9105/metrics", "officers": "http://127.0.0.1:9106/metrics",
        },
        description="service -> /metrics URL read by the health view (when prometheus_url is not set)",
    )
    prometheus_url: str | None = Field(None, description="Prometheus base URL; the health view queries it instead")
    alert_retention_s: float = Field(
        86_400.0, gt=0, le=90 * 86_400,
        description="an alert's crops leave the page this long after it was raised when the officers service "
                    "does not say otherwise (its GetAlert retention wins)")
    max_alerts: int = Field(200, ge=1, le=5000, description="live alerts kept in memory (oldest dropped first)")
    refresh_s: float = Field(3.0, gt=0, le=300, description="how often the console re-reads alert states and cameras")

    @model_validator(mode="after")
    def _targets(self) -> "ConsoleOptions":
        for name, url in self.metrics_targets.items():
            if not name or not url.startswith(("http://", "https://")):
                raise ValueError(f"console.metrics_targets[{name!r}] must be an http(s) URL")
        return self


class ConsoleSettings(ServiceSettings):
    """The console has no gRPC server of its own: ``grpc`` and ``kafka`` are unused."""

    section_defaults: ClassVar[dict[str, dict[str, Any]]] = {"metrics": {"port": 9107}}

    console: ConsoleOptions = Field(default_factory=ConsoleOptions, description="console options")


def read_secret(path: Path | None) -> SecretStr | None:
    """A secret from a file (trailing whitespace stripped), or None."""
    if path is None:
        return None
    return SecretStr(path.read_text().strip())
