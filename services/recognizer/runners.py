"""The recognizer's ModelRunner: Triton with a per-model batch cap, and a
per-call stage clock.

TritonClient has one ``max_batch`` for every model, but FaceBoxes is served
with max_batch_size 8 while O-Net and MobileFaceNet take 64: two clients, one
per cap, behind one runner (:class:`CappedRunner`).

:class:`StageClock` wraps a runner for ONE FacePipeline.analyse call and notes
when the embedder was first called and when it last returned, so the call's
time splits into detect (detector + O-Net + Face Mesh + align + gate) and embed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import numpy as np

from services.common.runner import ModelRunner
from services.common.triton_client import TritonClient
from services.face.detector import FACEBOXES, FACEMESH, ONET

MODEL_VERSION_DETECTOR = f"{FACEBOXES}+{ONET}+{FACEMESH}"


class CappedRunner:
    """Routes each model to the client whose batch cap fits it."""

    def __init__(self, detector: TritonClient, others: TritonClient) -> None:
        self.detector = detector
        self.others = others

    def clients(self) -> Iterable[TritonClient]:
        return (self.detector, self.others)

    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        client = self.detector if model == FACEBOXES else self.others
        return await client.infer(model, inputs)

    async def close(self) -> None:
        for c in self.clients():
            await c.close()


class StageClock:
    """A runner wrapper for one analyse call: perf_counter marks of the embed stage."""

    def __init__(self, runner: ModelRunner, embedder: str) -> None:
        self.runner = runner
        self.embedder = embedder
        self.embed_start: float | None = None
        self.embed_end: float | None = None
        self.embed_start_ns: int | None = None

    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if model != self.embedder:
            return await self.runner.infer(model, inputs)
        if self.embed_start is None:
            self.embed_start = time.perf_counter()
            self.embed_start_ns = time.time_ns()
        try:
            return await self.runner.infer(model, inputs)
        finally:
            self.embed_end = time.perf_counter()
