"""Fixtures every suite may ask for (this file applies to all of tests/). Nothing here runs unless a test
asks for it: the unit suite needs no broker.

``kafka_topics``: a test's own Kafka topics on the local broker (copies of the platform's topics, or bare
ones), every one deleted after the test; the plain functions behind it are in topics_support.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from topics_support import KafkaTopics


@pytest.fixture
async def kafka_topics() -> AsyncIterator[KafkaTopics]:
    """``await kafka_topics.copies(kind, tag, roles)`` / ``.ensure(specs)`` / ``.bare(names)`` make topics
    for this test; they are deleted after it."""
    topics = KafkaTopics()
    try:
        yield topics
    finally:
        await topics.delete()
