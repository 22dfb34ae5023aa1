"""Which face embedders exist and what each one needs and promises: its input convention, output, distance,
model card (licence, what the vendor says about its training data) and its calibration.

An embedder is an entry of the model manifest (services/models/manifest.json) with an ``embedder`` block;
the platform runs the one named by ``face.embedder`` (services/face/config.py). Its calibration record
(services/models/calibration/<name>.json, written by ``lfr eval DIR --calibrate``) gives the matcher's
default threshold, so a threshold tuned for one model is never applied to another's scores.

A force that buys a commercial model plugs it in the same way: one manifest entry (source pinned by
sha256, input convention, card), one ``lfr eval --calibrate`` run on its own data."""

from __future__ import annotations

import datetime as dt
import functools
import json
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.common.paths import REPO_ROOT

MANIFEST_FILE: Final[Path] = REPO_ROOT / "services" / "models" / "manifest.json"
CALIBRATION_DIR: Final[Path] = REPO_ROOT / "services" / "models" / "calibration"
DEFAULT_EMBEDDER: Final[str] = "mobilefacenet512"
# a calibration on fewer passers-by says little about false alerts (zero of 100 bounds FPIR below 3 % only)
MIN_CALIBRATION_NONMATED: Final[int] = 100


class InputConvention(BaseModel):
    """What the served graph takes (after the build's graph edits): a batch of aligned faces."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tensor: str = Field("input", min_length=1, description="input tensor name (in the ONNX graph and in Triton)")
    layout: Literal["NHWC"] = Field("NHWC", description="the services send NHWC; NCHW sources get a Transpose")
    channels: Literal["RGB"] = Field("RGB", description="channel order the graph expects after the edits")
    size: int = Field(112, ge=32, le=512, description="side of the aligned square face (ArcFace template)")
    mean: float = Field(127.5, ge=0, le=255, description="subtracted from each uint8 pixel")
    std: float = Field(128.0, gt=0, le=255, description="the difference is divided by this")


class ModelCard(BaseModel):
    """What a force's data protection officer asks before a model is used: whose it is, on what terms, and
    what its vendor says it was trained on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vendor: str = Field(min_length=1, description="who made the model")
    architecture: str = Field(min_length=1, description="network and loss, one line")
    licence: str = Field(min_length=1, description="the terms the weights are released under")
    licence_url: str = Field(min_length=1, description="where the terms are stated")
    operational_use: Literal["permitted", "forbidden"] = Field(
        description="whether the terms allow operational (commercial, policing) use; a forbidden one is never the "
                    "default and is built only after an explicit acknowledgement")
    training_data: str = Field(min_length=1, description="what the vendor states about the training data")
    notes: str = Field("", description="anything else a reviewer should know")


class EmbedderSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    input: InputConvention = Field(default_factory=InputConvention, description="what the served graph takes")
    output_tensor: str = Field("embedding", min_length=1, description="output tensor name (L2-normalised here)")
    dim: int = Field(512, ge=16, le=4096, description="embedding dimension")
    distance: Literal["cosine"] = Field("cosine", description="how two embeddings are compared")
    card: ModelCard = Field(description="whose model, on what terms, trained on what (docs/model-cards.md)")


class Calibration(BaseModel):
    """Thresholds of one embedder measured on one dataset (``lfr eval DIR --calibrate``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    embedder: str = Field(min_length=1, description="the embedder calibrated (the file's name must match)")
    dataset: str = Field(description="the folder evaluated (its name)")
    measured: str = Field(description="UTC date and time of the run")
    counts: dict[str, int] = Field(description="subjects enrolled, mated and non-mated probes")
    threshold_zero_false_alerts: float = Field(description="just above the highest passer-by's top score")
    threshold_fpir_0_01: float = Field(description="the lowest threshold with at most 1 % of passers-by alerting")
    threshold_fpir_0_001: float = Field(description="the same at 0.1 %")
    recommended_threshold: float = Field(gt=0, le=1, description="the matcher's default for this embedder")
    recommended_rule: str = Field(description="how the recommended threshold follows from the measurement")
    tpir_at_zero_false_alerts: float = Field(ge=0, le=1, description="mated searches found at the first threshold")
    tpir_at_fpir_0_01: float = Field(ge=0, le=1, description="... at the FPIR 1e-2 threshold")
    tpir_at_recommended: float = Field(ge=0, le=1, description="... at the recommended threshold")
    fpir_at_recommended: float = Field(ge=0, le=1, description="passers-by alerting at the recommended threshold")


@functools.cache
def _manifest_models(path: Path = MANIFEST_FILE) -> dict[str, Any]:
    return dict(json.loads(path.read_text())["models"])


def embedders(path: Path = MANIFEST_FILE) -> dict[str, EmbedderSpec]:
    """Every embedder the manifest describes, by its (Triton model) name."""
    return {name: EmbedderSpec.model_validate(m["embedder"])
            for name, m in _manifest_models(path).items() if m.get("embedder") is not None}


def acknowledgement_of(name: str) -> str | None:
    """The token an embedder's terms require before it is built or run (None: its terms allow operational use)."""
    return _manifest_models().get(name, {}).get("requires_acknowledgement")


