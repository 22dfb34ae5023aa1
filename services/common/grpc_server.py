"""An asyncio gRPC server with health checking, reflection, TLS/mTLS, per-call
authentication, roles (default deny) and per-caller rate limits.

- Health (``grpc.health.v1``): the overall status ``""`` and each added service
  start NOT_SERVING; the service runner flips them as dependencies come and go.
- Authentication (:class:`AuthInterceptor`): the caller's identity comes from the
  mTLS peer certificate (CN = principal, OUs = roles, see services/common/pki.py),
  from a signed device token or a static token in ``authorization: Bearer <token>``,
  and is available to handlers through :data:`current_identity`. A caller whose
  certificate carries the ``console`` role may act for a logged-in user
  (``lfr-on-behalf-of`` / ``lfr-roles`` metadata); from anyone else those entries
  are ignored.
- Roles: every call is checked against services/common/roles.py (default deny);
  a refusal answers PERMISSION_DENIED, is counted and audited (``on_refused``).
- Rate limits: a token bucket per principal (``grpc.limits``); RESOURCE_EXHAUSTED.
- Health and reflection stay open (probes, tooling).
- Graceful shutdown (as in grpc's ``async_greeter_server_with_graceful_shutdown.py``):
  health goes NOT_SERVING, new calls are refused, in-flight calls get ``grace_s``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hmac
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from services.common import roles as role_table
from services.common.errors import SetupError
from services.common.settings import GrpcAuthSettings, GrpcLimitSettings, GrpcServerSettings

log = logging.getLogger(__name__)

# methods anyone may call (probes, tooling)
OPEN_METHOD_PREFIXES: tuple[str, ...] = ("/grpc.health.v1.Health/", "/grpc.reflection.")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
ON_BEHALF_OF = "lfr-on-behalf-of"
ROLES_MD = "lfr-roles"
MAX_ROLES_MD_CHARS = 512


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who is calling: ``principal`` is a certificate CN, a token's subject or (via the
    console) the logged-in user; ``via`` names the intermediary (the console's principal)."""

    principal: str
    mechanism: str  # "mtls" | "token" | "device-token" | "console" | "anonymous"
    roles: frozenset[str] = frozenset()
    deployments: frozenset[str] = frozenset()
    via: str = ""

    @property
    def authenticated(self) -> bool:
        return self.mechanism != "anonymous"


ANONYMOUS = Identity(principal="anonymous", mechanism="anonymous")
current_identity: contextvars.ContextVar[Identity] = contextvars.ContextVar("lfr_identity", default=ANONYMOUS)

# (full method name, identity, request or None) -> decision. Default: the roles table.
RoleCheck = Callable[[str, Identity, Any], role_table.Decision]
# (method, identity, code name, reason, peer) -> awaited before the refusal is answered (audit, metrics);
# peer: who holds the connection (see :func:`peer_of`), whatever credentials the call carried
RefusalHook = Callable[[str, Identity, str, str, str], Awaitable[None]]


def table_check(method: str, identity: Identity, request: Any) -> role_table.Decision:
    return role_table.decide(method, identity.principal, identity.roles, identity.deployments, request)


def allow_all(method: str, identity: Identity, request: Any) -> role_table.Decision:
    """Tests of the interceptor's other parts only; never used by a service."""
    return role_table.Decision(True, "allow_all")


class RateLimiter:
    """A token bucket per principal: ``rate_per_s`` refill, ``burst`` capacity."""

    def __init__(self, limits: GrpcLimitSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, principal: str) -> bool:
        if self.limits.rate_per_s <= 0:
            return True
        now = self._clock()
        tokens, last = self._buckets.get(principal, (float(self.limits.burst), now))
        tokens = min(float(self.limits.burst), tokens + (now - last) * self.limits.rate_per_s)
        if tokens < 1.0:
            self._buckets[principal] = (tokens, now)
            return False
        self._buckets[principal] = (tokens - 1.0, now)
        if len(self._buckets) > 10_000:  # forget idle callers (bounded memory)
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
        return True


async def _no_hook(method: str, identity: Identity, code: str, reason: str, peer: str) -> None:
    return None


