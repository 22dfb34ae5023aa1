"""ModelRunner (the protocol, from services.common.runner) and OnnxRunner: the
models in-process with onnxruntime on the CPU, from the model cache. Used by
unit tests and benchmarks; services use the Triton runner with the same protocol."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np

from services.common.runner import ModelRunner
from services.models.paths import model_path

__all__ = ["ModelRunner", "OnnxRunner"]


class OnnxRunner:
    """Runs the cached ONNX models with onnxruntime. Sessions are created on first use."""

    def __init__(self, model_dir: Path | None = None, intra_op_threads: int = 0) -> None:
        self._dir = model_dir
        self._threads = intra_op_threads
        self._sessions: dict[str, Any] = {}

    def path(self, model: str) -> Path:
        return self._dir / f"{model}.onnx" if self._dir is not None else model_path(model)

    def session(self, model: str) -> Any:
        sess = self._sessions.get(model)
        if sess is None:
            import onnxruntime as ort

            path = self.path(model)
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing: run 'lfr models build'")
            opts = ort.SessionOptions()
            if self._threads:
                opts.intra_op_num_threads = self._threads
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            self._sessions[model] = sess
        return sess

    def infer_sync(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sess = self.session(model)
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(names, inputs)))

    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return await asyncio.to_thread(self.infer_sync, model, inputs)
