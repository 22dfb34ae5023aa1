"""Matcher: FaceObservation -> Milvus search (deployment-scoped) -> MatchCandidate.

Foundation state: consumes lfr.faces.v1 in group ``lfr-matcher`` through the
commit-after-processing loop, dead-letters records that are not FaceObservation
protobufs, and keeps health SERVING while Kafka, Milvus and Redis answer.
Searching, the threshold and the crop hand-over are the pipeline issue's work."""

from __future__ import annotations

from typing import Any

from lfr.v1 import faces_pb2

from services.common import clients
from services.common.kafka import FACES_TOPIC
from services.common.service import ServiceContext
from services.common.worker import KafkaWorker
from services.matcher.config import MatcherSettings


class Matcher(KafkaWorker):
    input_topic = FACES_TOPIC
    input_type = faces_pb2.FaceObservation

    def __init__(self, ctx: ServiceContext, settings: MatcherSettings) -> None:
        super().__init__(ctx)
        self.milvus_settings = settings.milvus
        self.redis_settings = settings.redis
        self.options = settings.matcher
        self.milvus: Any = None
        self.redis: Any = None
        ctx.add_dependency("milvus", self.check_milvus)
        ctx.add_dependency("redis", self.check_redis)

    async def connect(self) -> None:
        if self.redis is None:
            self.redis = await clients.connect_redis(self.redis_settings)
        if self.milvus is None:
            self.milvus = await clients.connect_milvus(self.milvus_settings)
        await super().connect()

    async def check_milvus(self) -> None:
        if self.milvus is None:
            raise ConnectionError("not connected")
        await clients.check_milvus(self.milvus, self.milvus_settings.timeout_s)

    async def check_redis(self) -> None:
        if self.redis is None:
            raise ConnectionError("not connected")
        await clients.check_redis(self.redis)

    async def close(self) -> None:
        await super().close()
        if self.redis is not None:
            await self.redis.aclose()
            self.redis = None
        if self.milvus is not None:
            self.milvus.close()
            self.milvus = None
