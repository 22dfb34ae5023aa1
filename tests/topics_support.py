"""Private Kafka topics for the suites, on the real local broker: a test's, a module's or a session's own
topics, made for it and deleted after it, so that no run reads another's records.

``kafka_topics`` (tests/conftest.py) gives a test a :class:`KafkaTopics`; a module- or session-scoped
fixture that starts services of its own takes :func:`private_topics_blocking` around them; both name
copies of the platform's topics with ``services.common.topics.private_specs``."""

from __future__ import annotations

import asyncio
import contextlib
import random
import string
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any

from services.common.topics import TopicSpec, delete_topics, ensure_topics, private_specs

BOOTSTRAP = "127.0.0.1:9092"


def random_tag(k: int = 8) -> str:
    """``k`` random lowercase letters: a run's tag, fit for a topic name."""
    return "".join(random.choices(string.ascii_lowercase, k=k))


def run_private(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on a private loop (asyncio.run would unset the thread's current loop,
    which other tests' fixtures may still ask for)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


async def delete_or_fail(names: list[str], bootstrap: str = BOOTSTRAP, wait_s: float = 20.0) -> None:
    """Delete ``names`` and wait up to ``wait_s`` for the broker to remove them (deletion is asynchronous);
    AssertionError naming any still there."""
    if left := await delete_topics(bootstrap, names, wait_s=wait_s):
        raise AssertionError(f"topics {left} still exist")


class KafkaTopics:
    """Topics made on the broker at ``bootstrap`` for one test (or module, or session); :meth:`delete`
    deletes every one of them."""

    def __init__(self, bootstrap: str = BOOTSTRAP) -> None:
        self.bootstrap = bootstrap
        self.names: list[str] = []

    async def ensure(self, specs: Iterable[TopicSpec]) -> list[str]:
        """Create ``specs`` with their configs (ensure_topics: it returns once every partition has a leader);
        their names."""
        specs = tuple(specs)
        self.names.extend(s.name for s in specs)
        await ensure_topics(self.bootstrap, specs)
        return [s.name for s in specs]

    async def copies(self, kind: str, tag: str, roles: tuple[str, ...] | None = None,
                     max_partitions: int | None = None) -> dict[str, str]:
        """Private copies of the platform's topics (``private_specs``), created; their names by role."""
        specs = private_specs(kind, tag, roles, max_partitions)
        await self.ensure(specs.values())
        return {role: spec.name for role, spec in specs.items()}

    async def bare(self, names: Iterable[str]) -> None:
        """Topics with the broker's defaults (one partition, replication 1, no configs of ours)."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        names = list(names)
        self.names.extend(names)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(n, 1, 1) for n in names])
        finally:
            await admin.close()

    async def delete(self, wait_s: float = 0.0) -> None:
        """Delete them all; with ``wait_s`` > 0, :func:`delete_or_fail`."""
        names, self.names = self.names, []
        if not names:
            return
        if wait_s > 0:
            await delete_or_fail(names, self.bootstrap, wait_s)
        else:
            await delete_topics(self.bootstrap, names)


@contextlib.contextmanager
def private_topics_blocking(specs: Iterable[TopicSpec], bootstrap: str = BOOTSTRAP,
                            wait_s: float = 0.0) -> Iterator[list[str]]:
    """``specs`` created for the block (their names), deleted after it (:meth:`KafkaTopics.delete` with
    ``wait_s``), each step on a private loop: for synchronous module- and session-scoped fixtures."""
    topics = KafkaTopics(bootstrap)
    names = run_private(topics.ensure(specs))
    try:
        yield names
    finally:
        run_private(topics.delete(wait_s))
