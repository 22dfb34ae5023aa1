"""Settings of the watchlist service (gRPC 50055, metrics 9105)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from services.common import ports
from services.common.kafka import AUDIT_TOPIC
from services.common.settings import MiB, MilvusSettings, RedisSettings, Section, ServiceSettings, TritonSettings
from services.face.config import FaceConfig


class WatchlistOptions(Section):
    reaper_interval_s: float = Field(10.0, gt=0, le=3600,
                                     description="how often expired watchlists are destroyed (the bound on how "
                                                 "long an expired watchlist's vectors can outlive its window)")
    audit_topic: str = Field(AUDIT_TOPIC, min_length=1, description="audit log topic")
    audit_verify_interval_s: float = Field(
        300.0, ge=0, le=86_400,
        description="re-verify the whole audit chain this often and export lfr_audit_chain_ok; 0 disables")
    max_images_per_request: int = Field(16, ge=1, le=256, description="images in one EnrolSubject")
    max_image_bytes: int = Field(8 * MiB, ge=1024, le=64 * MiB, description="largest encoded image accepted")
    max_image_side: int = Field(8192, ge=64, le=65_535,
                                description="largest width or height (px) of an enrolment image, read from its header")
    max_image_pixels: int = Field(40_000_000, ge=4096, le=1_000_000_000,
                                  description="largest width x height of an enrolment image (decompression bombs)")
    max_decoded_bytes_per_request: int = Field(
        256 * MiB, ge=16 * MiB, le=4096 * MiB,
        description="largest sum of width x height x 3 (the decoded bytes, from the headers) over one EnrolSubject's "
                    "images; a request over it is refused before any image is decoded (the images are then decoded "
                    "one at a time)")
    bulk_batch: int = Field(2000, ge=1, le=20_000, description="rows per Milvus insert during BulkImport")
    jpeg_quality: int = Field(90, ge=30, le=100, description="JPEG quality of the stored aligned face")
    local_engine_file: Path | None = Field(
        None, description="milvus-lite's native engine only (the local stack): its SQLite data file "
                          "(<state>/data/milvus/milvus.db), VACUUMed after every delete of faces (close, subject "
                          "removal, expiry) so that the destroyed rows' bytes leave the file at once: the engine "
                          "cannot compact and leaves them in its pages. Unset with a Milvus standalone/cluster "
                          "(compaction there; docs/design.md, erasure)")
    compact_wait_s: float = Field(
        5.0, ge=0, le=600,
        description="a Milvus standalone/cluster (local_engine_file unset): after every delete of faces (close, "
                    "subject removal, expiry) the service asks Milvus to compact the faces collection, so the "
                    "sealed segments are rewritten without the deleted rows, and waits up to this long for it "
                    "before answering (a compaction still running then completes on its own; keep this under "
                    "the callers' deadlines: the console's is 10 s); 0 = ask, do not wait. The old segment "
                    "files then go at Milvus' garbage collection (dataCoord.gc.*, k8s/base/milvus/milvus.yaml)")
    unit_norm_tolerance: float = Field(1e-3, gt=0, le=0.5, description="|norm-1| accepted for BulkImport vectors")
    lock_lease_s: float = Field(
        300.0, ge=5, le=3600,
        description="lease of a watchlist's lock (enrol, close, expiry, move: one at a time per watchlist, across "
                    "replicas); a replica that dies holding it frees it after this long")
    lock_wait_s: float = Field(10.0, ge=0.1, le=300,
                               description="longest a call waits for a watchlist's lock before UNAVAILABLE (retry)")
    reembed_from_retained_images: bool = Field(
        True, description="ReembedWatchlist may embed the retained aligned enrolment images (kept for the "
                          "officers' side-by-side review) again with a new embedder. A force whose retention rules "
                          "allow those images for review only sets this false: ReembedWatchlist then refuses and "
                          "says to enrol again from the source photos")


class WatchlistSettings(ServiceSettings):
    section_defaults: ClassVar[dict[str, dict[str, Any]]] = ports.section_defaults("watchlist")

    milvus: MilvusSettings = Field(default_factory=MilvusSettings, description="Milvus (faces + watchlist metadata)")
    redis: RedisSettings = Field(default_factory=RedisSettings, description="Redis (audit writer lock)")
    triton: TritonSettings = Field(default_factory=TritonSettings, description="Triton (detector, embedder)")
    watchlist: WatchlistOptions = Field(default_factory=WatchlistOptions, description="watchlist options")
    face: FaceConfig = Field(default_factory=FaceConfig,
                             description="the enrolment pipeline: detector, quality gate, embedder "
                                         "(LFR_FACE__EMBEDDER; the same as the recognizer's)")
