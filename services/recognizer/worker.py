"""Recognizer: frames -> Triton detector + embedder -> FaceObservation on lfr.faces.v1.

Foundation state: consumes lfr.frames.v1 in group ``lfr-recognizer`` through
the commit-after-processing loop, dead-letters records that are not Frame
protobufs, and keeps health SERVING while Kafka and Triton answer. Detection,
the quality gate and embedding are the pipeline issue's work (``handle``)."""

from __future__ import annotations

from typing import Any

from lfr.v1 import frames_pb2

from services.common import clients
from services.common.kafka import FRAMES_TOPIC
from services.common.service import ServiceContext
from services.common.worker import KafkaWorker
from services.recognizer.config import RecognizerSettings


class Recognizer(KafkaWorker):
    input_topic = FRAMES_TOPIC
    input_type = frames_pb2.Frame

    def __init__(self, ctx: ServiceContext, settings: RecognizerSettings) -> None:
        super().__init__(ctx)
        self.triton_settings = settings.triton
        self.options = settings.recognizer
        self.triton: Any = None
        ctx.add_dependency("triton", self.check_triton)

    async def connect(self) -> None:
        if self.triton is None:
            self.triton = await clients.connect_triton(self.triton_settings)
        await super().connect()

    async def check_triton(self) -> None:
        if self.triton is None:
            raise ConnectionError("not connected")
        await clients.check_triton(self.triton, self.triton_settings.timeout_s)

    async def close(self) -> None:
        await super().close()
        if self.triton is not None:
            await self.triton.close()
            self.triton = None