def embedder_spec(name: str) -> EmbedderSpec:
    """The named embedder's spec; ValueError naming the choices when the manifest has no such embedder."""
    known = embedders()
    if name not in known:
        raise ValueError(f"unknown embedder {name!r}: the model manifest (services/models/manifest.json) has "
                         f"{', '.join(sorted(known))}")
    return known[name]


def calibration_path(name: str, directory: Path = CALIBRATION_DIR) -> Path:
    return directory / f"{name}.json"


def load_calibration(name: str, directory: Path = CALIBRATION_DIR) -> Calibration | None:
    """The embedder's calibration record, None when it was never calibrated."""
    path = calibration_path(name, directory)
    if not path.is_file():
        return None
    cal = Calibration.model_validate_json(path.read_text())
    if cal.embedder != name:  # a record copied under another embedder's name: its threshold is not this one's
        raise ValueError(f"{path} calibrates {cal.embedder}, not {name}: run 'lfr eval DIR --embedder {name} "
                         "--calibrate'")
    return cal


def calibrated_threshold(name: str, directory: Path = CALIBRATION_DIR) -> float:
    """The embedder's recommended threshold; ValueError saying how to get one when it has no calibration."""
    cal = load_calibration(name, directory)
    if cal is None:
        raise ValueError(f"embedder {name} has no calibration ({calibration_path(name, directory)}): run "
                         f"'lfr eval DIR --embedder {name} --calibrate' on a labelled set, or set "
                         "LFR_MATCHER__THRESHOLD explicitly")
    return cal.recommended_threshold


def calibration_from_report(name: str, report: dict[str, Any], now: dt.datetime | None = None) -> Calibration:
    """The calibration record of one ``services.eval.evaluation.compute_metrics`` report; ValueError when the set
    has too few passers-by to say anything about false alerts."""
    counts = report.get("counts", {})
    nonmated = int(counts.get("nonmated_probes", 0))
    if nonmated < MIN_CALIBRATION_NONMATED:
        raise ValueError(f"{nonmated} passers-by (identities with one image) are too few to calibrate {name}: "
                         f"give a set with at least {MIN_CALIBRATION_NONMATED}")
    when = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return Calibration(
        embedder=name, dataset=Path(str(report.get("dataset", "?"))).name, measured=when,
        counts={k: int(counts[k]) for k in ("subjects_enrolled", "mated_probes", "nonmated_probes") if k in counts},
        threshold_zero_false_alerts=round(float(report["threshold_zero_false_alerts"]), 4),
        threshold_fpir_0_01=round(float(report["threshold_fpir_0.01"]), 4),
        threshold_fpir_0_001=round(float(report["threshold_fpir_0.001"]), 4),
        recommended_threshold=float(report["recommended_threshold"]),
        recommended_rule=str(report["recommended_threshold_rule"]),
        tpir_at_zero_false_alerts=round(float(report["tpir_at_zero_false_alerts"]), 4),
        tpir_at_fpir_0_01=round(float(report["tpir_at_fpir_0.01"]), 4),
        tpir_at_recommended=round(float(report["tpir_at_recommended"]), 4),
        fpir_at_recommended=round(float(report["fpir_at_recommended"]), 4))


def write_calibration(cal: Calibration, directory: Path = CALIBRATION_DIR) -> Path:
    path = calibration_path(cal.embedder, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(cal.model_dump(mode="json"), indent=2) + "\n")
    tmp.replace(path)
    return path
