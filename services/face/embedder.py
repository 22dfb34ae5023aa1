"""MobileFaceNet embeddings of aligned 112x112 RGB faces: (x-127.5)/128,
optional horizontal-flip averaging, L2-normalised, 192-d float32."""

from __future__ import annotations

import numpy as np

from services.common.runner import ModelRunner

MOBILEFACENET = "mobilefacenet"
EMBEDDING_DIM = 192


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


class Embedder:
    def __init__(self, runner: ModelRunner, flip_average: bool = True, batch: int = 64) -> None:
        self.runner = runner
        self.flip_average = flip_average
        self.batch = batch

    async def embed(self, aligned: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """(n, 192) float32, unit norm, for n aligned uint8 RGB 112x112 faces."""
        faces = np.asarray(aligned)
        if len(faces) == 0:
            return np.zeros((0, EMBEDDING_DIM), np.float32)
        x = (faces.astype(np.float32) - 127.5) / 128.0
        n = len(x)
        if self.flip_average:
            x = np.concatenate([x, x[:, :, ::-1]])
        outs = []
        step = self.batch * (2 if self.flip_average else 1)
        for i in range(0, len(x), step):
            res = await self.runner.infer(MOBILEFACENET, {"input": np.ascontiguousarray(x[i:i + step])})
            outs.append(res["embedding"])
        emb = np.concatenate(outs).astype(np.float32)
        if self.flip_average:
            emb = emb[:n] + emb[n:]
        return l2_normalise(emb)
