"""`python -m services.console`: the operator console (HTTP 8080, metrics 9107)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiohttp import web
from redis.exceptions import RedisError

from services.common.clients import check_redis
from services.common.errors import SetupError
from services.common.logs import configure_logging
from services.common.metrics import MetricsFactory, serve_metrics
from services.common.service import load_settings
from services.console.app import Console, build_app
from services.console.config import ConsoleSettings, with_dev_pki
from services.console.users import DevelopmentUsersError

log = logging.getLogger("services.console")


async def serve(settings: ConsoleSettings) -> int:
    opts = settings.console
    opts.check_exposure()  # before anything listens
    factory = MetricsFactory("console")
    factory.gauge("service_info", "service identity",
                  ("service", "instance")).labels("console", settings.instance).set(1)
    metrics = None
    if settings.metrics.enabled:
        try:
            metrics = serve_metrics(factory, settings.metrics.host, settings.metrics.port)
        except OSError as e:
            raise SetupError(f"cannot serve /metrics on {settings.metrics.host}:{settings.metrics.port}: {e.strerror}",
                             "stop what holds the port or set LFR_METRICS__PORT") from e
    try:
        try:
            console = Console(opts, factory)
        except DevelopmentUsersError as e:
            raise SetupError(str(e), "give the console a users file of your own (LFR_CONSOLE__USERS_FILE; python -m "
                                     "services.console.users add FILE USER ROLE...); the development users are for "
                                     "the local stack only: LFR_CONSOLE__DEV_USERS=true on 127.0.0.1") from e
        except (OSError, ValueError) as e:
            raise SetupError(f"cannot load the console's files: {e}", "check LFR_CONSOLE__USERS_FILE") from e
        try:
            await check_redis(console.redis)
        except (RedisError, OSError) as e:
            await console.redis.aclose()
            raise SetupError(f"the console's session store (Redis {opts.redis.url}) does not answer: "
                             f"{type(e).__name__}: {e}", "start Redis (lfr stack up) or set "
                                                         "LFR_CONSOLE__REDIS__URL and its credentials") from e
    except SetupError:
        if metrics is not None:
            metrics.close()
        raise
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, console.stop.set)
    runner = web.AppRunner(build_app(console), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    feed = asyncio.create_task(console.feed.run(console.stop), name="console-feed")
    try:
        site = web.TCPSite(runner, opts.http_host, opts.http_port)
        try:
            await site.start()
        except OSError as e:
            raise SetupError(f"cannot listen on {opts.http_host}:{opts.http_port}: {e.strerror}",
                             "stop what holds the port or set LFR_CONSOLE__HTTP_PORT") from e
        log.info("console listening", extra={"url": f"http://{opts.http_host}:{opts.http_port}/",
                                              "metrics_port": settings.metrics.port})
        await console.stop.wait()
    finally:
        console.stop.set()
        await asyncio.gather(feed, return_exceptions=True)
        await runner.cleanup()
        await console.platform.close()
        await console.redis.aclose()
        if metrics is not None:
            metrics.close()
        log.info("console stopped")
    return 0


def main() -> int:
    settings = with_dev_pki(load_settings(ConsoleSettings))  # by hand on a dev machine: the dev PKI
    configure_logging(level=getattr(logging, settings.log_level.upper()))
    try:
        return asyncio.run(serve(settings))
    except SetupError as e:
        log.error(e.one_line())
        return 2


if __name__ == "__main__":
    sys.exit(main())
