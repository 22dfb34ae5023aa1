"""Every lfr_* / nv_* metric used by the Prometheus rules and the Grafana dashboard is in
deploy/prometheus/metrics-catalog.txt (the BRIEF's catalog), and every dashboard query parses.

Metric names are taken from the parsed PromQL (promcheck), not from a regex over text. An
integration test can use the same catalog to check that the running services export each name.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from deploy_support import CATALOG, ROOT, catalog, run, tool

DASHBOARDS = sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((ROOT / "deploy" / "prometheus").glob("*.rules.yml"))
HISTOGRAMS = {"lfr_stage_latency_seconds", "lfr_frame_to_alert_seconds"}


def base_name(name: str) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
            return name[: -len(suffix)]
    return name


def dashboard_exprs() -> list[str]:
    exprs = []
    for path in DASHBOARDS:
        stack = [json.loads(path.read_text(encoding="utf-8"))]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if isinstance(node.get("expr"), str):
                    exprs.append(node["expr"])
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return exprs


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's interval variables with a duration so the PromQL parser accepts them."""
    return re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)


def used_metrics(parsed_metrics: list[str]) -> set[str]:
    return {base_name(m) for m in parsed_metrics if m.startswith(("lfr_", "nv_"))}


def test_catalog_matches_the_brief_shape() -> None:
    names = catalog()
    assert len(names) == len(set(names)) >= 28
    assert all(re.fullmatch(r"(lfr|nv)_[a-z0-9_]+", n) for n in names), CATALOG


@pytest.fixture(scope="module")
def dashboard_parsed() -> list[dict]:
    exprs = [grafana_to_promql(e) for e in dashboard_exprs()]
    assert exprs, "no dashboard queries found"
    proc = subprocess.run([str(tool("promcheck")), "exprs"], input=json.dumps(exprs), capture_output=True, text=True,
                          timeout=60, check=False)
    parsed = json.loads(proc.stdout)
    errors = [f"{p['expr']}: {p['error']}" for p in parsed if p.get("error")]
    assert not errors and proc.returncode == 0, errors or proc.stderr
    return parsed


def test_dashboard_metrics_are_in_the_catalog(dashboard_parsed: list[dict]) -> None:
    used = set().union(*(used_metrics(p["metrics"] or []) for p in dashboard_parsed))
    assert used - catalog() == set()
    assert len(used) >= 20  # the dashboard really covers the catalog


def test_rule_metrics_are_in_the_catalog() -> None:
    proc = run([tool("promcheck"), "rules", *RULE_FILES])
    assert proc.returncode == 0, proc.stderr
    used = set()
    for rules in json.loads(proc.stdout).values():
        for rule in rules:
            used |= used_metrics(rule["metrics"])
    assert used - catalog() == set()
    assert {"lfr_consumer_lag", "lfr_audit_chain_ok", "nv_inference_request_failure"} <= used


def test_dashboard_has_the_required_panels() -> None:
    (path,) = [p for p in DASHBOARDS if p.name == "lfr-overview.json"]
    dash = json.loads(path.read_text(encoding="utf-8"))
    panels = {p["title"]: p for p in dash["panels"] if p["type"] != "row"}
    assert panels["Frame-to-alert latency"]["type"] == "heatmap"
    for title in ("Throughput per stage", "Match and non-match rates", "Alert outcomes", "Live precision (24 h)",
                  "Cameras active", "Kafka consumer lag", "Triton queue and compute time per request"):
        assert title in panels, title
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in panels.values():
        assert p["datasource"]["uid"] == "lfr-prometheus"
