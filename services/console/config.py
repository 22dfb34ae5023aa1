"""Settings of the console (HTTP 8080, metrics 9107): ``LFR_CONSOLE__*``, or the
``console`` section of the ``LFR_CONFIG`` YAML file."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, SecretStr, field_validator, model_validator

from services.common import ports
from services.common.availability import GatingOptions
from services.common.errors import SetupError
from services.common.paths import REPO_ROOT
from services.common.settings import RedisSettings, Section, ServiceSettings

# the DEVELOPMENT users (published passwords "<username>-dev"): loaded only with console.dev_users on loopback
DEV_USERS_FILE = REPO_ROOT / "deploy" / "local" / "console-users.yaml"


class PlatformEndpoints(Section):
    """Where the console reaches the platform's gRPC APIs (the only way it reads or changes anything)."""

    alerts: str = Field(ports.local_address("alerts"), min_length=1, description="AlertService (StreamAlerts)")
    watchlist: str = Field(
        ports.local_address("watchlist"), min_length=1, description="WatchlistService and AuditService"
    )
    officers: str = Field(ports.local_address("officers"), min_length=1, description="OfficerService and DeviceService")
    timeout_s: float = Field(10.0, gt=0, le=300, description="deadline of each unary call")
    audit_timeout_s: float = Field(60.0, gt=0, le=600,
                                   description="deadline of AuditService.Verify (reads the whole log)")
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


