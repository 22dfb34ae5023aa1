"""Settings of the matcher service (gRPC 50053, metrics 9103).

The match threshold's path (docs/design.md): the active embedder (``face.embedder``, env
``LFR_FACE__EMBEDDER``) -> its calibration record (``services/models/calibration/<embedder>.json``, written by
``lfr eval DIR --calibrate``; its ``recommended_threshold``) -> ``MatcherSettings.threshold_choice()`` here,
unless ``matcher.threshold`` (env ``LFR_MATCHER__THRESHOLD``) overrides it -> ``services/matcher/worker.py:
decide()``. The matcher logs which one applies when it starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from services.common import ports
from services.common.availability import GatingOptions
from services.common.errors import SetupError
from services.common.kafka import FACES_TOPIC, MATCHES_TOPIC
from services.common.settings import MilvusSettings, RedisSettings, Section, ServiceSettings
from services.face.config import FaceConfig
from services.face.embedders import calibration_path, load_calibration


class MatcherOptions(Section):
    faces_topic: str = Field(FACES_TOPIC, min_length=1, description="input topic")
    matches_topic: str = Field(MATCHES_TOPIC, min_length=1, description="output topic")
    group_id: str = Field("lfr-matcher", min_length=1, description="Kafka consumer group")
    cameras_file: Path = Field(
        Path("deploy/local/cameras.yaml"),
        description="camera registry (YAML); relative paths are from the working directory"
    )
    threshold: float | None = Field(
        None, ge=-1.0, le=1.0,
        description="cosine similarity at or above which the best watchlist hit is a match. Unset (the default): "
                    "the active embedder's calibrated threshold (services/models/calibration/<face.embedder>.json). "
                    "Set it only from `lfr eval --calibrate` on your own data, together with threshold_embedder: "
                    "scores of two embedders are on different scales",
    )
    threshold_embedder: str | None = Field(
        None, description="the embedder an explicit threshold was tuned for (LFR_MATCHER__THRESHOLD_EMBEDDER); "
                          "required with threshold, and it must be face.embedder: a threshold never follows the "
                          "platform to another model")
    top_k: int = Field(
        1, ge=1, le=1000,
        description="subjects kept per face (Milvus is asked for top_k x 4 rows, then one per subject). decide() looks "
                    "at the best one only, so 1 is enough; more rows cost Milvus time per face (README, Watchlist "
                    "search: 40 rows vs 4 at 32 faces per call, 0.53 vs 0.38 ms per face)")
    retry_max_backoff_s: float = Field(
        5.0, gt=0, le=300, description="longest wait between retries while Redis or Milvus is down"
    )
    gating: GatingOptions = Field(
        default_factory=GatingOptions,
        description="checked again here: a face from a camera whose zone lacks available officers is shredded "
                    "unsearched",
    )


class MatcherSettings(ServiceSettings):
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = ports.section_defaults("matcher")

    milvus: MilvusSettings = Field(default_factory=MilvusSettings, description="Milvus vector store")
    redis: RedisSettings = Field(default_factory=RedisSettings, description="Redis (gating, ephemeral crop keys)")
    matcher: MatcherOptions = Field(default_factory=MatcherOptions, description="matcher options")

    face: FaceConfig = Field(default_factory=FaceConfig,
                             description="only face.embedder is read here: whose faces collection is searched and "
                                         "whose calibration gives the default threshold")

    def threshold_choice(self) -> tuple[float, str]:
        """The match threshold and where it comes from (for the start-up log line). SetupError when it is not
        set and the embedder has no calibration."""
        embedder = self.face.embedder
        cal = load_calibration(embedder)
        if self.matcher.threshold is not None:
            tuned_for = self.matcher.threshold_embedder
            if tuned_for != embedder:
                raise SetupError(
                    f"matcher.threshold {self.matcher.threshold} was set for embedder {tuned_for or '(not said)'}, "
                    f"but the platform runs {embedder}: scores of two embedders are on different scales",
                    f"unset LFR_MATCHER__THRESHOLD to use {embedder}'s calibration, or set a threshold measured "
                    f"for {embedder} with LFR_MATCHER__THRESHOLD_EMBEDDER={embedder}")
            note = (f"overrides {embedder}'s calibrated {cal.recommended_threshold}" if cal is not None
                    else f"{embedder} has no calibration")
            return self.matcher.threshold, f"matcher.threshold (LFR_MATCHER__THRESHOLD), {note}"
        if cal is None:
            raise SetupError(f"embedder {embedder} has no calibration ({calibration_path(embedder)}), so the matcher "
                             "has no threshold for its scores",
                             f"run 'lfr eval DIR --embedder {embedder} --calibrate' on a labelled set, or set "
                             "LFR_MATCHER__THRESHOLD")
        return cal.recommended_threshold, (f"{embedder}'s calibration on {cal.dataset} ({cal.measured}): zero false "
                                           f"alerts above {cal.threshold_zero_false_alerts}, {cal.recommended_rule}")

    @property
    def threshold(self) -> float:
        """The match threshold that applies (see threshold_choice)."""
        return self.threshold_choice()[0]
