"""Settings of the recognizer service (gRPC 50052, metrics 9102)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, model_validator

from services.common import ports
from services.common.kafka import FACES_TOPIC, FRAMES_TOPIC, LAG_INTERVAL_S
from services.common.settings import RedisSettings, Section, ServiceSettings, TritonSettings
from services.common.topics import FACES, FRAMES
from services.face.config import FaceConfig

FACES_RETENTION_S = FACES.retention_ms // 1000


class RecognizerOptions(Section):
    frames_topic: str = Field(FRAMES_TOPIC, min_length=1, description="input topic")
    faces_topic: str = Field(FACES_TOPIC, min_length=1, description="output topic")
    group_id: str = Field("lfr-recognizer", min_length=1, description="Kafka consumer group")
    cameras_file: Path = Field(
        Path("deploy/local/cameras.yaml"),
        description="camera registry (YAML); relative paths resolve against the repo root; frames from other "
        "cameras are dead-lettered UNKNOWN_CAMERA",
    )
    max_frame_bytes: int = Field(
        2_000_000, ge=10_000, le=FRAMES.max_message_bytes,
        description="largest Frame record accepted; bigger ones are dead-lettered OVERSIZED",
    )
    max_frame_side: int = Field(
        4096, ge=64, le=16384, description="largest decoded image side accepted (px); bigger is OVERSIZED"
    )
    require_sealed_frames: bool = Field(
        True,
        description="refuse frames that are not sealed (AES-256-GCM, services/common/frame_keys.py): dead letter "
        "UNSEALED without the payload, counted in lfr_dlq_messages_total; off only where ingest's "
        "frame_keys.enabled is off (benchmarks), never in an operation",
    )
    frame_key_cache_s: float = Field(
        60.0, gt=0, le=3600, description="a frame key stays in memory at most this long (<= the ingest key window)")
    max_age_s: float = Field(
        10.0, gt=0, le=FRAMES.retention_ms / 1000,
        description="frames captured longer ago than this are dropped unprocessed (live video goes stale)",
    )
    batch_frames: int = Field(8, ge=1, le=64, description="frames per face-pipeline call")
    analyse_concurrency: int = Field(
        1, ge=1, le=8,
        description="chunks of ``batch_frames`` of one partition batch analysed at once (one chunk's detection "
        "overlaps another's embedding on Triton); observations are still published in chunk order; "
        "1 = one chunk after the other. Measured on the 2-core CPU box (docs/benchmarks.md, pipeline: 4 cameras "
        "x 5 fps, saturated): 2 analysed 5.5-9.9 frames/s against 9.6-10.7 with 1, because there the models "
        "already compete for the same two cores with ingest, Kafka and the services; try 2 where Triton runs "
        "the models on a GPU and measure",
    )
    detector_max_batch: int = Field(
        8, ge=1, le=64, description="most frames per FaceBoxes request (the model's max_batch_size in Triton)"
    )
    model_max_batch: int = Field(
        64, ge=1, le=1024, description="most rows per O-Net / MobileFaceNet request (their max_batch_size)"
    )
    batch_delay_ms: float = Field(2.0, ge=0, le=100, description="micro-batching wait for concurrent requests")
    retry_initial_s: float = Field(0.5, gt=0, le=30, description="first wait after Triton or Redis failed")
    retry_max_s: float = Field(5.0, gt=0, le=300, description="longest wait between retries")
    key_ttl_s: int = Field(
        FACES_RETENTION_S, ge=1, le=3600,
        description="TTL of a face's data key in Redis (default: the faces topic's retention)",
    )
    crop_margin: float = Field(0.25, ge=0, le=1,
                               description="margin added around the face box on each side, x box size")
    crop_max_px: int = Field(160, ge=32, le=512, description="longest side of the adjudication crop")
    crop_jpeg_quality: int = Field(90, ge=30, le=100, description="JPEG quality of the crop")
    lag_interval_s: float = Field(
        LAG_INTERVAL_S, gt=0, le=300,
        description="lfr_consumer_lag is refreshed after every fetched batch and at least this often (seconds)")

    @model_validator(mode="after")
    def _retry_bounds(self) -> RecognizerOptions:
        if self.retry_max_s < self.retry_initial_s:
            raise ValueError("retry_max_s must be >= retry_initial_s")
        return self


class RecognizerSettings(ServiceSettings):
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = ports.section_defaults("recognizer")

    triton: TritonSettings = Field(default_factory=TritonSettings, description="Triton inference server")
    redis: RedisSettings = Field(default_factory=RedisSettings, description="Redis (face data keys)")
    recognizer: RecognizerOptions = Field(default_factory=RecognizerOptions, description="recognizer options")
    face: FaceConfig = Field(default_factory=FaceConfig,
                             description="face pipeline: detector, quality gate, embedder (LFR_FACE__EMBEDDER)")
