"""GrpcServer in-process on a free port: health setters, reflection, the auth
interceptor (identity context var, bad token, required authentication, role hook)."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from lfr.v1 import alerts_pb2, alerts_pb2_grpc

from services.common.grpc_server import GrpcServer, Identity, allow_all, current_identity
from services.common.roles import Decision
from services.common.settings import GrpcAuthSettings, GrpcServerSettings


class EchoAlerts(alerts_pb2_grpc.AlertServiceServicer):
    """Streams one alert whose alert_id is the caller's principal."""

    async def StreamAlerts(self, request, context):  # noqa: N802
        identity = current_identity.get()
        yield alerts_pb2.Alert(alert_id=identity.principal, camera_id=identity.mechanism)


async def _server(auth: GrpcAuthSettings, roles=None) -> GrpcServer:
    # port 0 (a free port) is below the settings' bound, so set it past validation
    settings = GrpcServerSettings(auth=auth).model_copy(update={"port": 0})
    server = GrpcServer(settings, required_roles=roles or allow_all)
    server.add(alerts_pb2_grpc.add_AlertServiceServicer_to_server, EchoAlerts(), "lfr.v1.AlertService")
    await server.start()
    return server


async def _first(channel: grpc.aio.Channel, metadata=None) -> alerts_pb2.Alert:
    stub = alerts_pb2_grpc.AlertServiceStub(channel)
    async for alert in stub.StreamAlerts(alerts_pb2.StreamAlertsRequest(), metadata=metadata, timeout=5):
        return alert
    raise AssertionError("no alert")


async def test_health_identity_and_tokens() -> None:
    server = await _server(GrpcAuthSettings(static_tokens={"console": "tok-1"}))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            req = health_pb2.HealthCheckRequest(service="lfr.v1.AlertService")
            assert (await health.Check(req)).status == health_pb2.HealthCheckResponse.NOT_SERVING
            await server.set_serving(True)
            assert (await health.Check(req)).status == health_pb2.HealthCheckResponse.SERVING
            await server.set_serving(False, "lfr.v1.AlertService")
            assert (await health.Check(req)).status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert ((await health.Check(health_pb2.HealthCheckRequest())).status
                    == health_pb2.HealthCheckResponse.SERVING)

            anon = await _first(ch)
            assert (anon.alert_id, anon.camera_id) == ("anonymous", "anonymous")
            tok = await _first(ch, metadata=(("authorization", "Bearer tok-1"),))
            assert (tok.alert_id, tok.camera_id) == ("console", "token")
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await _first(ch, metadata=(("authorization", "Bearer wrong"),))
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.stop(0)


async def test_required_authentication_and_role_hook() -> None:
    def only_console(method: str, identity: Identity, request: object) -> Decision:
        return Decision(identity.principal == "console", "test")

    server = await _server(
        GrpcAuthSettings(require_authentication=True, static_tokens={"console": "a", "cam": "b"}), roles=only_console
    )
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await _first(ch)
            assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as e:
                await _first(ch, metadata=(("authorization", "Bearer b"),))
            assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert (await _first(ch, metadata=(("authorization", "Bearer a"),))).alert_id == "console"
            # health stays open to probes without credentials
            reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.NOT_SERVING

            from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            req = reflection_pb2.ServerReflectionRequest(list_services="")
            async for resp in stub.ServerReflectionInfo(iter([req])):
                names = {s.name for s in resp.list_services_response.service}
                break
            assert {"lfr.v1.AlertService", "grpc.health.v1.Health"} <= names
    finally:
        await server.stop(0)


async def test_oversized_request_is_refused_counted_and_the_server_keeps_serving() -> None:
    refusals: list[tuple[str, str, str]] = []

    async def on_refused(method: str, identity: Identity, code: str, reason: str, peer: str) -> None:
        refusals.append((method, code, reason))

    settings = GrpcServerSettings(max_message_bytes=1024 * 1024).model_copy(update={"port": 0})
    server = GrpcServer(settings, required_roles=allow_all, on_refused=on_refused)
    server.add(alerts_pb2_grpc.add_AlertServiceServicer_to_server, EchoAlerts(), "lfr.v1.AlertService")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}",
                                             options=[("grpc.max_send_message_length", 8 * 1024 * 1024)]) as ch:
            stub = alerts_pb2_grpc.AlertServiceStub(ch)
            big = alerts_pb2.StreamAlertsRequest(deployment_id="x" * (1536 * 1024))  # 1.5 MiB > 1 MiB
            with pytest.raises(grpc.aio.AioRpcError) as e:
                async for _ in stub.StreamAlerts(big, timeout=5):
                    pass
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "over the limit of 1048576 bytes" in (e.value.details() or "")
            assert refusals == [("/lfr.v1.AlertService/StreamAlerts", "RESOURCE_EXHAUSTED", "message too large")]
            huge = alerts_pb2.StreamAlertsRequest(deployment_id="x" * (3 * 1024 * 1024))  # over core's 2x backstop
            with pytest.raises(grpc.aio.AioRpcError) as e:
                async for _ in stub.StreamAlerts(huge, timeout=5):
                    pass
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert len(refusals) == 1  # refused by gRPC core before our code: not counted (documented)
            assert (await _first(ch)).alert_id == "anonymous"  # still serving
    finally:
        await server.stop(0)


async def test_idle_stream_survives_client_keepalive_pings() -> None:
    """A device's alert stream with no alerts for a while: the client's keepalive pings must not get
    the stream dropped (GOAWAY too_many_pings, gRPC core's default policy for pings without data)."""
    import asyncio

    class Quiet(alerts_pb2_grpc.AlertServiceServicer):
        async def StreamAlerts(self, request, context):  # noqa: N802
            await asyncio.sleep(7)
            yield alerts_pb2.Alert(alert_id="after-the-quiet")

    settings = GrpcServerSettings(min_client_ping_interval_s=1).model_copy(update={"port": 0})
    server = GrpcServer(settings, required_roles=allow_all)
    server.add(alerts_pb2_grpc.add_AlertServiceServicer_to_server, Quiet(), "lfr.v1.AlertService")
    await server.start()
    try:
        options = [("grpc.keepalive_time_ms", 1200), ("grpc.keepalive_timeout_ms", 5000),
                   ("grpc.http2.max_pings_without_data", 0)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=options) as ch:
            stub = alerts_pb2_grpc.AlertServiceStub(ch)
            got = [a.alert_id async for a in stub.StreamAlerts(alerts_pb2.StreamAlertsRequest(), timeout=20)]
            assert got == ["after-the-quiet"]
    finally:
        await server.stop(0)
