"""The health view's numbers, read from the services' /metrics (Prometheus text,
parsed with prometheus_client.parser) or from the Prometheus API when
configured. Nothing is recomputed from raw data: throughput is a counter's
rate between two reads (or PromQL ``rate``), latency quantiles come from the
services' own histogram buckets (as ``histogram_quantile`` does)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
import urllib.parse
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

# (label in the page, metric, label that splits it)
THROUGHPUT: tuple[tuple[str, str, str], ...] = (
    ("frames captured", "lfr_frames_captured_total", ""),
    ("frames published", "lfr_frames_published_total", ""),
    ("frames dropped", "lfr_frames_dropped_total", "reason"),
    ("frames consumed", "lfr_frames_consumed_total", "service"),
    ("faces detected", "lfr_faces_detected_total", ""),
    ("faces embedded", "lfr_faces_embedded_total", ""),
    ("matches", "lfr_matches_total", ""),
    ("non-matches discarded", "lfr_nonmatches_discarded_total", ""),
    ("alerts", "lfr_alerts_total", ""),
    ("dead letters", "lfr_dlq_messages_total", "reason"),
)
QUANTILES = (0.5, 0.95)
# what the Prometheus mode reports as up or down: the platform's scrape jobs (services/stack/prometheus.py,
# deploy/prometheus/prometheus.yml) and Triton
UP_QUERY = 'up{job=~"lfr-.+|triton"}'


def fetch_text(url: str, timeout_s: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as r:  # noqa: S310 (configured URLs)
        return r.read().decode()


def parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            out[key] = out.get(key, 0.0) + float(s.value)
    return out


def total(samples: Samples, name: str, **labels: str) -> float | None:
    want = set(labels.items())
    vals = [v for (n, ls), v in samples.items() if n == name and want <= set(ls)]
    return sum(vals) if vals else None


def split(samples: Samples, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for (n, ls), v in samples.items():
        if n == name:
            key = dict(ls).get(label, "")
            out[key] = out.get(key, 0.0) + v
    return out


def bucket_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """Prometheus's histogram_quantile over cumulative (le, count) buckets."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            width = count - prev_count
            return le if width <= 0 else prev_le + (le - prev_le) * (rank - prev_count) / width
        prev_le, prev_count = le, count
    return None


def histogram(samples: Samples, name: str, **labels: str) -> dict[str, float | None]:
    want = set(labels.items())
    per_le: dict[float, float] = {}
    for (n, ls), v in samples.items():
        d = dict(ls)
        if n == f"{name}_bucket" and want <= set(ls):
            le = float(d["le"])
            per_le[le] = per_le.get(le, 0.0) + v
    count = total(samples, f"{name}_count", **labels)
    ssum = total(samples, f"{name}_sum", **labels)
    out: dict[str, float | None] = {"count": count, "mean": (ssum / count) if count and ssum is not None else None}
    for q in QUANTILES:
        out[f"p{int(q * 100)}"] = bucket_quantile(q, list(per_le.items()))
    return out


@dataclasses.dataclass
class Snapshot:
    at: float
    samples: Samples
    up: dict[str, bool]
    errors: dict[str, str]


@dataclasses.dataclass
class HealthReport:
    source: str
    up: dict[str, bool]
    errors: dict[str, str]
    throughput: list[dict[str, Any]]      # stage, split, total, per_s
    latency: dict[str, dict[str, float | None]]  # "frame_to_alert" and per stage
    lag: list[dict[str, Any]]             # topic, group, lag
    dependencies: list[dict[str, Any]]    # service, dependency, up
    audit_chain_ok: float | None


