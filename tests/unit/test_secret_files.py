"""Secrets from files: read at connect time, never in reprs, errors name the file only."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.clients import milvus_kwargs, redis_kwargs
from services.common.kafka import client_kwargs
from services.common.settings import KafkaSettings, MilvusSettings, RedisSettings, SecretFileError
from services.stack import kafka_scram

SECRET = "s3cr3t-Value-xyz"


def _file(tmp_path: Path, content: str = SECRET + "\n") -> Path:
    f = tmp_path / "secret"
    f.write_text(content)
    f.chmod(0o600)
    return f


def test_kafka_sasl_password_file_is_read_at_connect_time(tmp_path: Path) -> None:
    f = _file(tmp_path)
    s = KafkaSettings(bootstrap="127.0.0.1:9094", security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                      sasl_username="lfr-matcher", sasl_password_file=f)
    assert SECRET not in repr(s) and SECRET not in str(s.model_dump())
    kw = client_kwargs(s, "matcher")
    assert kw["sasl_plain_password"] == SECRET and kw["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kw["security_protocol"] == "SASL_PLAINTEXT" and kw["sasl_plain_username"] == "lfr-matcher"
    f.write_text("rotated\n")  # a rotated Secret applies on the next connect
    assert client_kwargs(s, "matcher")["sasl_plain_password"] == "rotated"


def test_kafka_sasl_ssl_builds_a_tls_context(tmp_path: Path) -> None:
    import ssl

    s = KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="u",
                      sasl_password_file=_file(tmp_path))
    assert isinstance(client_kwargs(s, "x")["ssl_context"], ssl.SSLContext)


def test_inconsistent_secret_settings_fail_at_load(tmp_path: Path) -> None:
    f = _file(tmp_path)
    with pytest.raises(ValidationError, match="not both"):
        KafkaSettings(sasl_password=SECRET, sasl_password_file=f)
    with pytest.raises(ValidationError, match="needs sasl_username"):
        KafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_password_file=f)
    with pytest.raises(ValidationError, match="not both"):
        RedisSettings(password=SECRET, password_file=f)
    with pytest.raises(ValidationError, match="not both"):
        MilvusSettings(token=SECRET, token_file=f)


@pytest.mark.parametrize("content", ["", "  \n"])
def test_empty_or_missing_secret_file_names_the_file_not_the_content(tmp_path: Path, content: str) -> None:
    s = RedisSettings(password_file=_file(tmp_path, content))
    with pytest.raises(SecretFileError, match="is empty"):
        redis_kwargs(s)
    missing = MilvusSettings(token_file=tmp_path / "nope")
    with pytest.raises(SecretFileError, match="nope"):
        milvus_kwargs(missing)


def test_redis_acl_user_password_file_and_tls(tmp_path: Path) -> None:
    f = _file(tmp_path)
    s = RedisSettings(url="rediss://redis:6379/0", username="lfr-matcher", password_file=f, ssl_ca_file=tmp_path / "ca")
    kw = redis_kwargs(s)
    assert kw["username"] == "lfr-matcher" and kw["password"] == SECRET
    assert kw["ssl_ca_certs"] == str(tmp_path / "ca") and kw["ssl_cert_reqs"] == "required"
    assert "ssl_ca_certs" not in redis_kwargs(RedisSettings())  # plain redis:// takes no TLS options
    assert SECRET not in repr(s)


def test_milvus_token_file(tmp_path: Path) -> None:
    s = MilvusSettings(uri="https://milvus:19530", token_file=_file(tmp_path, "lfr-matcher:" + SECRET))
    kw = milvus_kwargs(s)
    assert kw["token"] == "lfr-matcher:" + SECRET
    assert SECRET not in repr(s)


def test_scram_password_files_are_private_and_stable(tmp_path: Path) -> None:
    files = kafka_scram.ensure_password_files(tmp_path, ("matcher", "ingest"))
    assert set(files) == {"lfr-matcher", "lfr-ingest"}
    first = {u: f.read_text() for u, f in files.items()}
    for f in files.values():
        assert f.stat().st_mode & 0o777 == 0o600 and len(f.read_text().strip()) >= 40
    assert files["lfr-matcher"].parent.stat().st_mode & 0o777 == 0o700
    again = kafka_scram.ensure_password_files(tmp_path, ("matcher", "ingest"))
    assert {u: f.read_text() for u, f in again.items()} == first  # not regenerated
    assert first["lfr-matcher"] != first["lfr-ingest"]


def test_scram_credential_is_rfc5802_hi() -> None:
    import hashlib
    import hmac

    c = kafka_scram.credential("u", "pencil", iterations=4096, salt=b"salt")
    # Hi(password, salt, i) = U1 ^ ... ^ Ui with U1 = HMAC(password, salt || INT(1))
    u = hmac.new(b"pencil", b"salt" + b"\x00\x00\x00\x01", hashlib.sha512).digest()
    acc = bytearray(u)
    for _ in range(4095):
        u = hmac.new(b"pencil", u, hashlib.sha512).digest()
        acc = bytearray(a ^ b for a, b in zip(acc, u))
    assert c.salted_password == bytes(acc) and "salted" not in repr(c)
    env = kafka_scram.scram_env(Path("/state"), "matcher")
    assert env["LFR_KAFKA__SASL_PASSWORD_FILE"].endswith("lfr-matcher.password")
    assert env["LFR_KAFKA__BOOTSTRAP"] == "127.0.0.1:9094"
