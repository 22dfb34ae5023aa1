"""Typed configuration for every service (pydantic-settings).

Sources, highest priority first: keyword arguments, environment variables
(prefix ``LFR_``, nested sections joined with ``__``, e.g.
``LFR_KAFKA__BOOTSTRAP=127.0.0.1:9092``), a YAML file named by ``LFR_CONFIG``,
then the defaults. Every model forbids unknown keys, so a typo fails at load:
nested ones through pydantic (``LFR_KAFKA__BOOTSTRAPP``) and top-level ones
through :func:`check_unknown_env` (``LFR_GRPC_PORT`` instead of ``LFR_GRPC__PORT``).

Reusable sections (:class:`KafkaSettings`, :class:`RedisSettings`, ...) are
plain ``BaseModel`` classes; a service composes them in a subclass of
:class:`ServiceSettings` and sets its own defaults (ports) in ``section_defaults``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from services.common import ports, topics

ENV_PREFIX = "LFR_"
NESTED_DELIMITER = "__"
CONFIG_ENV = "LFR_CONFIG"

# LFR_* variables that are not service settings (paths for the CLI and bootstrap; the model build's licence
# acknowledgements, LFR_MODELS_ACCEPT_LICENCES, exported by the Makefile to every child of make).
RESERVED_ENV: frozenset[str] = frozenset({"config", "cache", "state", "python", "client", "models_accept_licences"})
# Top-level sections that belong to some service: set in a shared environment
# (``make up``), each service ignores the others' sections instead of failing.
SERVICE_SECTIONS: frozenset[str] = frozenset(
    {"ingest", "recognizer", "matcher", "alerts", "watchlist", "officers", "console", "audit",
     "face"}  # face: the recognizer's, matcher's and watchlist's (LFR_FACE__EMBEDDER for the whole platform)
)

MiB = 1024 * 1024
SECRET_FILE_MAX_BYTES = 64 * 1024


class SecretFileError(ValueError):
    """A secret file (a mounted Kubernetes Secret) is missing, empty or unreadable; the message never holds its
    content."""


def read_secret_file(path: Path) -> SecretStr:
    """The content of a secret file, surrounding whitespace stripped, read at connect time (rotations apply on
    reconnect). Errors name the file, never the content."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SecretFileError(f"secret file {path} cannot be read: {e.strerror or type(e).__name__}") from None
    if len(raw) > SECRET_FILE_MAX_BYTES:
        raise SecretFileError(f"secret file {path} is larger than {SECRET_FILE_MAX_BYTES} bytes")
    try:
        value = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretFileError(f"secret file {path} is not UTF-8 text") from None
    if not value:
        raise SecretFileError(f"secret file {path} is empty")
    return SecretStr(value)


def _secret(value: SecretStr | None, file: Path | None) -> SecretStr | None:
    if file is not None:
        return read_secret_file(file)
    return value


def _one_of(value: SecretStr | None, file: Path | None, what: str) -> None:
    if value is not None and file is not None:
        raise ValueError(f"set {what} or {what}_file, not both")