def peer_of(context: grpc.aio.ServicerContext) -> str:
    """Who holds the connection, for per-peer limits on refusals: ``cert:<CN>`` of the client
    certificate, else ``addr:<transport:host>`` (the port dropped: a reconnect is the same peer)."""
    names = (context.auth_context() or {}).get("x509_common_name")
    if names:
        return f"cert:{bytes(names[0]).decode(errors='replace')}"
    address = context.peer() or "unknown"
    return f"addr:{address.rsplit(':', 1)[0] if address.count(':') >= 2 else address}"


def _read_key(path: Path | None) -> bytes | None:
    """The device token key, refused at start when unreadable or too short to sign with."""
    from services.common import tokens

    if path is None:
        return None
    try:
        key = path.read_bytes().strip()
    except OSError as e:
        raise SetupError(f"cannot read the device token key {path}: {e.strerror}",
                         "run `lfr certs init` or fix LFR_GRPC__AUTH__DEVICE_TOKEN_KEY_FILE") from e
    try:
        return tokens.check_key(key)
    except tokens.TokenError as e:
        raise SetupError(f"device token key {path} is too short: {e}",
                         f"put at least {tokens.MIN_KEY_BYTES} random bytes in it (`lfr certs init` writes 64 "
                         "for a new file) or fix LFR_GRPC__AUTH__DEVICE_TOKEN_KEY_FILE") from None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates each call, sets :data:`current_identity`, applies roles and rate limits."""

    def __init__(self, auth: GrpcAuthSettings, required_roles: RoleCheck = table_check,
                 limits: GrpcLimitSettings | None = None, on_refused: RefusalHook = _no_hook,
                 max_request_bytes: int | None = None) -> None:
        self._auth = auth
        self.max_request_bytes = max_request_bytes
        self._required_roles = required_roles
        self._limiter = RateLimiter(limits or GrpcLimitSettings())
        self._device_key = _read_key(auth.device_token_key_file)
        self.on_refused = on_refused

    def _token_identity(self, secret: str) -> Identity | None:
        from services.common import tokens

        if self._device_key is not None and secret.startswith(tokens.PREFIX + "."):
            try:
                claims = tokens.verify(self._device_key, secret)
            except tokens.TokenError:
                return None
            return Identity(principal=claims.principal, mechanism="device-token",
                            roles=claims.roles & role_table.HUMAN_ROLES, deployments=claims.deployments)
        for principal, expected in self._auth.static_tokens.items():
            if hmac.compare_digest(secret.encode(), expected.get_secret_value().encode()):
                return Identity(principal=principal, mechanism="token",
                                roles=frozenset(self._auth.static_token_roles.get(principal, ())))
        return None

    def identify(self, context: grpc.aio.ServicerContext) -> Identity | None:
        """The caller's identity, ANONYMOUS without credentials, None for a bad token."""
        metadata = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in (context.invocation_metadata() or ())}
        identity = ANONYMOUS
        auth_ctx = context.auth_context() or {}
        pems = auth_ctx.get("x509_pem_cert")
        if pems:
            from services.common.pki import identity_from_pem

            ci = identity_from_pem(bytes(pems[0]))
            identity = Identity(principal=ci.principal, mechanism="mtls", roles=ci.roles, deployments=ci.deployments)
        elif auth_ctx.get("x509_common_name"):
            identity = Identity(principal=auth_ctx["x509_common_name"][0].decode(), mechanism="mtls")
        token = metadata.get("authorization")
        if token is not None:
            scheme, _, secret = token.partition(" ")
            if scheme.lower() != "bearer" or not secret:
                return None
            from_token = self._token_identity(secret)
            if from_token is None:
                return None
            if identity.mechanism != "mtls" or role_table.CONSOLE not in identity.roles:
                identity = from_token
        return self._delegate(identity, metadata)

    @staticmethod
    def _delegate(identity: Identity, metadata: dict[str, str]) -> Identity:
        """The console acting for a logged-in user: trusted only from a console identity."""
        user = metadata.get(ON_BEHALF_OF)
        if not user or role_table.CONSOLE not in identity.roles or user == identity.principal:
            return identity
        wanted = metadata.get(ROLES_MD, "")[:MAX_ROLES_MD_CHARS]
        roles = frozenset(r.strip() for r in wanted.split(",") if r.strip()) & role_table.HUMAN_ROLES
        return Identity(principal=user, mechanism="console", roles=roles, via=identity.principal)

    async def _refuse(self, context: grpc.aio.ServicerContext, method: str, identity: Identity,
                      code: grpc.StatusCode, reason: str, message: str) -> None:
        try:
            await self.on_refused(method, identity, code.name, reason, peer_of(context))
        except Exception as e:  # the refusal stands even when its audit failed; say so loudly
            log.error("refusal not audited", extra={"method": method, "principal": identity.principal,
                                                    "error": f"{type(e).__name__}: {e}"})
        await context.abort(code, message)

    async def admit(self, method: str, context: grpc.aio.ServicerContext, request: Any = None) -> None:
        identity = self.identify(context)
        if isinstance(request, Oversized):  # counted and audited like every refusal, whoever sent it
            await self._refuse(context, method, identity or ANONYMOUS, grpc.StatusCode.RESOURCE_EXHAUSTED,
                               "message too large", f"request of {request.size} bytes is over the limit of "
                               f"{request.limit} bytes (grpc.max_message_bytes)")
        if identity is None:
            await self._refuse(context, method, ANONYMOUS, grpc.StatusCode.UNAUTHENTICATED, "invalid credentials",
                               "invalid credentials")
            return
        if self._auth.require_authentication and not identity.authenticated:
            await self._refuse(context, method, identity, grpc.StatusCode.UNAUTHENTICATED, "no credentials",
                               "authentication required (mTLS client certificate or bearer token)")
        if not self._limiter.allow(f"{identity.via}/{identity.principal}" if identity.via else identity.principal):
            await self._refuse(context, method, identity, grpc.StatusCode.RESOURCE_EXHAUSTED, "rate limit",
                               f"rate limit: at most {self._limiter.limits.rate_per_s:g} calls/s "
                               f"(burst {self._limiter.limits.burst}) per caller")
        decision = self._required_roles(method, identity, request)
        if not decision.allowed:
            await self._refuse(context, method, identity, grpc.StatusCode.PERMISSION_DENIED, decision.reason,
                               f"{identity.principal} may not call {method}: {decision.reason}")
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
        return _wrap(handler, lambda context, request: self.admit(method, context, request), self.max_request_bytes)


