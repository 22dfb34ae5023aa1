"""The description of the models Triton serves (deploy/triton/models.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.paths import REPO_ROOT

DEPLOY_DIR = REPO_ROOT / "deploy" / "triton"
SPEC_FILE = DEPLOY_DIR / "models.yaml"

# numpy dtype name -> Triton config data_type
TRITON_DTYPES: dict[str, str] = {
    "bool": "TYPE_BOOL",
    "uint8": "TYPE_UINT8",
    "uint16": "TYPE_UINT16",
    "uint32": "TYPE_UINT32",
    "uint64": "TYPE_UINT64",
    "int8": "TYPE_INT8",
    "int16": "TYPE_INT16",
    "int32": "TYPE_INT32",
    "int64": "TYPE_INT64",
    "float16": "TYPE_FP16",
    "float32": "TYPE_FP32",
    "float64": "TYPE_FP64",
}

DType = Literal["bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32",
                "int64", "float16", "float32", "float64"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:/-]+$",
                      description="tensor name, as in the ONNX graph")
    dtype: DType = Field(description="numpy dtype name")
    dims: tuple[int, ...] = Field(min_length=1, description="shape without the batch dim; -1 is dynamic")

    @model_validator(mode="after")
    def _dims(self) -> "TensorSpec":
        if any(d == 0 or d < -1 for d in self.dims):
            raise ValueError(f"{self.name}: dims must be positive or -1, got {self.dims}")
        return self

    @property
    def triton_dtype(self) -> str:
        return TRITON_DTYPES[self.dtype]


class DynamicBatching(Strict):
    preferred_batch_size: tuple[int, ...] = Field(default=(), description="batch sizes the scheduler aims for")
    max_queue_delay_us: int = Field(default=1000, ge=0, le=1_000_000,
                                    description="longest a request waits for others to join its batch")


class TensorRT(Strict):
    precision: Literal["FP32", "FP16"] = Field(default="FP16", description="TensorRT precision_mode")
    max_workspace_mb: int = Field(default=1024, ge=64, le=65536, description="TensorRT workspace")


class ModelSpec(Strict):
    name: str = Field(min_length=1, pattern=r"^[a-z0-9_]+$", description="Triton model name")
    description: str = Field(default="", description="what the model is, one line")
    kind: Literal["onnx", "identity"] = Field(default="onnx",
                                              description="onnx: an ONNX file; identity: built-in test model")
    onnx: str | None = Field(default=None, description="ONNX file name in the model cache")
    opt_in: bool = Field(default=False,
                         description="its licence needs an acknowledgement to build it (the model manifest's "
                                     "requires_acknowledgement): served only where its ONNX file is provided, "
                                     "skipped (not an error) where it is absent")
    max_batch_size: int = Field(ge=0, le=1024, description="0 disables batching")
    inputs: tuple[TensorSpec, ...] = Field(min_length=1)
    outputs: tuple[TensorSpec, ...] = Field(min_length=1)
    dynamic_batching: DynamicBatching | None = Field(default=None, description="None: no dynamic batcher")
    instances: int = Field(default=1, ge=1, le=16, description="model instances (per GPU in production)")
    intra_op_threads: int = Field(default=1, ge=0, le=64,
                                  description="onnxruntime intra-op threads in the local variant (0: ort default)")
    tensorrt: TensorRT | None = Field(default=None, description="production: TensorRT execution accelerator")

    @model_validator(mode="after")
    def _check(self) -> "ModelSpec":
        if self.kind == "onnx" and not self.onnx:
            raise ValueError(f"{self.name}: kind onnx needs an onnx file name")
        if self.kind == "identity" and (self.onnx or self.opt_in):
            raise ValueError(f"{self.name}: the identity model has no onnx file and is always served")
        names = [t.name for t in (*self.inputs, *self.outputs)]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: tensor names must be unique: {names}")
        if self.dynamic_batching and self.max_batch_size == 0:
            raise ValueError(f"{self.name}: dynamic batching needs max_batch_size > 0")
        if self.dynamic_batching:
            bad = [b for b in self.dynamic_batching.preferred_batch_size if b > self.max_batch_size]
            if bad:
                raise ValueError(f"{self.name}: preferred batch sizes {bad} exceed max_batch_size")
        return self

    @property
    def in_production(self) -> bool:
        return self.kind == "onnx"


class RepoSpec(Strict):
    models: tuple[ModelSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "RepoSpec":
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique: {names}")
        return self

    def get(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)


def load_spec(path: Path = SPEC_FILE) -> RepoSpec:
    with open(path, encoding="utf-8") as f:
        return RepoSpec.model_validate(yaml.safe_load(f))
