"""Security pieces in-process: the dev PKI (idempotent), mTLS identities and roles
from certificates, default deny, console delegation trusted only from the console,
officer binding, integrator deployment scope, device tokens, rate limits, refusals hooked."""

from __future__ import annotations

import grpc
import pytest
from lfr.v1 import alerts_pb2, alerts_pb2_grpc, officers_pb2

from services.common import roles, tokens
from services.common.grpc_client import ClientTls, aio_channel
from services.common.grpc_server import GrpcServer, RateLimiter, current_identity
from services.common.pki import CertPaths, identity_from_pem, init
from services.common.settings import GrpcLimitSettings, GrpcServerSettings


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> CertPaths:
    paths = CertPaths(tmp_path_factory.mktemp("certs"))
    first = init(paths)
    assert "ca" in first["created"] and not first["kept"]
    again = init(paths)
    assert not again["created"], again  # idempotent
    assert oct(paths.ca_key.stat().st_mode & 0o777) == "0o600"
    return paths


def test_identities_in_certificates(pki: CertPaths) -> None:
    integ = identity_from_pem(pki.client("integrator")[0].read_bytes())
    assert integ.principal == "integrator" and integ.roles == {"integrator"} and integ.deployments == {"demo"}
    assert identity_from_pem(pki.client("console")[0].read_bytes()).roles == {"console"}


def test_table_default_deny_and_bindings() -> None:
    d = roles.decide
    assert not d("/lfr.v1.WatchlistService/Unknown", "dev", frozenset(roles.ALL_ROLES), frozenset()).allowed
    assert d("/lfr.v1.WatchlistService/CloseWatchlist", "m", frozenset({"watchlist_manager"}), frozenset()).allowed
    assert not d("/lfr.v1.WatchlistService/CloseWatchlist", "o", frozenset({"operator"}), frozenset()).allowed
    sub = "/lfr.v1.DeviceService/Subscribe"
    mine = officers_pb2.SubscribeRequest(device_id="officer-1-device", officer_id="officer-1")
    theirs = officers_pb2.SubscribeRequest(device_id="officer-2-device", officer_id="officer-2")
    assert d(sub, "officer-1", frozenset({"officer"}), frozenset(), mine).allowed
    assert not d(sub, "officer-1", frozenset({"officer"}), frozenset(), theirs).allowed
    stream = "/lfr.v1.AlertService/StreamAlerts"
    scoped = frozenset({"demo"})
    assert d(stream, "i", frozenset({"integrator"}), scoped,
             alerts_pb2.StreamAlertsRequest(deployment_id="demo")).allowed
    assert not d(stream, "i", frozenset({"integrator"}), scoped, alerts_pb2.StreamAlertsRequest()).allowed
    assert not d(stream, "i", frozenset({"integrator"}), scoped,
                 alerts_pb2.StreamAlertsRequest(deployment_id="other")).allowed


def test_rate_limiter_token_bucket() -> None:
    now = [0.0]
    lim = RateLimiter(GrpcLimitSettings(rate_per_s=2, burst=3), clock=lambda: now[0])
    assert [lim.allow("a") for _ in range(4)] == [True, True, True, False]
    assert lim.allow("b")  # per caller
    now[0] += 0.5
    assert lim.allow("a") and not lim.allow("a")


def test_device_tokens() -> None:
    key = b"k" * 32
    tok = tokens.issue(key, "officer-1", ["officer"], ttl_s=60, now=1000)
    claims = tokens.verify(key, tok, now=1010)
    assert claims.principal == "officer-1" and claims.roles == {"officer"}
    with pytest.raises(tokens.TokenError):
        tokens.verify(key, tok, now=2000)
    with pytest.raises(tokens.TokenError):
        tokens.verify(b"x" * 32, tok, now=1010)
    head, payload, sig = tok.split(".")
    with pytest.raises(tokens.TokenError):
        tokens.verify(key, f"{head}.{payload}x.{sig}", now=1010)


class Echo(alerts_pb2_grpc.AlertServiceServicer):
    async def StreamAlerts(self, request, context):  # noqa: N802
        ident = current_identity.get()
        yield alerts_pb2.Alert(alert_id=ident.principal, camera_id=ident.mechanism, zone=",".join(sorted(ident.roles)))


