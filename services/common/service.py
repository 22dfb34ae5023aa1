"""The runner every service's ``__main__`` uses.

``run_service(name, settings, setup)``: JSON logging, /metrics, then the
service's ``setup(ctx)`` coroutine, which must not block: it registers its
servicers and dependency checks and spawns its tasks (which connect with
``ctx.connect``, retrying until the server answers). Then the gRPC server starts
with health NOT_SERVING; health turns SERVING once every dependency check
passes, and back while one fails. SIGTERM/SIGINT sets ``ctx.stop``: health goes
NOT_SERVING, tasks drain (finish in-flight work, commit), cleanups run, the
server stops with its grace period, exit 0. A task that crashes exits 1.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from services.common.errors import SetupError
from services.common.grpc_server import GrpcServer
from services.common.logs import configure_logging
from services.common.metrics import MetricsFactory, MetricsServer, serve_metrics
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)
T = TypeVar("T")
S = TypeVar("S", bound=ServiceSettings)

DEPENDENCY_CHECK_INTERVAL_S = 5.0
DRAIN_TIMEOUT_S = 10.0


@dataclasses.dataclass
class Dependency:
    name: str
    check: Callable[[], Awaitable[None]]  # raises when the dependency is down
    up: bool = False


@dataclasses.dataclass
class ServiceContext:
    """What ``setup`` gets: the service's settings, metrics, gRPC server and stop event."""

    name: str
    settings: ServiceSettings
    metrics: MetricsFactory
    grpc: GrpcServer
    stop: asyncio.Event
    tasks: list[asyncio.Task[Any]] = dataclasses.field(default_factory=list)
    cleanups: list[Callable[[], Awaitable[None]]] = dataclasses.field(default_factory=list)
    dependencies: list[Dependency] = dataclasses.field(default_factory=list)
    recheck: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    def refresh_health(self) -> None:
        """Re-run the dependency checks now (e.g. right after connecting)."""
        self.recheck.set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Run a long-lived task; it must return soon after ``stop`` is set."""
        task = asyncio.create_task(coro, name=f"{self.name}:{name}")
        self.tasks.append(task)
        return task

    def on_shutdown(self, cleanup: Callable[[], Awaitable[None]]) -> None:
        """Run at shutdown, after the tasks drained, in reverse order of registration."""
        self.cleanups.append(cleanup)

    def add_dependency(self, name: str, check: Callable[[], Awaitable[None]]) -> None:
        """A server the service needs; health is SERVING only while every check passes."""
        self.dependencies.append(Dependency(name, check))

    async def connect(self, what: str, connect: Callable[[], Awaitable[T]], max_backoff_s: float = 5.0) -> T | None:
        """Retry ``connect`` with backoff until it succeeds (value) or stop is set (None)."""
        delay = 0.25
        while not self.stop.is_set():
            try:
                return await connect()
            except (OSError, asyncio.TimeoutError, ConnectionError) as e:
                log.warning("waiting for %s", what, extra={"error": f"{type(e).__name__}: {e}"})
            except Exception as e:  # client libraries wrap connection errors in their own types
                log.warning("waiting for %s", what, extra={"error": f"{type(e).__name__}: {e}"})
            try:
                await asyncio.wait_for(self.stop.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass
            delay = min(delay * 2, max_backoff_s)
        return None


async def check_dependencies(ctx: ServiceContext, up_gauge: Any) -> bool:
    """Run every dependency check once; set health and the gauge; True when all are up."""
    all_up = True
    for dep in ctx.dependencies:
        try:
            await asyncio.wait_for(dep.check(), timeout=DEPENDENCY_CHECK_INTERVAL_S)
            up = True
        except Exception as e:  # any failure means "down"; the reason is logged on change
            up = False
            if dep.up:
                log.warning("dependency down", extra={"dependency": dep.name, "error": f"{type(e).__name__}: {e}"})
        if up and not dep.up:
            log.info("dependency up", extra={"dependency": dep.name})
        dep.up = up
        up_gauge.labels(dep.name).set(1 if up else 0)
        all_up = all_up and up
    await ctx.grpc.set_serving(all_up)
    return all_up


async def _monitor(ctx: ServiceContext, up_gauge: Any, interval_s: float) -> None:
    while not ctx.stop.is_set():
        ctx.recheck.clear()
        await check_dependencies(ctx, up_gauge)
        waiters = [asyncio.create_task(ctx.stop.wait()), asyncio.create_task(ctx.recheck.wait())]
        await asyncio.wait(waiters, timeout=interval_s, return_when=asyncio.FIRST_COMPLETED)
        for w in waiters:
            w.cancel()


async def serve(
    name: str,
    settings: ServiceSettings,
    setup: Callable[[ServiceContext], Awaitable[None]],
    stop: asyncio.Event | None = None,
) -> int:
    """The service's lifetime inside a running loop; returns the exit code."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    factory = MetricsFactory(name)
    up_gauge = factory.gauge("dependency_up", "1 while the dependency answers its health check", ("dependency",))
    factory.gauge("service_info", "service identity", ("service", "instance")).labels(name, settings.instance).set(1)
    metrics_server: MetricsServer | None = None
    from services.common.refusals import RefusalRecorder
    from services.common.settings import RedisSettings

    redis_settings = getattr(settings, "redis", None)
    refusals = RefusalRecorder(name, settings.kafka, redis_settings if isinstance(redis_settings, RedisSettings)
                               else RedisSettings(), settings.grpc.auth.audit_topic, factory, settings.grpc.refusals,
                               audit=settings.audit, instance=settings.instance)
    try:
        grpc_server = GrpcServer(settings.grpc, on_refused=refusals)
    except SetupError as e:  # e.g. a device token key too short to sign with: nothing has started yet
        log.error(e.one_line())
        return 2
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ctx = ServiceContext(name=name, settings=settings, metrics=factory, grpc=grpc_server, stop=stop)
    exit_code = 0
    try:
        if settings.metrics.enabled:
            try:
                metrics_server = serve_metrics(factory, settings.metrics.host, settings.metrics.port)
            except OSError as e:
                raise SetupError(
                    f"cannot serve /metrics on {settings.metrics.host}:{settings.metrics.port}: {e.strerror}",
                    "stop what holds the port or set LFR_METRICS__PORT",
                ) from e
        await setup(ctx)  # registers servicers (before the server starts) and spawns tasks
        await grpc_server.start()
        if not stop.is_set():
            ctx.spawn(_monitor(ctx, up_gauge, DEPENDENCY_CHECK_INTERVAL_S), "dependency-monitor")
            log.info("service started", extra={"service": name, "grpc_port": grpc_server.port})
            exit_code = await _wait(ctx)
    except SetupError as e:
        log.error(e.one_line())
        exit_code = 2
    finally:
        log.info("service stopping", extra={"service": name})
        stop.set()
        await grpc_server.health.enter_graceful_shutdown()
        await _drain(ctx.tasks)
        for cleanup in reversed(ctx.cleanups):
            try:
                await cleanup()
            except Exception as e:  # keep closing the rest
                log.warning("cleanup failed", extra={"error": f"{type(e).__name__}: {e}"})
        await grpc_server.stop()
        await refusals.close()
        if metrics_server is not None:
            metrics_server.close()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("service stopped", extra={"service": name, "exit_code": exit_code})
    return exit_code


