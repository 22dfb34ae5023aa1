"""How every caller builds its gRPC channel (CLI, demo, console, launcher, tests):
one place, so TLS, client certificates and limits are the same everywhere.

:class:`ClientSettings` (env ``LFR_CLIENT__*``): ``ca_file``/``cert_file``/``key_file``
name the credentials explicitly; otherwise, when the development PKI exists
(``<state>/certs``, made by ``lfr certs init``), the channel uses mTLS with the
client certificate of ``identity`` (default ``dev``), and without it plaintext
(a server started without TLS). ``LFR_CLIENT__INSECURE=true`` forces plaintext.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import grpc
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.errors import SetupError
from services.common.paths import REPO_ROOT
from services.common.pki import CertPaths, default_paths

MAX_MESSAGE = 16 * 1024 * 1024


class ClientSettings(BaseSettings):
    """The CLI's and tools' client credentials (``LFR_CLIENT__IDENTITY=auditor`` ...)."""

    model_config = SettingsConfigDict(env_prefix="LFR_CLIENT__", extra="forbid", frozen=True)

    identity: str = Field("dev", min_length=1, description="client certificate under <state>/certs/client/ to use")
    ca_file: Path | None = Field(None, description="CA bundle of the servers (overrides the dev PKI)")
    cert_file: Path | None = Field(None, description="client certificate (PEM)")
    key_file: Path | None = Field(None, description="client private key (PEM)")
    token_file: Path | None = Field(None, description="bearer token (file) sent as `authorization` (device tokens)")
    insecure: bool = Field(False, description="plaintext even where the dev PKI exists (a server without TLS)")
    max_message_bytes: int = Field(MAX_MESSAGE, ge=1024 * 1024, le=256 * 1024 * 1024, description="max message size")


def state_dir() -> Path:
    return Path(os.environ.get("LFR_STATE", REPO_ROOT / ".lfr"))


def cert_paths() -> CertPaths:
    return default_paths(state_dir())


@dataclasses.dataclass(frozen=True)
class ClientTls:
    ca: bytes
    cert: bytes | None
    key: bytes | None

    @classmethod
    def for_identity(cls, principal: str, paths: CertPaths | None = None) -> "ClientTls":
        paths = paths or cert_paths()
        cert, key = paths.client(principal)
        return cls(paths.ca.read_bytes(), cert.read_bytes(), key.read_bytes())

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca, private_key=self.key,
                                            certificate_chain=self.cert)


def resolve(identity: str | None = None, settings: ClientSettings | None = None) -> ClientTls | None:
    """The TLS material a channel should use, None for plaintext. The identity: ``LFR_CLIENT__IDENTITY``
    when set, else ``identity`` when the dev PKI has a certificate for it (an officer's own), else ``dev``."""
    s = settings or ClientSettings()
    if s.insecure:
        return None
    if s.ca_file is not None:
        return ClientTls(s.ca_file.read_bytes(), s.cert_file.read_bytes() if s.cert_file else None,
                         s.key_file.read_bytes() if s.key_file else None)
    paths = cert_paths()
    if identity and "identity" not in s.model_fields_set and paths.ca_key.is_file() \
            and not paths.client(identity)[0].is_file():
        from services.common.pki import ensure_officer

        ensure_officer(paths, identity)  # local dev CA only: an officer of a demo/test acts as themselves
    if "identity" in s.model_fields_set or not identity or not paths.client(identity)[0].is_file():
        identity = None
    principal = identity or s.identity
    if paths.ca.is_file() and paths.client(principal)[0].is_file():
        return ClientTls.for_identity(principal, paths)
    return None


def _options(max_message: int) -> list[tuple[str, Any]]:
    return [("grpc.max_receive_message_length", max_message), ("grpc.max_send_message_length", max_message),
            ("grpc.keepalive_time_ms", 30_000)]


def aio_channel(target: str, identity: str | None = None, tls: ClientTls | None | bool = True,
                settings: ClientSettings | None = None) -> grpc.aio.Channel:
    """An asyncio channel. ``tls``: True = resolve (explicit settings, else the dev PKI for ``identity``);
    a :class:`ClientTls`; or False/None = plaintext."""
    s = settings or ClientSettings()
    material = resolve(identity, s) if tls is True else (tls or None)
    if material is None:
        return grpc.aio.insecure_channel(target, options=_options(s.max_message_bytes))
    return grpc.aio.secure_channel(target, material.credentials(), options=_options(s.max_message_bytes))


def sync_channel(target: str, identity: str | None = None, tls: ClientTls | None | bool = True,
                 settings: ClientSettings | None = None) -> grpc.Channel:
    """A blocking channel (same rules as :func:`aio_channel`)."""
    s = settings or ClientSettings()
    material = resolve(identity, s) if tls is True else (tls or None)
    if material is None:
        return grpc.insecure_channel(target, options=_options(s.max_message_bytes))
    return grpc.secure_channel(target, material.credentials(), options=_options(s.max_message_bytes))


_TLS_FAILURE = ("handshake", "ssl_error", "ssl routines", "certificate", "tsi_")


def unreachable(error: grpc.RpcError, what: str, address: str, start: str) -> SetupError | None:
    """The :class:`SetupError` for a call that never reached ``what`` at ``address`` (UNAVAILABLE while
    connecting), naming why: a TLS mismatch (the handshake failed, or the server closed the connection at
    once: it expects TLS and got plaintext) or nothing listening (``start`` says how to start it).
    None for any other error (the server answered)."""
    if error.code() != grpc.StatusCode.UNAVAILABLE:
        return None
    details = error.details() or ""
    low = details.lower()
    if any(marker in low for marker in _TLS_FAILURE):
        return SetupError(
            f"TLS mismatch with the {what} at {address}: it is listening but the TLS handshake failed ({details})",
            "run the server and this client with the same PKI: a server started by hand picks up the development "
            "PKI (.lfr/certs) unless LFR_GRPC__TLS__* or LFR_GRPC__DEV_PKI=false say otherwise; restart it, or give "
            "this client the server's CA and certificate (LFR_CLIENT__CA_FILE, LFR_CLIENT__CERT_FILE, "
            "LFR_CLIENT__KEY_FILE)")
    if "socket closed" in low or "connection reset" in low:
        return SetupError(
            f"TLS mismatch with the {what} at {address}: it closed the connection before answering, as a TLS "
            f"server does to a plaintext client ({details})",
            "drop LFR_CLIENT__INSECURE and let this client use the development PKI (lfr certs init), or give it "
            "the server's CA (LFR_CLIENT__CA_FILE)")
    if "failed to connect" in low or "connection refused" in low:
        return SetupError(f"cannot reach the {what} at {address}: nothing answers there ({details})", start)
    return None


def token_metadata(settings: ClientSettings | None = None) -> tuple[tuple[str, str], ...]:
    """``authorization: Bearer`` from ``token_file``, or nothing."""
    s = settings or ClientSettings()
    if s.token_file is None:
        return ()
    return (("authorization", f"Bearer {s.token_file.read_text().strip()}"),)


def server_env(service: str, paths: CertPaths | None = None, audit_topic: str | None = None) -> dict[str, str]:
    """The LFR_GRPC__* settings that put ``service``'s gRPC server on mTLS with the dev PKI."""
    paths = paths or cert_paths()
    cert, key = paths.server(service)
    env = {
        "LFR_GRPC__TLS__CERT_FILE": str(cert),
        "LFR_GRPC__TLS__KEY_FILE": str(key),
        "LFR_GRPC__TLS__CA_FILE": str(paths.ca),
        "LFR_GRPC__TLS__REQUIRE_CLIENT_CERT": "true",
        "LFR_GRPC__AUTH__REQUIRE_AUTHENTICATION": "true",
        "LFR_GRPC__AUTH__DEVICE_TOKEN_KEY_FILE": str(paths.device_token_key),
    }
    if audit_topic:
        env["LFR_GRPC__AUTH__AUDIT_TOPIC"] = audit_topic
    return env


def dev_server_env(service: str, audit_topic: str | None = None) -> dict[str, str]:
    """:func:`server_env` after making sure the dev PKI exists (``lfr certs init``)."""
    from services.common.pki import init

    paths = cert_paths()
    init(paths)
    return server_env(service, paths, audit_topic)


def console_env(paths: CertPaths | None = None) -> dict[str, str]:
    """The console's client credentials towards the platform (its own identity: ``console``)."""
    paths = paths or cert_paths()
    cert, key = paths.client("console")
    return {"LFR_CONSOLE__PLATFORM__CA_FILE": str(paths.ca), "LFR_CONSOLE__PLATFORM__CERT_FILE": str(cert),
            "LFR_CONSOLE__PLATFORM__KEY_FILE": str(key)}