async def test_mtls_roles_delegation_and_refusals(pki: CertPaths) -> None:
    cert, key = pki.server("alerts")
    settings = GrpcServerSettings.model_validate({
        "tls": {"cert_file": cert, "key_file": key, "ca_file": pki.ca, "require_client_cert": True},
        "auth": {"require_authentication": True}, "limits": {"rate_per_s": 1, "burst": 50}}
    ).model_copy(update={"port": 0})
    refused: list[tuple[str, str, str]] = []

    async def on_refused(method: str, identity: object, code: str, reason: str, peer: str) -> None:
        refused.append((method, identity.principal, code))  # type: ignore[attr-defined]

    server = GrpcServer(settings, on_refused=on_refused)
    server.add(alerts_pb2_grpc.add_AlertServiceServicer_to_server, Echo(), "lfr.v1.AlertService")
    await server.start()
    target = f"localhost:{server.port}"

    async def first(principal: str | None, md: tuple = (), req: alerts_pb2.StreamAlertsRequest | None = None):
        tls = ClientTls.for_identity(principal, pki) if principal else ClientTls(pki.ca.read_bytes(), None, None)
        async with aio_channel(target, tls=tls) as ch:
            async for a in alerts_pb2_grpc.AlertServiceStub(ch).StreamAlerts(
                    req or alerts_pb2.StreamAlertsRequest(), metadata=md, timeout=5):
                return a
        raise AssertionError("nothing streamed")

    try:
        a = await first("operator")
        assert (a.alert_id, a.camera_id, a.zone) == ("operator", "mtls", "operator")
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await first("auditor")
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert refused[-1] == ("/lfr.v1.AlertService/StreamAlerts", "auditor", "PERMISSION_DENIED")
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await first(None)  # no client certificate: the handshake fails
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        # the console acts for a user: the user's roles decide
        user = (("lfr-on-behalf-of", "alice"), ("lfr-roles", "auditor"))
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await first("console", user)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and refused[-1][1] == "alice"
        a = await first("console", (("lfr-on-behalf-of", "bob"), ("lfr-roles", "operator,root")))
        assert (a.alert_id, a.camera_id, a.zone) == ("bob", "console", "operator")
        # ... but only from the console: the auditor cannot claim to be an operator
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await first("auditor", (("lfr-on-behalf-of", "bob"), ("lfr-roles", "operator")))
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED and refused[-1][1] == "auditor"
        # integrator: its own deployment only
        assert (await first("integrator", req=alerts_pb2.StreamAlertsRequest(deployment_id="demo"))).alert_id
        with pytest.raises(grpc.aio.AioRpcError) as e:
            await first("integrator", req=alerts_pb2.StreamAlertsRequest(deployment_id="elsewhere"))
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # rate limit per caller (burst 50, 1/s)
        codes = []
        for _ in range(60):
            try:
                await first("supervisor")
                codes.append("OK")
            except grpc.aio.AioRpcError as err:
                codes.append(err.code().name)
        assert codes.count("RESOURCE_EXHAUSTED") >= 9 and codes[0] == "OK"
        assert ("/lfr.v1.AlertService/StreamAlerts", "supervisor", "RESOURCE_EXHAUSTED") in refused
    finally:
        await server.stop(0)


@pytest.mark.parametrize("size", [0, 1, tokens.MIN_KEY_BYTES - 1])
def test_short_device_token_keys_sign_and_verify_nothing(size: int, tmp_path) -> None:
    from services.common.errors import SetupError
    from services.common.grpc_server import AuthInterceptor
    from services.common.settings import GrpcAuthSettings

    short = b"k" * size
    with pytest.raises(tokens.TokenError, match=f"at least {tokens.MIN_KEY_BYTES}"):
        tokens.issue(short, "rogue", ["supervisor"])
    # a token HMAC-signed with the short key by hand (what an attacker holding an empty key file would send)
    forged = tokens.issue(b"k" * 32, "rogue", ["supervisor"])
    head, payload, _ = forged.split(".")
    forged = f"{head}.{payload}.{tokens._sign(short, payload)}"
    with pytest.raises(tokens.TokenError, match="too short|at least"):
        tokens.verify(short, forged)
    key_file = tmp_path / "device-token.key"
    key_file.write_bytes(short + b"\n")
    with pytest.raises(SetupError, match=f"device token key {key_file} is too short: the token key is {size} bytes"):
        AuthInterceptor(GrpcAuthSettings(device_token_key_file=key_file))
    key_file.write_bytes(b"k" * tokens.MIN_KEY_BYTES)
    AuthInterceptor(GrpcAuthSettings(device_token_key_file=key_file))


def test_the_dev_pki_key_is_long_enough(pki: CertPaths) -> None:
    assert len(tokens.check_key(pki.device_token_key.read_bytes().strip())) >= tokens.MIN_KEY_BYTES
