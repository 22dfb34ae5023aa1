"""A tiny bounded buffer between capture and publish that drops the OLDEST item.

Live video must not queue: when the publisher is slower than the camera the
buffer keeps only the newest ``maxsize`` frames. ``put`` never waits; it
returns the item it evicted (so the caller can count the drop)."""

from __future__ import annotations

import asyncio
import collections
from typing import Generic, TypeVar

T = TypeVar("T")


class DropOldestBuffer(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._items: collections.deque[T] = collections.deque()
        self._ready = asyncio.Event()
        self.dropped = 0
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> T | None:
        """Add ``item``; if full, evict and return the oldest one."""
        evicted = None
        if len(self._items) >= self.maxsize:
            evicted = self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self._ready.set()
        return evicted

    def close(self) -> None:
        """Wake the consumer; ``get`` returns None once the buffer is empty."""
        self._closed = True
        self._ready.set()

    @property
    def closed(self) -> bool:
        return self._closed

    async def get(self) -> T | None:
        """The oldest item, waiting for one; None when closed and drained."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()
