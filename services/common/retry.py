"""Retrying a handler's call to a dependency (Redis, Milvus) while it is down.

Inside a :class:`services.common.kafka.ConsumerLoop` handler an ``Exception``
dead-letters the record; a dependency outage must not, because the records are
good. So the handler retries the call in place with backoff (the service's
health goes NOT_SERVING meanwhile through its dependency checks) and, if the
service is stopped before the dependency comes back, raises :class:`Abandoned`
(a ``CancelledError``), which the loop does not catch: the batch is left
uncommitted and redelivered after the restart."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Abandoned(asyncio.CancelledError):
    """Stop was requested while a dependency was down: leave the batch uncommitted."""


def transient_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the server is down or unreachable" (not "this input is bad")."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError, ConnectionError,
                                               RedisConnectionError, RedisTimeoutError)
    # Milvus errors only where pymilvus is loaded (a service that talks to Milvus imported it before any call
    # could raise one). Never import it here: this runs on the first handled record, and importing pymilvus
    # blocks the event loop for 1.5-3 s on a busy 2-core box (that was most of the match -> alert latency in
    # the alerts and officers services).
    milvus = sys.modules.get("pymilvus.exceptions")
    exc = getattr(milvus, "MilvusException", None)
    return errors if exc is None else (*errors, exc)


async def retry_until_up(
    dependency: str,
    call: Callable[[], Awaitable[T]],
    stop: asyncio.Event,
    *,
    on_down: Callable[[], None] | None = None,
    before_retry: Callable[[], Awaitable[None]] | None = None,
    first_backoff_s: float = 0.25,
    max_backoff_s: float = 5.0,
) -> T:
    """``call()`` until it succeeds, backing off while ``dependency`` is down.

    ``on_down`` runs after each failure (e.g. re-check health now);
    ``before_retry`` before each retry (e.g. reconnect). Raises
    :class:`Abandoned` when ``stop`` is set during an outage."""
    transient = transient_errors()
    delay, warned = first_backoff_s, False
    while True:
        try:
            result = await call()
        except transient as e:
            if not warned:
                log.warning("dependency down; retrying",
                            extra={"dependency": dependency, "error": f"{type(e).__name__}: {e}"})
                warned = True
            if on_down is not None:
                on_down()
        else:
            if warned:
                log.info("dependency back; resuming", extra={"dependency": dependency})
            return result
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except asyncio.TimeoutError:
            pass
        if stop.is_set():
            raise Abandoned(f"stopping while {dependency} is down; batch left uncommitted")
        if before_retry is not None:
            await before_retry()
        delay = min(delay * 2, max_backoff_s)
