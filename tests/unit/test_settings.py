"""Settings: typos fail at load (env and YAML), bounds hold, sections keep their defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.alerts.config import AlertsSettings
from services.common.settings import UnknownSettingError
from services.ingest.config import IngestSettings
from services.matcher.config import MatcherSettings
from services.recognizer.config import RecognizerSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.upper().startswith("LFR_"):
            monkeypatch.delenv(key)


@pytest.mark.parametrize(
    "cls,grpc_port,metrics_port",
    [(IngestSettings, 50051, 9101), (RecognizerSettings, 50052, 9102), (MatcherSettings, 50053, 9103),
     (AlertsSettings, 50054, 9104)],
)
def test_service_ports_default_to_the_brief(cls: type, grpc_port: int, metrics_port: int) -> None:
    s = cls()
    assert (s.grpc.port, s.metrics.port) == (grpc_port, metrics_port)
    assert s.kafka.bootstrap == "127.0.0.1:9092"


def test_env_overrides_one_field_and_keeps_the_section_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFR_GRPC__HOST", "0.0.0.0")
    monkeypatch.setenv("LFR_KAFKA__LINGER_MS", "20")
    s = IngestSettings()
    assert s.grpc.host == "0.0.0.0" and s.grpc.port == 50051  # the service's port, not the base default
    assert s.kafka.linger_ms == 20


def test_nested_env_typo_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFR_KAFKA__BOOTSTRAPP", "x:1")
    with pytest.raises(ValidationError, match="bootstrapp"):
        IngestSettings()


def test_top_level_env_typo_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFR_GRPC_PORT", "1234")  # single underscore: not a setting
    with pytest.raises(UnknownSettingError, match="LFR_GRPC_PORT"):
        IngestSettings()


def test_other_services_sections_and_reserved_vars_are_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LFR_MATCHER__MATCHES_TOPIC", "x")  # the matcher's, set in a shared environment
    monkeypatch.setenv("LFR_CACHE", str(tmp_path))
    monkeypatch.setenv("LFR_STATE", str(tmp_path))
    monkeypatch.setenv("LFR_MODELS_ACCEPT_LICENCES", "insightface-non-commercial-research")  # make's, for the build
    monkeypatch.setenv("LFR_FACE__EMBEDDER", "w600k_mbf")  # the face services'
    assert IngestSettings().grpc.port == 50051
    with pytest.raises(ValidationError, match="LFR_FACE__ACCEPT_LICENCE"):  # research-only terms: never by accident
        MatcherSettings()
    monkeypatch.setenv("LFR_FACE__ACCEPT_LICENCE", "insightface-non-commercial-research")
    assert MatcherSettings().face.embedder == "w600k_mbf"
    with pytest.raises(ValidationError):  # ...but the matcher validates it (no field named so)
        monkeypatch.setenv("LFR_MATCHER__MATCHES_TOPICC", "x")
        MatcherSettings()


@pytest.mark.parametrize(
    "var,value",
    [("LFR_GRPC__PORT", "0"), ("LFR_GRPC__PORT", "70000"), ("LFR_KAFKA__LINGER_MS", "-1"),
     ("LFR_KAFKA__COMPRESSION", "brotli"), ("LFR_METRICS__PORT", "abc"), ("LFR_LOG_LEVEL", "loud")],
)
def test_bounds(monkeypatch: pytest.MonkeyPatch, var: str, value: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError):
        IngestSettings()


def test_tls_needs_cert_and_key_together(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LFR_GRPC__TLS__CERT_FILE", str(tmp_path / "c.pem"))
    with pytest.raises(ValidationError, match="cert_file and tls.key_file"):
        IngestSettings()


def test_yaml_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "lfr.yaml"
    cfg.write_text("kafka:\n  bootstrap: 127.0.0.1:19092\nmetrics:\n  enabled: false\nmatcher:\n  faces_topic: y\n")
    monkeypatch.setenv("LFR_CONFIG", str(cfg))
    s = RecognizerSettings()
    assert s.kafka.bootstrap == "127.0.0.1:19092" and not s.metrics.enabled and s.metrics.port == 9102
    monkeypatch.setenv("LFR_KAFKA__BOOTSTRAP", "127.0.0.1:29092")  # env wins over the file
    assert RecognizerSettings().kafka.bootstrap == "127.0.0.1:29092"


def test_yaml_typo_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "lfr.yaml"
    cfg.write_text("kafka:\n  bootstrap_servers: 127.0.0.1:19092\n")
    monkeypatch.setenv("LFR_CONFIG", str(cfg))
    with pytest.raises(ValidationError, match="bootstrap_servers"):
        IngestSettings()
    cfg.write_text("kafak:\n  bootstrap: 127.0.0.1:19092\n")
    with pytest.raises(ValidationError, match="kafak"):
        IngestSettings()


def test_missing_config_file_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LFR_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ValueError, match="no such file"):
        IngestSettings()


def test_secrets_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LFR_GRPC__AUTH__STATIC_TOKENS", '{"console": "s3cr3t-token"}')
    s = IngestSettings()
    assert s.grpc.auth.static_tokens["console"].get_secret_value() == "s3cr3t-token"
    assert "s3cr3t-token" not in repr(s) and "s3cr3t-token" not in str(s.model_dump())
