"""An asyncio gRPC server with health checking, reflection, TLS/mTLS and
per-call authentication.

- Health (``grpc.health.v1``): the overall status ``""`` and each added service
  start NOT_SERVING; the service runner flips them as dependencies come and go.
- Authentication runs on every call from day one (:class:`AuthInterceptor`):
  the caller's identity comes from the mTLS peer certificate's subject CN or from
  an ``authorization: Bearer <token>`` metadata entry, and is available to
  handlers through :data:`current_identity`. Roles are enforced later through the
  ``required_roles`` hook, which allows every call for now.
- Graceful shutdown (as in grpc's ``async_greeter_server_with_graceful_shutdown.py``):
  health goes NOT_SERVING, new calls are refused, in-flight calls get ``grace_s``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hmac
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from services.common.errors import SetupError
from services.common.settings import GrpcAuthSettings, GrpcServerSettings

log = logging.getLogger(__name__)

# methods anyone may call (probes, tooling)
OPEN_METHOD_PREFIXES: tuple[str, ...] = ("/grpc.health.v1.Health/", "/grpc.reflection.")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who is calling: ``principal`` is a certificate CN or a token's principal."""

    principal: str
    mechanism: str  # "mtls" | "token" | "anonymous"
    roles: frozenset[str] = frozenset()

    @property
    def authenticated(self) -> bool:
        return self.mechanism != "anonymous"


ANONYMOUS = Identity(principal="anonymous", mechanism="anonymous")
current_identity: contextvars.ContextVar[Identity] = contextvars.ContextVar("lfr_identity", default=ANONYMOUS)

# (full method name, identity) -> allowed. The security issue plugs role checks in here.
RoleCheck = Callable[[str, Identity], bool]


def allow_all(method: str, identity: Identity) -> bool:
    return True


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates each call, sets :data:`current_identity`, applies the role hook."""

    def __init__(self, auth: GrpcAuthSettings, required_roles: RoleCheck = allow_all) -> None:
        self._auth = auth
        self._required_roles = required_roles

    def identify(self, context: grpc.aio.ServicerContext) -> Identity | None:
        """The caller's identity, ANONYMOUS without credentials, None for a bad token."""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                token = value.decode() if isinstance(value, bytes) else value
                scheme, _, secret = token.partition(" ")
                if scheme.lower() != "bearer" or not secret:
                    return None
                for principal, expected in self._auth.static_tokens.items():
                    if hmac.compare_digest(secret.encode(), expected.get_secret_value().encode()):
                        return Identity(principal=principal, mechanism="token")
                return None
        auth_ctx = context.auth_context() or {}
        cns = auth_ctx.get("x509_common_name")
        if cns:
            return Identity(principal=cns[0].decode(), mechanism="mtls")
        return ANONYMOUS

    async def admit(self, method: str, context: grpc.aio.ServicerContext) -> None:
        identity = self.identify(context)
        if identity is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
            return
        if self._auth.require_authentication and not identity.authenticated:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "authentication required (mTLS or bearer token)")
        if not self._required_roles(method, identity):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"{identity.principal} may not call {method}")
        current_identity.set(identity)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        return _wrap(handler, lambda context: self.admit(method, context))


def _wrap(handler: grpc.RpcMethodHandler, admit: Callable[[Any], Awaitable[None]]) -> grpc.RpcMethodHandler:
    """The same handler, with ``admit(context)`` run first in the call's own task."""
    serde = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }

    async def unary(request: Any, context: Any) -> Any:
        await admit(context)
        behavior = handler.unary_unary if handler.unary_unary else handler.stream_unary
        return await behavior(request, context)

    async def streaming(request: Any, context: Any) -> None:
        await admit(context)
        behavior = handler.unary_stream if handler.unary_stream else handler.stream_stream
        result = behavior(request, context)
        if inspect.isasyncgen(result):
            async for response in result:
                await context.write(response)
        else:  # the servicer writes with context.write itself
            await result

    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary, **serde)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary, **serde)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming, **serde)
    return grpc.stream_stream_rpc_method_handler(streaming, **serde)


def server_credentials(settings: GrpcServerSettings) -> grpc.ServerCredentials | None:
    tls = settings.tls
    if not tls.enabled:
        return None
    assert tls.cert_file is not None and tls.key_file is not None
    try:
        key, cert = tls.key_file.read_bytes(), tls.cert_file.read_bytes()
        ca = tls.ca_file.read_bytes() if tls.ca_file else None
    except OSError as e:
        raise SetupError(f"cannot read gRPC TLS file {e.filename}: {e.strerror}", "check LFR_GRPC__TLS__* paths") from e
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=tls.require_client_cert)


class GrpcServer:
    """Build with settings, ``add`` servicers, ``start``, flip health, ``stop``."""

    def __init__(self, settings: GrpcServerSettings, required_roles: RoleCheck = allow_all) -> None:
        self.settings = settings
        size = settings.max_message_bytes
        self.server = grpc.aio.server(
            interceptors=[AuthInterceptor(settings.auth, required_roles)],
            options=[("grpc.max_send_message_length", size), ("grpc.max_receive_message_length", size)],
        )
        self.health = health_aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.service_names: list[str] = [""]
        self.port: int | None = None

    def add(self, add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: Any, service_name: str) -> None:
        """Register a servicer, e.g. ``add(alerts_pb2_grpc.add_AlertServiceServicer_to_server, s, "lfr.v1.AlertService")``."""
        add_to_server(servicer, self.server)
        self.service_names.append(service_name)

    async def set_serving(self, serving: bool, service: str | None = None) -> None:
        """Set one service's health (or, with None, the overall status and every service's)."""
        status = SERVING if serving else NOT_SERVING
        for name in self.service_names if service is None else [service]:
            await self.health.set(name, status)

    async def start(self) -> int:
        from grpc_reflection.v1alpha import reflection

        for name in self.service_names:
            await self.health.set(name, NOT_SERVING)
        reflection.enable_server_reflection(
            [*filter(None, self.service_names), health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            self.server,
        )
        address = f"{self.settings.host}:{self.settings.port}"
        creds = server_credentials(self.settings)
        try:
            port = self.server.add_secure_port(address, creds) if creds else self.server.add_insecure_port(address)
        except RuntimeError as e:
            port = 0
            log.debug("bind failed", extra={"error": str(e)})
        if not port:
            raise SetupError(f"cannot listen for gRPC on {address} (port taken?)", "stop what holds the port or set LFR_GRPC__PORT")
        await self.server.start()
        self.port = port
        log.info("grpc listening", extra={"address": f"{self.settings.host}:{port}", "tls": creds is not None})
        return port

    async def stop(self, grace: float | None = None) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.grace_s if grace is None else grace)
