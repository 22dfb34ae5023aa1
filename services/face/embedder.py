"""Face embeddings of aligned faces with the configured embedder (``face.embedder``, one entry of the model
manifest; services/face/embedders.py): the input convention of its spec, optional horizontal-flip
averaging, L2-normalised, float32.

The default, MobileFaceNet-512 from the FacePlugin SDK, reaches TPIR 0.94 at zero false alerts on lfw_dev
(docs/accuracy.md); the opt-in InsightFace w600k_mbf (research-only terms) more."""

from __future__ import annotations

import numpy as np

# every embedder the platform ships makes 512-d vectors (the Milvus schema's dimension, defined there)
from services.common.milvus_collections import EMBEDDING_DIM as EMBEDDING_DIM
from services.common.runner import ModelRunner
from services.face.embedders import DEFAULT_EMBEDDER, EmbedderSpec, embedder_spec


def l2_normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)


class Embedder:
    def __init__(self, runner: ModelRunner, flip_average: bool = False, batch: int = 64,
                 name: str = DEFAULT_EMBEDDER, spec: EmbedderSpec | None = None) -> None:
        self.runner = runner
        self.flip_average = flip_average
        self.batch = batch
        self.name = name
        self.spec = spec or embedder_spec(name)

    @property
    def dim(self) -> int:
        return self.spec.dim

    async def embed(self, aligned: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """(n, dim) float32, unit norm, for n aligned uint8 RGB faces of the spec's size."""
        faces = np.asarray(aligned)
        if len(faces) == 0:
            return np.zeros((0, self.dim), np.float32)
        conv = self.spec.input
        x = (faces.astype(np.float32) - conv.mean) / conv.std
        n = len(x)
        if self.flip_average:
            x = np.concatenate([x, x[:, :, ::-1]])
        outs = []
        step = self.batch * (2 if self.flip_average else 1)
        for i in range(0, len(x), step):
            res = await self.runner.infer(self.name, {conv.tensor: np.ascontiguousarray(x[i:i + step])})
            outs.append(res[self.spec.output_tensor])
        emb = np.concatenate(outs).astype(np.float32)
        if self.flip_average:
            emb = l2_normalise(emb[:n]) + l2_normalise(emb[n:])
        return l2_normalise(emb)
