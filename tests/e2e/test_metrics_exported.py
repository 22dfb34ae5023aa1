"""Every metric named in deploy/prometheus/metrics-catalog.txt (and so in the
Grafana dashboard and the Prometheus rules: tests/unit/test_deploy_metrics_catalog.py
ties those to the catalog) is really exported by a running service.

The session's real pipeline (recognizer, matcher, alerts, watchlist), the officers
service and ingest streaming a camera (an officer on duty, so frames flow), and
Triton's own :8002: each /metrics is scraped and every catalog name must be on some
page. A histogram counts through its ``_bucket``/``_sum``/``_count`` samples; a
labelled metric with no sample yet counts through its ``# HELP``/``# TYPE`` lines
(prometheus_client writes them as soon as the metric exists)."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import pytest

from e2e_support import E2E, REPO
from services.cli.launch import OFFICERS, PIPELINE_ORDER, DutyOfficer, ServiceProcess, metric, scrape, write_registry

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

CATALOG = REPO / "deploy" / "prometheus" / "metrics-catalog.txt"
TRITON_METRICS = "http://127.0.0.1:8002/metrics"
_LINE = re.compile(r"^(?:# (?:HELP|TYPE) (\w+)|(\w+)(?:\{| ))")


def catalog() -> list[str]:
    return [ln.split("#", 1)[0].strip() for ln in CATALOG.read_text().splitlines() if ln.split("#", 1)[0].strip()]


def names_on(text: str) -> set[str]:
    out = set()
    for line in text.splitlines():
        if m := _LINE.match(line):
            out.add(m.group(1) or m.group(2))
    return out


def exported(name: str, names: set[str]) -> bool:
    return bool({name, f"{name}_bucket", f"{name}_count", f"{name}_sum"} & names)


def page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (loopback)
        return r.read().decode()


async def test_every_catalog_metric_is_exported(e2e: E2E, officers: ServiceProcess) -> None:
    await officers.wait_serving(60)
    camera = e2e.cameras["metrics"]
    registry: Path = write_registry(e2e.layout.cameras_file.parent / "ingest-metrics.yaml", [camera])
    officer = DutyOfficer(f"e2e-{e2e.tag}-metrics-officer", [camera.zone])
    await officer.start()
    pages: dict[str, str] = {}
    try:
        await e2e.pipeline.start(("ingest",), ingest_cameras=registry)
        ingest = e2e.pipeline.services["ingest"]
        deadline = time.monotonic() + 60
        while metric(scrape(ingest.metrics_port), "lfr_frames_published_total", camera=camera.id) < 10:
            assert time.monotonic() < deadline, "ingest published no frames in 60 s"
            e2e.pipeline.check_alive()
            time.sleep(0.5)
        time.sleep(3)  # the frames reach the recognizer, the lag gauges refresh
        for name in ("ingest", *PIPELINE_ORDER, OFFICERS):
            pages[name] = page(f"http://127.0.0.1:{e2e.layout.metrics_port(name)}/metrics")
        pages["triton"] = page(TRITON_METRICS)
    finally:
        e2e.pipeline.stop(("ingest",))
        await officer.stop()
    by_service = {svc: names_on(text) for svc, text in pages.items()}
    where = {name: sorted(s for s, names in by_service.items() if exported(name, names)) for name in catalog()}
    for name, services in where.items():
        print(f"{name:42s} {', '.join(services) or 'MISSING'}")
    missing = [name for name, services in where.items() if not services]
    assert not missing, f"catalog metrics no running service exports: {missing}"