class LoginThrottle(Section):
    """Failed sign-ins counted in Redis per user name and per client address (fixed windows): over either
    limit, sign-in is refused 429 with Retry-After until the window ends, whatever the password."""

    max_failures_per_user: int = Field(5, ge=1, le=1000, description="failed sign-ins per user name per window")
    max_failures_per_address: int = Field(20, ge=1, le=100_000,
                                          description="failed sign-ins per client address per window")
    window_s: int = Field(900, ge=10, le=86_400, description="the counting window (from the first failure)")
    trusted_proxies: tuple[str, ...] = Field(
        (), max_length=64,
        description="networks (CIDR) of reverse proxies in front of the console: from them the client address is "
                    "the rightmost X-Forwarded-For entry outside these networks; empty: the peer address")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError as e:
                raise ValueError(f"console.login.trusted_proxies: {net!r} is not a network (CIDR): {e}") from e
        return value


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost (a listen address only this machine reaches)."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class ConsoleOptions(Section):
    http_host: str = Field("127.0.0.1", min_length=1, description="listen address of the web page")
    http_port: int = Field(ports.CONSOLE_HTTP_PORT, ge=1, le=65535, description="listen port of the web page")
    users_file: Path | None = Field(
        None, description="the console's users: salted scrypt password hashes and roles (re-read when it changes: a "
                          "removed user or a changed role applies on the user's next request); required unless "
                          "dev_users")
    dev_users: bool = Field(
        False, description="the local stack only: use the DEVELOPMENT users (deploy/local/console-users.yaml, "
                           "published passwords); refused unless http_host is loopback")
    session_ttl_s: int = Field(8 * 3600, ge=60, le=7 * 86_400,
                               description="a session ends this long after sign-in (its Redis record's TTL)")
    session_recheck_s: float = Field(
        2.0, gt=0, le=60, description="the live alert stream re-reads its session this often and closes when the "
                                      "session ended (logout, user removed, role lost)")
    cookie_secure: bool | None = Field(
        None, description="mark the session cookie Secure; None: true unless http_host is loopback. False on a "
                          "non-loopback http_host is refused (serve it behind HTTPS)")
    login: LoginThrottle = Field(default_factory=LoginThrottle, description="sign-in throttling")
    redis: RedisSettings = Field(
        default_factory=RedisSettings,
        description="sessions and sign-in counters (keys under key_prefix), shared by every console replica")
    key_prefix: str = Field("lfr:console:", pattern=r"^lfr:console:[A-Za-z0-9_.:-]{0,64}$",
                            description="prefix of the console's Redis keys (the ACL user lfr-console may use "
                                        "lfr:console:* only)")
    cameras_file: Path = Field(Path("deploy/local/cameras.yaml"),
                               description="the camera registry (what exists, zones)")
    gating: GatingOptions = Field(default_factory=GatingOptions,
                                  description="the gating rule, as ingest applies it (for the cameras view)")
    platform: PlatformEndpoints = Field(default_factory=PlatformEndpoints, description="the platform's gRPC APIs")
    metrics_targets: dict[str, str] = Field(
        default_factory=lambda: {name: ports.local_metrics_url(name) for name in ports.SERVICE_PORTS},
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

    @property
    def secure_cookie(self) -> bool:
        """The session cookie's Secure flag: as set, else on unless the console listens on loopback only."""
        return self.cookie_secure if self.cookie_secure is not None else not is_loopback(self.http_host)

    def check_exposure(self) -> None:
        """Refuse what is safe only on a developer's machine, before anything is served."""
        local = is_loopback(self.http_host)
        if self.cookie_secure is False and not local:
            raise SetupError(f"console.cookie_secure is false while the console listens on {self.http_host} "
                             "(not loopback): the session cookie would travel in clear",
                             "serve the console behind HTTPS and drop LFR_CONSOLE__COOKIE_SECURE (default true), "
                             "or bind LFR_CONSOLE__HTTP_HOST=127.0.0.1")
        if self.dev_users and not local:
            raise SetupError(f"console.dev_users is set while the console listens on {self.http_host} "
                             "(not loopback): the development users' passwords are published",
                             "give the console a users file of your own (LFR_CONSOLE__USERS_FILE) and unset "
                             "LFR_CONSOLE__DEV_USERS; dev_users is for the local stack on 127.0.0.1 only")
        if self.dev_users and self.users_file is not None and self.users_file.resolve() != DEV_USERS_FILE.resolve():
            raise SetupError("console.dev_users and console.users_file are both set",
                             "set one: LFR_CONSOLE__USERS_FILE (your users) or LFR_CONSOLE__DEV_USERS=true (local "
                             "stack)")
        if not self.dev_users and self.users_file is None:
            raise SetupError("the console has no users file (console.users_file)",
                             "set LFR_CONSOLE__USERS_FILE to your users file (python -m services.console.users add "
                             "FILE USER ROLE...); on the local stack only, LFR_CONSOLE__DEV_USERS=true")

    @property
    def users_path(self) -> Path:
        """The users file to load (the development one only with dev_users; check_exposure() first)."""
        return self.users_file if self.users_file is not None else DEV_USERS_FILE


class ConsoleSettings(ServiceSettings):
    """The console has no gRPC server of its own: ``grpc`` and ``kafka`` are unused."""

    section_defaults: ClassVar[dict[str, dict[str, Any]]] = {"metrics": {"port": ports.CONSOLE_METRICS_PORT}}

    console: ConsoleOptions = Field(default_factory=ConsoleOptions, description="console options")


def read_secret(path: Path | None) -> SecretStr | None:
    """A secret from a file (trailing whitespace stripped), or None."""
    if path is None:
        return None
    return SecretStr(path.read_text().strip())


def with_dev_pki(settings: ConsoleSettings) -> ConsoleSettings:
    """The console started by hand (``python -m services.console``) where the development PKI exists
    (``<state>/certs``, ``lfr certs init``): its calls to the platform over mTLS with the PKI's ``console``
    client certificate, as ``lfr up`` runs it (grpc_client.console_env), since the services started there
    serve mTLS. Unchanged when any console.platform TLS file is given, when grpc.dev_pki is false, or when
    the PKI or the console's certificate does not exist (production)."""
    from services.common.grpc_client import cert_paths

    platform = settings.console.platform
    paths = cert_paths()
    cert, key = paths.client("console")
    given = {"ca_file", "cert_file", "key_file"} & platform.model_fields_set
    if given or not settings.grpc.dev_pki or not paths.ca.is_file() or not cert.is_file() or not key.is_file():
        return settings
    platform = platform.model_copy(update={"ca_file": paths.ca, "cert_file": cert, "key_file": key})
    return settings.model_copy(update={"console": settings.console.model_copy(update={"platform": platform})})
