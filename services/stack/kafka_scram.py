"""SCRAM-SHA-512 users of the local Kafka broker: one per service.

The local broker has a ``SASL_PLAINTEXT`` listener on 127.0.0.1:9094 (next to the open
PLAINTEXT 9092 that the rest of the local stack keeps using). Each service has its own SCRAM
user (``lfr-<service>``, the names of the production KafkaUsers in k8s/base/kafka/users.yaml)
whose password is generated once into ``<state>/secrets/kafka/<user>.password`` (directory
0700, file 0600; never in code, argv or logs). A service points ``LFR_KAFKA__SASL_PASSWORD_FILE``
at its file (:func:`scram_env`).

The credentials are written into the cluster metadata with the AlterUserScramCredentials API
(KIP-554) over the PLAINTEXT listener, on every ``lfr stack up`` of Kafka: an upsert, so it works
the same on a freshly formatted data dir (CI) and an existing one, and a password file that was
deleted is regenerated and registered. (``kafka-storage format --add-scram`` would only cover a
fresh data dir and puts the password on a command line.) The client computes the salted password
(PBKDF2-HMAC-SHA-512, RFC 5802 ``Hi``) so the password itself never travels.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import CompactArray, CompactBytes, CompactString, Int8, Int16, Int32, Schema, TaggedFields

SCRAM_PORT = 9094
MECHANISM = "SCRAM-SHA-512"
MECHANISM_ID = 2  # org.apache.kafka.clients.admin.ScramMechanism: SCRAM_SHA_256=1, SCRAM_SHA_512=2
ITERATIONS = 8192  # Kafka's minimum for SHA-512 is 4096
SERVICES = ("ingest", "recognizer", "matcher", "alerts", "watchlist", "officers", "audit")
PASSWORD_BYTES = 32


def user_name(service: str) -> str:
    return f"lfr-{service}"


def secrets_dir(state: Path) -> Path:
    return state / "secrets" / "kafka"


def password_file(state: Path, service: str) -> Path:
    return secrets_dir(state) / f"{user_name(service)}.password"


def ensure_password_files(state: Path, services: tuple[str, ...] = SERVICES) -> dict[str, Path]:
    """user -> its password file; missing files are generated (0600, created exclusively)."""
    d = secrets_dir(state)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    d.parent.chmod(0o700)
    out: dict[str, Path] = {}
    for service in services:
        f = password_file(state, service)
        if not f.is_file() or f.stat().st_size == 0:
            f.unlink(missing_ok=True)
            fd = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out_f:
                out_f.write(secrets.token_urlsafe(PASSWORD_BYTES) + "\n")
        os.chmod(f, 0o600)
        out[user_name(service)] = f
    return out


@dataclass(frozen=True)
class ScramCredential:
    user: str
    salt: bytes
    salted_password: bytes
    iterations: int = ITERATIONS

    def __repr__(self) -> str:  # never show the derived key
        return f"ScramCredential(user={self.user!r}, iterations={self.iterations})"


def credential(user: str, password: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> ScramCredential:
    """RFC 5802 SaltedPassword = Hi(password, salt, i) with HMAC-SHA-512 (what Kafka's ScramFormatter does)."""
    salt = salt if salt is not None else secrets.token_bytes(32)
    salted = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return ScramCredential(user, salt, salted, iterations)


# --- AlterUserScramCredentials v0 (API key 51, flexible) -------------------------------------------


class AlterUserScramCredentialsResponse_v0(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", CompactArray(("user", CompactString("utf-8")), ("error_code", Int16),
                                 ("error_message", CompactString("utf-8")), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields))),
        ("upsertions", CompactArray(("name", CompactString("utf-8")), ("mechanism", Int8), ("iterations", Int32),
                                    ("salt", CompactBytes), ("salted_password", CompactBytes),
                                    ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


_Struct: TypeAlias = AlterUserScramCredentialsRequest_v0


class AlterUserScramCredentialsRequest(Request[_Struct]):
    API_KEY = 51

    def __init__(self, upsertions: list[ScramCredential]) -> None:
        self._upsertions = upsertions

    def build(self, request_struct_class: type[_Struct]) -> _Struct:
        return request_struct_class(
            [], [(c.user, MECHANISM_ID, c.iterations, c.salt, c.salted_password, {}) for c in self._upsertions], {}
        )


class ScramError(RuntimeError):
    """The broker refused a SCRAM credential upsert."""


async def admin_request(bootstrap: str, request: Any, client_id: str, timeout_s: float = 15.0) -> Any:
    """Send one admin API request (one the aiokafka admin client has no method for) and return the response."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000),
                                client_id=client_id)
    try:
        await admin.start()
        return await admin._send_request(request)
    finally:
        await admin.close()


async def upsert_users(bootstrap: str, files: dict[str, Path], timeout_s: float = 15.0) -> list[str]:
    """Register (or re-register) each user's SCRAM-SHA-512 credential from its password file; the users."""
    from services.common.settings import read_secret_file

    creds = [credential(user, read_secret_file(f).get_secret_value()) for user, f in sorted(files.items())]
    response = await admin_request(bootstrap, AlterUserScramCredentialsRequest(creds), "lfr-scram-setup", timeout_s)
    failed = [f"{user}: error {code} {msg or ''}".strip() for user, code, msg, _ in response.results if code != 0]
    if failed:
        raise ScramError("; ".join(failed))
    return [user for user, _, _, _ in response.results]


def scram_env(state: Path, service: str, host: str = "127.0.0.1", port: int = SCRAM_PORT) -> dict[str, str]:
    """Environment that points a service at the local SCRAM listener with its own user and password file."""
    return {
        "LFR_KAFKA__BOOTSTRAP": f"{host}:{port}",
        "LFR_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "LFR_KAFKA__SASL_MECHANISM": MECHANISM,
        "LFR_KAFKA__SASL_USERNAME": user_name(service),
        "LFR_KAFKA__SASL_PASSWORD_FILE": str(password_file(state, service)),
    }
