"""The one interface the services use to run a model, wherever it runs:
Triton over gRPC (services.common.triton_client.TritonClient) or onnxruntime
in-process (the models package). Inputs and outputs are named numpy arrays with
the batch as the first dimension."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class ModelRunner(Protocol):
    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``model`` on ``inputs`` (name -> array, batch first); return name -> array."""
        ...
