"""Camera ingest: reads cameras and publishes Frame protobufs to lfr.frames.v1.

Foundation state: the worker connects its Kafka producer and keeps health
SERVING while the broker answers. Camera sources, sampling, JPEG encoding,
drop-oldest and gating are the pipeline and officers issues' work."""

from __future__ import annotations

from services.common.service import ServiceContext
from services.common.worker import KafkaWorker
from services.ingest.config import IngestSettings


class CameraIngestor(KafkaWorker):
    """Publishes frames keyed by camera id (``record_key(camera_id)``)."""

    input_topic = None  # ingest only produces

    def __init__(self, ctx: ServiceContext, settings: IngestSettings) -> None:
        super().__init__(ctx)
        self.options = settings.ingest