class HealthReader:
    """Scrapes the targets (in a thread) and keeps the previous read for rates."""

    def __init__(self, targets: dict[str, str], prometheus_url: str | None = None) -> None:
        self.targets = targets
        self.prometheus_url = prometheus_url.rstrip("/") if prometheus_url else None
        self._previous: Snapshot | None = None
        self._lock = asyncio.Lock()

    def _scrape(self) -> Snapshot:
        samples: Samples = {}
        up: dict[str, bool] = {}
        errors: dict[str, str] = {}
        for name, url in self.targets.items():
            try:
                part = parse(fetch_text(url))
            except (OSError, ValueError) as e:
                up[name], errors[name] = False, f"{type(e).__name__}: {str(e)[:120]}"
                continue
            up[name] = True
            for (n, ls), v in part.items():
                key = (n, tuple(sorted((*ls, ("service", name)) if n.startswith("lfr_dependency_up") else ls)))
                samples[key] = samples.get(key, 0.0) + v
        return Snapshot(time.time(), samples, up, errors)

    async def report(self) -> HealthReport:
        if self.prometheus_url:
            return await asyncio.to_thread(self._from_prometheus)
        async with self._lock:
            snap = await asyncio.to_thread(self._scrape)
            prev, self._previous = self._previous, snap
        return build_report(snap, prev)

    def _query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        data = json.loads(fetch_text(url, 5.0))
        if data.get("status") != "success":
            raise ValueError(f"Prometheus query failed: {data.get('error', '?')}")
        return list(data["data"]["result"])

    def _from_prometheus(self) -> HealthReport:
        errors: dict[str, str] = {}
        throughput: list[dict[str, Any]] = []
        latency: dict[str, dict[str, float | None]] = {}
        lag: list[dict[str, Any]] = []
        deps: list[dict[str, Any]] = []
        chain: float | None = None
        up: dict[str, bool] = {}
        try:
            rows = self._query(UP_QUERY)
            names = [r["metric"].get("service") or r["metric"].get("job", "?") for r in rows]
            for r, name in zip(rows, names):
                if names.count(name) > 1:  # one service scraped at several addresses: say which
                    name = f"{name} {r['metric'].get('instance', '')}"
                up[name] = float(r["value"][1]) == 1
                if not up[name]:
                    errors[name] = "Prometheus cannot scrape its /metrics (up == 0)"
            for stage, metric, by in THROUGHPUT:
                grouping = f" by ({by})" if by else ""
                totals = {r["metric"].get(by, ""): float(r["value"][1])
                          for r in self._query(f"sum{grouping}({metric})")}
                rates = {r["metric"].get(by, ""): float(r["value"][1])
                         for r in self._query(f"sum{grouping}(rate({metric}[1m]))")}
                for key, tot in sorted(totals.items()):
                    throughput.append({"stage": stage, "split": key, "total": tot, "per_s": rates.get(key)})
            entry: dict[str, float | None] = {}
            for q in QUANTILES:
                r = self._query(f"histogram_quantile({q}, sum by (le) (rate(lfr_frame_to_alert_seconds_bucket[5m])))")
                entry[f"p{int(q * 100)}"] = float(r[0]["value"][1]) if r else None
            latency["frame_to_alert"] = entry
            for r in self._query("lfr_consumer_lag"):
                lag.append({"topic": r["metric"].get("topic", ""), "group": r["metric"].get("group", ""),
                            "lag": float(r["value"][1])})
            for r in self._query("lfr_dependency_up"):
                deps.append({"service": r["metric"].get("job", ""), "dependency": r["metric"].get("dependency", ""),
                             "up": float(r["value"][1]) == 1})
            res = self._query("min(lfr_audit_chain_ok)")
            chain = float(res[0]["value"][1]) if res else None
        except (OSError, ValueError, KeyError) as e:
            errors["prometheus"] = f"{type(e).__name__}: {str(e)[:200]}"
        return HealthReport(source=f"Prometheus {self.prometheus_url}",
                            up={"prometheus": "prometheus" not in errors, **up}, errors=errors,
                            throughput=throughput, latency=latency, lag=lag, dependencies=deps, audit_chain_ok=chain)


def build_report(snap: Snapshot, prev: Snapshot | None) -> HealthReport:
    s = snap.samples
    dt = (snap.at - prev.at) if prev is not None else 0.0
    throughput: list[dict[str, Any]] = []
    for stage, metric, by in THROUGHPUT:
        parts = split(s, metric, by) if by else ({"": t} if (t := total(s, metric)) is not None else {})
        before = (split(prev.samples, metric, by) if by else {"": total(prev.samples, metric) or 0.0}) \
            if prev is not None else {}
        for key, value in sorted(parts.items()):
            rate = (value - before.get(key, 0.0)) / dt if prev is not None and dt > 0 else None
            throughput.append({"stage": stage, "split": key, "total": value,
                               "per_s": None if rate is None or rate < 0 else rate})
    latency = {"frame_to_alert": histogram(s, "lfr_frame_to_alert_seconds")}
    for stage in sorted(split(s, "lfr_stage_latency_seconds_count", "stage")):
        latency[f"stage {stage}"] = histogram(s, "lfr_stage_latency_seconds", stage=stage)
    lag = [{"topic": dict(ls).get("topic", ""), "group": dict(ls).get("group", ""), "lag": v}
           for (n, ls), v in sorted(s.items()) if n == "lfr_consumer_lag"]
    deps = [{"service": dict(ls).get("service", ""), "dependency": dict(ls).get("dependency", ""), "up": v == 1}
            for (n, ls), v in sorted(s.items()) if n == "lfr_dependency_up"]
    chain_vals = [v for (n, _), v in s.items() if n == "lfr_audit_chain_ok"]
    return HealthReport(source="services' /metrics", up=snap.up, errors=snap.errors, throughput=throughput,
                        latency=latency, lag=lag, dependencies=deps,
                        audit_chain_ok=min(chain_vals) if chain_vals else None)
