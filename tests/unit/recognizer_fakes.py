"""The Kafka producer and Redis client the recognizer unit tests give the worker: both note
what happens, in order, in one shared ``events`` list ("redis:set", "send:<label>")."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class Producer:
    """``label(topic, value)`` names a send in ``events`` (default: the topic)."""

    def __init__(self, events: list[str], label: Callable[[str, bytes], str] = lambda topic, _: topic) -> None:
        self.events = events
        self.label = label
        self.sent: list[tuple[str, bytes, bytes | None]] = []

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   **_: Any) -> "asyncio.Future[None]":
        assert value is not None
        self.events.append(f"send:{self.label(topic, value)}")
        self.sent.append((topic, value, key))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class Redis:
    """Keeps each SET as ``store[name] = (value, ex)``."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.store: dict[str, tuple[bytes, int]] = {}

    async def set(self, name: str, value: bytes, nx: bool = False, ex: int | None = None) -> bool:
        """A frame key (ingest's FrameSealer); not noted in ``events``."""
        if nx and name in self.store:
            return False
        self.store[name] = (value, ex or 0)
        return True

    async def get(self, name: str) -> bytes | None:
        hit = self.store.get(name)
        return None if hit is None else hit[0]

    def pipeline(self, transaction: bool = True) -> "Redis.Pipe":
        return Redis.Pipe(self)

    class Pipe:
        def __init__(self, parent: "Redis") -> None:
            self.parent = parent
            self.ops: list[tuple[str, bytes, int]] = []

        async def __aenter__(self) -> "Redis.Pipe":
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

        def set(self, name: str, value: bytes, ex: int) -> None:
            self.ops.append((name, value, ex))

        async def execute(self) -> list[bool]:
            for name, value, ex in self.ops:
                self.parent.events.append("redis:set")
                self.parent.store[name] = (value, ex)
            return [True] * len(self.ops)