@dataclasses.dataclass(frozen=True)
class Oversized:
    """Stands in for a request message over the limit, so that the refusal is counted and audited
    (gRPC core's own limit answers RESOURCE_EXHAUSTED before any of our code runs)."""

    size: int
    limit: int


def _wrap(handler: grpc.RpcMethodHandler, admit: Callable[[Any, Any], Awaitable[None]],
          max_request_bytes: int | None = None) -> grpc.RpcMethodHandler:
    """The same handler, with ``admit(context, request)`` run first in the call's own task
    (``request`` is None for client-streaming calls). A unary request over max_request_bytes
    reaches ``admit`` as :class:`Oversized` instead of being parsed."""
    deserializer = handler.request_deserializer
    if max_request_bytes is not None and (handler.unary_unary or handler.unary_stream):
        inner, limit = handler.request_deserializer, max_request_bytes

        def deserializer(data: bytes) -> Any:
            if len(data) > limit:
                return Oversized(len(data), limit)
            return inner(data) if inner is not None else data

    serde = {
        "request_deserializer": deserializer,
        "response_serializer": handler.response_serializer,
    }

    async def unary(request: Any, context: Any) -> Any:
        await admit(context, request if handler.unary_unary else None)
        behavior = handler.unary_unary if handler.unary_unary else handler.stream_unary
        return await behavior(request, context)

    async def streaming(request: Any, context: Any) -> None:
        await admit(context, request if handler.unary_stream else None)
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
    """Build with settings, ``add`` servicers, ``start``, flip health, ``stop``.

    The native ``grpc.aio`` server is created in ``start`` (bound to the running
    event loop), not in ``__init__``: an aio server that is built and then
    garbage-collected without ever running (a unit test's context, a service
    that fails its checks before serving) can crash the process once its
    event loop is gone."""

    def __init__(self, settings: GrpcServerSettings, required_roles: RoleCheck = table_check,
                 on_refused: RefusalHook = _no_hook) -> None:
        self.settings = settings
        if not settings.auth.enforce_roles:
            log.warning("roles NOT enforced (grpc.auth.enforce_roles=false): every authenticated call is allowed")
            required_roles = allow_all
        self.interceptor = AuthInterceptor(settings.auth, required_roles, settings.limits, on_refused,
                                           max_request_bytes=settings.max_message_bytes)
        self.health = health_aio.HealthServicer()
        self.service_names: list[str] = [""]
        self._servicers: list[tuple[Callable[[Any, grpc.aio.Server], None], Any]] = [
            (health_pb2_grpc.add_HealthServicer_to_server, self.health)]
        self.server: grpc.aio.Server | None = None
        self.port: int | None = None

    def add(self, add_to_server: Callable[[Any, grpc.aio.Server], None], servicer: Any, service_name: str) -> None:
        """Register a servicer, e.g.
        ``add(alerts_pb2_grpc.add_AlertServiceServicer_to_server, s, "lfr.v1.AlertService")``."""
        if self.server is not None:
            raise RuntimeError("add servicers before start()")
        self._servicers.append((add_to_server, servicer))
        self.service_names.append(service_name)

    @property
    def checks_callers(self) -> bool:
        """False where roles are not enforced (``grpc.auth.enforce_roles=false``, tests of other
        concerns): handlers then skip their own per-caller rules too."""
        return self.settings.auth.enforce_roles

    async def refuse(self, context: grpc.aio.ServicerContext, method: str, reason: str, message: str,
                     code: grpc.StatusCode = grpc.StatusCode.PERMISSION_DENIED) -> None:
        """A handler's own refusal, for a rule the roles table cannot decide alone (it needs the
        service's state): answered, counted and audited (``api.refused``) like the interceptor's.
        Raises: the call ends here."""
        await self.interceptor._refuse(context, method, current_identity.get(), code, reason, message)

    async def set_serving(self, serving: bool, service: str | None = None) -> None:
        """Set one service's health (or, with None, the overall status and every service's)."""
        status = SERVING if serving else NOT_SERVING
        for name in self.service_names if service is None else [service]:
            await self.health.set(name, status)

    async def start(self) -> int:
        from grpc_reflection.v1alpha import reflection

        size = self.settings.max_message_bytes
        # the receive limit is enforced (counted, audited) by the interceptor for unary requests; core's
        # own limit, at twice that, is the backstop for client streams and for grossly oversized calls
        server = grpc.aio.server(
            interceptors=[self.interceptor],
            options=[("grpc.max_send_message_length", size), ("grpc.max_receive_message_length", 2 * size),
                     ("grpc.http2.min_ping_interval_without_data_ms",
                      int(self.settings.min_client_ping_interval_s * 1000))],
        )
        for add_to_server, servicer in self._servicers:
            add_to_server(servicer, server)
        for name in self.service_names:
            await self.health.set(name, NOT_SERVING)
        reflection.enable_server_reflection(
            [*filter(None, self.service_names), health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME],
            server,
        )
        self.server = server  # stop() shuts it down even if binding fails below
        address = f"{self.settings.host}:{self.settings.port}"
        creds = server_credentials(self.settings)
        try:
            port = server.add_secure_port(address, creds) if creds else server.add_insecure_port(address)
        except RuntimeError as e:
            port = 0
            log.debug("bind failed", extra={"error": str(e)})
        if not port:
            raise SetupError(f"cannot listen for gRPC on {address} (port taken?)",
                             "stop what holds the port or set LFR_GRPC__PORT")
        await server.start()
        self.port = port
        log.info("grpc listening", extra={"address": f"{self.settings.host}:{port}", "tls": creds is not None})
        return port

    async def stop(self, grace: float | None = None) -> None:
        await self.health.enter_graceful_shutdown()
        if self.server is not None:
            await self.server.stop(self.settings.grace_s if grace is None else grace)