class Section(BaseModel):
    """A settings section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(Section):
    bootstrap: str = Field("127.0.0.1:9092", min_length=1,
                           description="Kafka bootstrap servers, comma-separated host:port")
    client_id: str = Field("lfr", min_length=1, description="Kafka client id prefix (the service name is appended)")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol (TLS/SASL are wired by the security issue)"
    )
    ssl_cafile: Path | None = Field(None, description="CA bundle for SSL/SASL_SSL")
    ssl_certfile: Path | None = Field(None, description="client certificate for mTLS to Kafka")
    ssl_keyfile: Path | None = Field(None, description="client key for mTLS to Kafka")
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism")
    sasl_username: str | None = Field(None, description="SASL user")
    sasl_password: SecretStr | None = Field(None, description="SASL password (never logged); prefer sasl_password_file")
    sasl_password_file: Path | None = Field(
        None, description="file holding the SASL password (a mounted Kubernetes Secret), read at connect time"
    )
    request_timeout_ms: int = Field(30_000, ge=1_000, le=300_000, description="request timeout")
    linger_ms: int = Field(
        0, ge=0, le=1_000,
        description="producer batching delay; 0 sends at once (records that arrive while a request is in flight "
        "still share the next one). Every hop of the pipeline pays it: 5 ms cost ~6 ms per hop in `lfr bench "
        "pipeline`, and a frame (tens of KiB) fills a producer batch on its own anyway",
    )
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none",
        description="producer compression; JPEG payloads do not compress, and snappy/lz4/zstd need extra packages",
    )
    max_request_bytes: int = Field(
        4 * MiB, ge=MiB, le=64 * MiB,
        description="producer max request size (must be <= the broker's message.max.bytes)"
    )
    max_poll_records: int = Field(64, ge=1, le=10_000, description="records per consumer fetch/batch")
    session_timeout_ms: int = Field(10_000, ge=3_000, le=300_000, description="consumer group session timeout")
    static_membership: bool = Field(
        True,
        description="static consumer group membership (KIP-345): a replica restarted after a crash takes its "
        "partitions back at once instead of after the dead member's session timeout",
    )
    group_instance_id: str | None = Field(
        None, min_length=1, max_length=249,
        description="static membership id, unique per replica of a group; default '<service>-<instance>' "
        "(instance: the hostname, i.e. the pod name in Kubernetes)",
    )
    auto_offset_reset: Literal["earliest", "latest"] = Field("latest", description="where a new group starts")
    dlq_topic: str = Field(topics.DLQ.name, min_length=1, description="dead-letter topic")
    dlq_max_payload_bytes: int = Field(
        4096, ge=0, le=MiB, description="payload bytes kept in a dead letter (non-biometric topics only)"
    )

    @model_validator(mode="after")
    def _sasl_consistent(self) -> "KafkaSettings":
        _one_of(self.sasl_password, self.sasl_password_file, "sasl_password")
        if self.security_protocol.startswith("SASL") and not self.sasl_username:
            raise ValueError(f"security_protocol {self.security_protocol} needs sasl_username")
        return self

    def sasl_secret(self) -> SecretStr | None:
        """The SASL password: from sasl_password_file (read now) or sasl_password."""
        return _secret(self.sasl_password, self.sasl_password_file)


class RedisSettings(Section):
    url: str = Field("redis://127.0.0.1:6379/0", min_length=1, description="Redis URL (rediss:// for TLS)")
    socket_timeout_s: float = Field(2.0, gt=0, le=60, description="socket timeout")
    username: str | None = Field(None, min_length=1,
                                 description="Redis ACL user (AUTH username password); none: default user")
    password: SecretStr | None = Field(None, description="Redis AUTH password (never logged); prefer password_file")
    password_file: Path | None = Field(
        None, description="file holding the Redis password (a mounted Kubernetes Secret), read at connect time"
    )
    ssl_ca_file: Path | None = Field(None, description="CA bundle that the server certificate must chain to (rediss://)")
    ssl_cert_file: Path | None = Field(None, description="client certificate when Redis requires TLS client auth")
    ssl_key_file: Path | None = Field(None, description="client key when Redis requires TLS client auth")

    @model_validator(mode="after")
    def _consistent(self) -> "RedisSettings":
        _one_of(self.password, self.password_file, "password")
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError("redis ssl_cert_file and ssl_key_file must be set together")
        return self

    def secret(self) -> SecretStr | None:
        """The AUTH password: from password_file (read now) or password."""
        return _secret(self.password, self.password_file)


class MilvusSettings(Section):
    uri: str = Field("http://127.0.0.1:19530", min_length=1, description="Milvus URI")
    token: SecretStr | None = Field(None, description="Milvus token (user:password), never logged; prefer token_file")
    token_file: Path | None = Field(
        None,
        description="file holding the Milvus token `user:password` (a mounted Kubernetes Secret), read at connect time"
    )
    ca_file: Path | None = Field(None, description="CA bundle for an https:// Milvus URI (server TLS)")

    @model_validator(mode="after")
    def _consistent(self) -> "MilvusSettings":
        _one_of(self.token, self.token_file, "token")
        return self

    def secret(self) -> SecretStr | None:
        """The token: from token_file (read now) or token."""
        return _secret(self.token, self.token_file)
    timeout_s: float = Field(10.0, gt=0, le=300, description="per-call timeout")


class TritonSettings(Section):
    url: str = Field("127.0.0.1:8001", min_length=1, description="Triton gRPC endpoint host:port")
    timeout_s: float = Field(10.0, gt=0, le=300, description="per-inference timeout")
    ssl: bool = Field(False, description="use TLS to Triton")


class GrpcTlsSettings(Section):
    cert_file: Path | None = Field(None, description="server certificate (PEM); TLS is on when cert and key are set")
    key_file: Path | None = Field(None, description="server private key (PEM)")
    ca_file: Path | None = Field(None, description="CA bundle (PEM) that client certificates must chain to")
    require_client_cert: bool = Field(False, description="mTLS: refuse clients without a certificate from ca_file")

    @model_validator(mode="after")
    def _consistent(self) -> "GrpcTlsSettings":
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file must be set together")
        if self.require_client_cert and (self.ca_file is None or self.cert_file is None):
            raise ValueError("tls.require_client_cert needs tls.cert_file, tls.key_file and tls.ca_file")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class GrpcAuthSettings(Section):
    require_authentication: bool = Field(
        False, description="refuse unauthenticated calls (except health/reflection) with UNAUTHENTICATED"
    )
    static_tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="principal -> bearer token accepted in the `authorization` metadata"
    )
    static_token_roles: dict[str, list[str]] = Field(
        default_factory=dict, description="principal of a static token -> its roles (none: it may call nothing)"
    )
    device_token_key_file: Path | None = Field(
        None, description="HMAC key (file, a Kubernetes Secret) that signs device tokens (services/common/tokens.py)"
    )
    audit_topic: str = Field(topics.AUDIT.name, min_length=1, description="where refused calls are audited")
    enforce_roles: bool = Field(
        True, description="apply services/common/roles.py (default deny); false only for tests of other concerns"
    )


class GrpcLimitSettings(Section):
    rate_per_s: float = Field(
        50.0, ge=0, le=100_000, description="calls per second per caller (token bucket refill); 0 disables"
    )
    burst: int = Field(200, ge=1, le=1_000_000, description="token bucket capacity per caller")


class GrpcRefusalSettings(Section):
    """How refused calls reach the audit log without flooding it (services/common/refusals.py)."""

    interval_s: float = Field(
        10.0, ge=0.1, le=3600,
        description="aggregation window: per peer (client certificate CN, else address) and window, refusals past "
                    "the immediate ones become one api.refused record with their count, written in the background "
                    "at the window's end (and at shutdown)")
    immediate_per_peer: int = Field(
        3, ge=0, le=1000,
        description="refusals per peer and window audited at once, each as its own record, before the refusal is "
                    "answered; the rest are counted and aggregated")
    max_peers: int = Field(
        1000, ge=1, le=100_000,
        description="peers tracked at once (bounded memory); refusals from further peers share one 'other peers' "
                    "aggregate")


class GrpcServerSettings(Section):
    host: str = Field("127.0.0.1", min_length=1, description="listen address")
    port: int = Field(ports.BASE_GRPC_PORT, ge=1, le=65535, description="listen port")
    max_message_bytes: int = Field(
        16 * MiB, ge=MiB, le=256 * MiB,
        description="max send/receive message size; a unary request over it is refused RESOURCE_EXHAUSTED, counted "
                    "(lfr_grpc_refused_total) and audited; gRPC core refuses anything over twice this uncounted")
    grace_s: float = Field(5.0, ge=0, le=120, description="graceful shutdown period for in-flight calls")
    min_client_ping_interval_s: float = Field(
        20.0, ge=1, le=300,
        description="shortest keepalive ping interval a client may use while no data flows (an officer's device "
                    "on an idle alert stream pings every 30 s); gRPC core's default, 300 s, answers faster pings "
                    "with GOAWAY too_many_pings and drops the stream")
    tls: GrpcTlsSettings = Field(default_factory=GrpcTlsSettings, description="TLS/mTLS (off by default)")
    dev_pki: bool = Field(
        True, description="a service started by hand (python -m services.<name>) where the development PKI exists "
                          "(<state>/certs, lfr certs init) and no grpc.tls setting is given serves mTLS with its dev "
                          "certificate and requires authentication, as lfr up runs it (the console: calls the platform "
                          "over mTLS as console); false: plaintext")
    auth: GrpcAuthSettings = Field(default_factory=GrpcAuthSettings, description="per-call authentication")
    limits: GrpcLimitSettings = Field(default_factory=GrpcLimitSettings, description="per-caller rate limits")
    refusals: GrpcRefusalSettings = Field(
        default_factory=GrpcRefusalSettings, description="audit of refused calls: per-peer limit and aggregation")


class MetricsSettings(Section):
    host: str = Field("127.0.0.1", min_length=1, description="listen address of /metrics")
    port: int = Field(ports.BASE_METRICS_PORT, ge=1, le=65535, description="Prometheus /metrics port")
    enabled: bool = Field(True, description="serve /metrics")


class AuditSettings(Section):
    """How this service signs what it appends to the audit log, and where verification finds its trust."""

    signing_key_file: Path | None = Field(
        None, description="this service's Ed25519 audit signing key (PKCS#8 PEM, a mounted Kubernetes Secret); "
        "none: the dev PKI's <state>/certs/audit/<service>.key (`lfr certs init`)")
    keyring_dir: Path | None = Field(
        None, description="directory of the writers' public keys (<service>.pub) that verification trusts; "
        "none: <state>/certs/audit/pub")
    checkpoint_dir: Path | None = Field(
        None, description="where signed checkpoints (seq, hash) are kept, outside Kafka (production: a volume "
        "the auditor holds); none: <state>/audit/checkpoints")
    checkpoint_every_records: int = Field(
        100, ge=1, le=1_000_000, description="a writer signs a checkpoint after at most this many of its appends")
    checkpoint_every_s: float = Field(
        60.0, ge=0.1, le=86_400, description="... and at most this long after an append it has not checkpointed")


def host_instance() -> str:
    """This replica's default instance name: the host name (the pod name in Kubernetes)."""
    return os.uname().nodename


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


