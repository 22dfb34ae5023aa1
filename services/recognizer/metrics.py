"""The recognizer's Prometheus metrics (names from the team's metric catalog)."""

from __future__ import annotations

import dataclasses

from prometheus_client import Counter, Histogram

from services.common.metrics import MetricsFactory

# catalog labels of lfr_faces_rejected_total{reason}
REJECT_REASONS: tuple[str, ...] = ("too_small", "blurred", "not_frontal", "low_score")


@dataclasses.dataclass(frozen=True)
class RecognizerMetrics:
    consumed: Counter
    dropped: Counter
    detected: Counter
    rejected: Counter
    embedded: Counter
    stage_latency: Histogram

    @classmethod
    def create(cls, factory: MetricsFactory) -> "RecognizerMetrics":
        m = cls(
            consumed=factory.counter("frames_consumed_total", "frames taken from Kafka", ("service",)),
            dropped=factory.counter(
                "frames_dropped_total",
                "frames not analysed (stale: older than max_age_s; error: dependencies down at shutdown)",
                ("camera", "reason"),
            ),
            detected=factory.counter("faces_detected_total", "faces found by the detector"),
            rejected=factory.counter("faces_rejected_total", "faces refused by the quality gate", ("reason",)),
            embedded=factory.counter("faces_embedded_total", "faces embedded, sealed and published"),
            stage_latency=factory.histogram("stage_latency_seconds", "time spent in a pipeline stage", ("stage",)),
        )
        for reason in REJECT_REASONS:
            m.rejected.labels(reason)
        return m
