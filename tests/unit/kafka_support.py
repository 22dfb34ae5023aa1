"""A Kafka record as the unit tests' fake consumers hand it to a service (the fields of
aiokafka's ConsumerRecord that services.common.kafka reads)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = b"cam-1"
    timestamp: int = 1_700_000_000_000
    headers: tuple[tuple[str, bytes], ...] = ()
