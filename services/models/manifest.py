"""The committed manifest (manifest.json next to this file): pinned npm sources
and, per model, the conversion recipe and the I/O contract."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST_FILE = Path(__file__).with_name("manifest.json")

Sha256 = str


class Package(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    spec: str = Field(description="npm package spec passed to `npm pack`, version pinned")
    tarball: str = Field(description="file name `npm pack` writes")
    sha256: Sha256 = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the tarball")
    license: str = Field(description="licence declared by the package")
    url: str = Field(description="where the package is published")
    files: dict[str, Sha256] = Field(description="member path in the tarball -> sha256 of the extracted file")


class TensorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="tensor name in the ONNX graph (and in Triton)")
    dtype: Literal["uint8", "float32", "int32", "int64"] = Field(description="numpy dtype name")
    shape: list[int] = Field(description="full shape, batch first; -1 = dynamic")


class ModelSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str
    package: str = Field(description="key into Manifest.packages")
    source: str = Field(description="member of the package converted (tflite file, tfjs model.json, or an ONNX "
                                    "file taken as it is before the graph edits)")
    companions: list[str] = Field(default_factory=list, description="other members the source needs (tfjs weights)")
    format: Literal["tflite", "tfjs", "onnx"]
    opset: int = Field(13, ge=9, le=21, description="ONNX opset passed to tf2onnx (onnx: the source's own opset)")
    rename: dict[str, str] = Field(default_factory=dict, description="tensor renames applied after conversion")
    drop_outputs: list[str] = Field(default_factory=list, description="graph outputs removed after conversion")
    fix_reshape_batch: int | None = Field(
        None, description="the batch size tf2onnx baked into Reshape shape constants; replaced by -1")
    nchw_input: bool = Field(
        False, description="the source graph takes NCHW: a Transpose node in front makes its input NHWC, like the "
                           "other models' (the first input only)")
    reverse_input_channels: bool = Field(
        False, description="reverse the colour order of the input channels inside the graph (the first Conv's "
                           "weights): the source was trained on BGR, the services send RGB")
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    content_sha256: Sha256 | None = Field(
        None, description="pinned deterministic content hash of the converted graph (None: not pinned yet)")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    packages: dict[str, Package]
    models: dict[str, ModelSpec]


def load_manifest(path: Path = MANIFEST_FILE) -> Manifest:
    return Manifest.model_validate(json.loads(path.read_text()))