async def _wait(ctx: ServiceContext) -> int:
    """Until stop is set (0) or a task crashes (1)."""
    stop_waiter = asyncio.create_task(ctx.stop.wait())
    try:
        while not ctx.stop.is_set():
            pending = [t for t in ctx.tasks if not t.done()]
            done, _ = await asyncio.wait([stop_waiter, *pending], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is stop_waiter or task.cancelled():
                    continue
                exc = task.exception()
                if exc is not None:
                    log.error("task crashed", extra={"task": task.get_name()}, exc_info=exc)
                    return 1
            if not pending and stop_waiter not in done:
                await stop_waiter
        return 0
    finally:
        stop_waiter.cancel()


async def _drain(tasks: list[asyncio.Task[Any]]) -> None:
    pending = [t for t in tasks if not t.done()]
    if not pending:
        return
    _, still = await asyncio.wait(pending, timeout=DRAIN_TIMEOUT_S)
    for t in still:
        log.warning("task did not drain in time; cancelling", extra={"task": t.get_name()})
        t.cancel()
    if still:
        await asyncio.wait(still, timeout=2)


def with_dev_pki(name: str, settings: S) -> S:
    """``settings`` of a service started by hand (``python -m services.<name>``) where the development PKI
    exists (``<state>/certs``, ``lfr certs init``): its gRPC server on mTLS with the service's dev certificate,
    client certificates required and authentication on, the settings ``lfr up`` gives it
    (:func:`services.common.grpc_client.server_env`), so the CLI's mTLS channel reaches it. Unchanged when
    any ``grpc.tls`` setting is given (explicit settings win; auth settings given are kept too), when
    ``grpc.dev_pki`` is false, or when the PKI or the service's server certificate does not exist
    (production images carry no dev PKI)."""
    from services.common.grpc_client import cert_paths
    from services.common.settings import GrpcTlsSettings

    grpc_settings = settings.grpc
    paths = cert_paths()
    cert, key = paths.server(name)
    if (not grpc_settings.dev_pki or "tls" in grpc_settings.model_fields_set or not paths.exists()
            or not cert.is_file() or not key.is_file()):
        return settings
    auth = grpc_settings.auth
    auth_update: dict[str, Any] = {}
    if "require_authentication" not in auth.model_fields_set:
        auth_update["require_authentication"] = True
    if "device_token_key_file" not in auth.model_fields_set:
        auth_update["device_token_key_file"] = paths.device_token_key
    tls = GrpcTlsSettings(cert_file=cert, key_file=key, ca_file=paths.ca, require_client_cert=True)
    grpc_settings = grpc_settings.model_copy(update={"tls": tls, "auth": auth.model_copy(update=auth_update)})
    log.info("gRPC on mTLS with the development PKI", extra={"service": name, "certs": str(paths.root)})
    return settings.model_copy(update={"grpc": grpc_settings})


def run_service(name: str, settings: ServiceSettings, setup: Callable[[ServiceContext], Awaitable[None]]) -> int:
    """Entry point for ``python -m services.<name>``: returns the process exit code. A service started by
    hand uses the development PKI where it exists (:func:`with_dev_pki`)."""
    configure_logging(level=getattr(logging, settings.log_level.upper()))
    return asyncio.run(serve(name, with_dev_pki(name, settings), setup))


def load_settings(cls: type[S]) -> S:
    """The service's settings, or exit 2 with the validation errors logged (a typo fails here)."""
    from pydantic import ValidationError

    try:
        return cls()
    except (ValidationError, ValueError) as e:
        configure_logging()
        log.error("invalid settings", extra={"settings": cls.__name__, "error": str(e)})
        raise SystemExit(2) from e
