"""Settings of the matcher service (gRPC 50053, metrics 9103).

The match threshold's path (docs/design.md): ``services/face/config.py:
DEFAULT_MATCH_THRESHOLD`` -> ``MatcherOptions.threshold`` here (env
``LFR_MATCHER__THRESHOLD``) -> ``services/matcher/worker.py: decide()``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from services.common import ports
from services.common.kafka import FACES_TOPIC, MATCHES_TOPIC
from services.common.settings import MilvusSettings, RedisSettings, Section, ServiceSettings
from services.face.config import DEFAULT_MATCH_THRESHOLD
from services.officers.state import GatingOptions


class MatcherOptions(Section):
    faces_topic: str = Field(FACES_TOPIC, min_length=1, description="input topic")
    matches_topic: str = Field(MATCHES_TOPIC, min_length=1, description="output topic")
    group_id: str = Field("lfr-matcher", min_length=1, description="Kafka consumer group")
    cameras_file: Path = Field(
        Path("deploy/local/cameras.yaml"), description="camera registry (YAML); relative paths are from the working directory"
    )
    threshold: float = Field(
        DEFAULT_MATCH_THRESHOLD, ge=-1.0, le=1.0,
        description="cosine similarity at or above which the best watchlist hit is a match (services/face/config.py)",
    )
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
        description="checked again here: a face from a camera whose zone lacks available officers is shredded unsearched",
    )


class MatcherSettings(ServiceSettings):
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = ports.section_defaults("matcher")

    milvus: MilvusSettings = Field(default_factory=MilvusSettings, description="Milvus vector store")
    redis: RedisSettings = Field(default_factory=RedisSettings, description="Redis (gating, ephemeral crop keys)")
    matcher: MatcherOptions = Field(default_factory=MatcherOptions, description="matcher options")

    @property
    def threshold(self) -> float:
        """The match threshold (``LFR_MATCHER__THRESHOLD``)."""
        return self.matcher.threshold
