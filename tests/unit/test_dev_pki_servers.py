"""A service started by hand (``python -m services.<name>``) where the development PKI exists serves mTLS
with it, as ``lfr up`` runs it (services.common.service.with_dev_pki); explicit settings win; without the
PKI nothing changes. A client whose call never reached the server says why: a TLS mismatch, or nothing
listening (services.common.grpc_client.unreachable)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from services.common.grpc_client import ClientTls, aio_channel, cert_paths, unreachable
from services.common.pki import init
from services.common.service import with_dev_pki
from services.console import config as console_config
from services.console.config import ConsoleSettings
from services.watchlist.config import WatchlistSettings


@pytest.fixture()
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("LFR_STATE", str(tmp_path))
    for key in ("LFR_GRPC__TLS__CERT_FILE", "LFR_GRPC__TLS__KEY_FILE", "LFR_GRPC__TLS__CA_FILE",
                "LFR_GRPC__TLS__REQUIRE_CLIENT_CERT", "LFR_GRPC__AUTH__REQUIRE_AUTHENTICATION",
                "LFR_GRPC__DEV_PKI", "LFR_CONFIG", "LFR_CLIENT__INSECURE", "LFR_CONSOLE__PLATFORM__CA_FILE",
                "LFR_CONSOLE__PLATFORM__CERT_FILE", "LFR_CONSOLE__PLATFORM__KEY_FILE"):
        monkeypatch.delenv(key, raising=False)
    yield tmp_path


def test_dev_pki_makes_a_hand_started_server_mtls(state: Path) -> None:
    init(cert_paths())
    s = with_dev_pki("watchlist", WatchlistSettings())
    cert, key = cert_paths().server("watchlist")
    assert s.grpc.tls.cert_file == cert and s.grpc.tls.key_file == key and s.grpc.tls.ca_file == cert_paths().ca
    assert s.grpc.tls.require_client_cert and s.grpc.auth.require_authentication
    assert s.grpc.auth.device_token_key_file == cert_paths().device_token_key
    assert s.grpc.port == 50055  # the rest untouched


def test_without_the_pki_nothing_changes(state: Path) -> None:
    s = with_dev_pki("watchlist", WatchlistSettings())
    assert not s.grpc.tls.enabled and not s.grpc.auth.require_authentication


def test_explicit_settings_win(state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    init(cert_paths())
    monkeypatch.setenv("LFR_GRPC__DEV_PKI", "false")
    assert not with_dev_pki("watchlist", WatchlistSettings()).grpc.tls.enabled
    monkeypatch.delenv("LFR_GRPC__DEV_PKI")
    # any grpc.tls setting: the operator configures TLS, the dev PKI stays out of it
    monkeypatch.setenv("LFR_GRPC__TLS__REQUIRE_CLIENT_CERT", "false")
    assert not with_dev_pki("watchlist", WatchlistSettings()).grpc.tls.enabled
    monkeypatch.delenv("LFR_GRPC__TLS__REQUIRE_CLIENT_CERT")
    cert, key = cert_paths().server("matcher")
    monkeypatch.setenv("LFR_GRPC__TLS__CERT_FILE", str(cert))
    monkeypatch.setenv("LFR_GRPC__TLS__KEY_FILE", str(key))
    assert with_dev_pki("watchlist", WatchlistSettings()).grpc.tls.cert_file == cert
    monkeypatch.delenv("LFR_GRPC__TLS__CERT_FILE")
    monkeypatch.delenv("LFR_GRPC__TLS__KEY_FILE")
    # auth given explicitly is kept while the dev TLS applies
    monkeypatch.setenv("LFR_GRPC__AUTH__REQUIRE_AUTHENTICATION", "false")
    s = with_dev_pki("watchlist", WatchlistSettings())
    assert s.grpc.tls.enabled and not s.grpc.auth.require_authentication


def test_a_hand_started_console_calls_the_platform_over_the_dev_pki(state: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    assert console_config.with_dev_pki(ConsoleSettings()).console.platform.ca_file is None  # no PKI: unchanged
    init(cert_paths())
    platform = console_config.with_dev_pki(ConsoleSettings()).console.platform
    cert, key = cert_paths().client("console")
    assert (platform.ca_file, platform.cert_file, platform.key_file) == (cert_paths().ca, cert, key)
    own = state / "ca.pem"
    own.write_bytes(cert_paths().ca.read_bytes())
    monkeypatch.setenv("LFR_CONSOLE__PLATFORM__CA_FILE", str(own))  # explicit settings win
    platform = console_config.with_dev_pki(ConsoleSettings()).console.platform
    assert platform.ca_file == own and platform.cert_file is None
    monkeypatch.delenv("LFR_CONSOLE__PLATFORM__CA_FILE")
    monkeypatch.setenv("LFR_GRPC__DEV_PKI", "false")
    assert console_config.with_dev_pki(ConsoleSettings()).console.platform.ca_file is None


async def _server(tls: bool) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    if tls:
        paths = cert_paths()
        cert, key = paths.server("watchlist")
        creds = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())],
                                            root_certificates=paths.ca.read_bytes(), require_client_auth=True)
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def _error(port: int, tls: ClientTls | bool) -> grpc.aio.AioRpcError:
    async with aio_channel(f"127.0.0.1:{port}", tls=tls) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return info.value


def test_a_failed_handshake_is_named_a_tls_mismatch(state: Path) -> None:
    init(cert_paths())
    start = "start it (python -m services.watchlist) or pass --address"

    async def go() -> None:
        server, port = await _server(tls=False)  # plaintext server, the CLI's mTLS channel
        try:
            err = unreachable(await _error(port, True), "watchlist service", f"127.0.0.1:{port}", start)
        finally:
            await server.stop(0)
        assert err is not None and "TLS mismatch with the watchlist service" in err.cause, err
        assert "python -m services.watchlist" not in err.fix and "PKI" in err.fix, err.fix

        server, port = await _server(tls=True)  # mTLS server, a plaintext client
        try:
            err = unreachable(await _error(port, False), "watchlist service", f"127.0.0.1:{port}", start)
        finally:
            await server.stop(0)
        assert err is not None and "TLS mismatch" in err.cause, err

        server, port = await _server(tls=False)
        await server.stop(0)  # nothing listens there now
        err = unreachable(await _error(port, True), "watchlist service", f"127.0.0.1:{port}", start)
        assert err is not None and "cannot reach the watchlist service" in err.cause and err.fix == start, err
        assert "TLS" not in err.cause

    asyncio.run(go())


def test_an_answer_is_not_unreachable(state: Path) -> None:
    async def go() -> None:
        server = grpc.aio.server()
        port = server.add_insecure_port("127.0.0.1:0")  # no Health servicer: UNIMPLEMENTED, the server answered
        await server.start()
        try:
            err = await _error(port, False)
        finally:
            await server.stop(0)
        assert err.code() == grpc.StatusCode.UNIMPLEMENTED
        assert unreachable(err, "watchlist service", f"127.0.0.1:{port}", "start it") is None

    asyncio.run(go())