class UnknownSettingError(ValueError):
    """An LFR_* environment variable that names no setting (a typo)."""


def check_unknown_env(fields: set[str], environ: Mapping[str, str], ignore: frozenset[str]) -> None:
    """Fail on LFR_* variables that name no top-level field (nested typos fail in pydantic)."""
    unknown = []
    for key in environ:
        if not key.upper().startswith(ENV_PREFIX):
            continue
        top = key[len(ENV_PREFIX) :].split(NESTED_DELIMITER, 1)[0].lower()
        if top not in fields and top not in ignore:
            unknown.append(key)
    if unknown:
        valid = ", ".join(f"{ENV_PREFIX}{f.upper()}" for f in sorted(fields))
        raise UnknownSettingError(f"unknown setting(s) {', '.join(sorted(unknown))}; valid top-level names: {valid}")


class _FilteredYaml(YamlConfigSettingsSource):
    """The LFR_CONFIG YAML file, without the sections of other services."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None, ignore: frozenset[str]) -> None:
        super().__init__(settings_cls, yaml_file=path)
        self._ignore = ignore

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        return {k: v for k, v in data.items() if k not in self._ignore}


class ServiceSettings(BaseSettings):
    """Base of every service's settings. Subclasses add sections and set
    ``section_defaults`` (e.g. their gRPC and metrics ports); an env var or YAML
    key that sets one field of a section keeps the other defaults."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    section_defaults: ClassVar[dict[str, dict[str, Any]]] = {}

    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")
    instance: str = Field(default_factory=host_instance, min_length=1, description="instance name")
    kafka: KafkaSettings = Field(default_factory=KafkaSettings, description="Kafka connection")
    grpc: GrpcServerSettings = Field(default_factory=GrpcServerSettings, description="gRPC server")
    metrics: MetricsSettings = Field(default_factory=MetricsSettings, description="Prometheus /metrics")
    audit: AuditSettings = Field(default_factory=AuditSettings, description="audit record signing and checkpoints")

    @model_validator(mode="before")
    @classmethod
    def _apply_section_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for section, defaults in cls.section_defaults.items():
            given = out.get(section)
            if given is None:
                out[section] = dict(defaults)
            elif isinstance(given, Mapping):
                out[section] = _deep_merge(defaults, given)
        return out

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        ignore = RESERVED_ENV | (SERVICE_SECTIONS - set(cls.model_fields))
        check_unknown_env(set(cls.model_fields), os.environ, ignore)
        config = os.environ.get(CONFIG_ENV)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config:
            path = Path(config)
            if not path.is_file():
                raise ValueError(f"{CONFIG_ENV}={config}: no such file")
            sources.append(_FilteredYaml(settings_cls, path, ignore))
        return tuple(sources)
