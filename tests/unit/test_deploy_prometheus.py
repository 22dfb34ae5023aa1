"""deploy/prometheus: rule files checked with Prometheus' own rulefmt + PromQL parser (promcheck,
built by install-tools.sh), and the required alerts present; prometheus.yml scrapes every service."""

from __future__ import annotations

import json

import pytest
import yaml

from deploy_support import ROOT, run, tool

PROM = ROOT / "deploy" / "prometheus"
RULE_FILES = [PROM / "recording.rules.yml", PROM / "alerts.rules.yml"]


@pytest.fixture(scope="module")
def rules() -> dict[str, dict]:
    proc = run([tool("promcheck"), "rules", *RULE_FILES])
    assert proc.returncode == 0, proc.stderr
    parsed = json.loads(proc.stdout)
    return {r["name"]: r for rules in parsed.values() for r in rules}


def test_rule_files_are_valid(rules: dict[str, dict]) -> None:
    assert len(rules) >= 30


def test_promcheck_rejects_bad_rules(tmp_path) -> None:
    bad = tmp_path / "bad.rules.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(rate(x[5m])\n",
                   encoding="utf-8")
    proc = run([tool("promcheck"), "rules", bad])
    assert proc.returncode != 0 and "parse error" in proc.stderr
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        for: soon\n",
                   encoding="utf-8")
    assert run([tool("promcheck"), "rules", bad]).returncode != 0


@pytest.mark.parametrize(
    ("alert", "must_use"),
    [
        ("LfrConsumerLagGrowing", "lfr:consumer_lag:deriv5m"),
        ("TritonInferenceErrors", "triton:request_failure:rate5m"),
        ("LfrCamerasWithoutOfficerOnDuty", "lfr:officers_available:sum"),
        ("LfrFrameToAlertP95OverSlo", "lfr:frame_to_alert_seconds:p95_5m"),
        ("LfrDeadLetterRate", "lfr:dlq_messages:rate5m"),
        ("LfrAuditChainBroken", "lfr_audit_chain_ok"),
    ],
)
def test_required_alerts_exist(rules: dict[str, dict], alert: str, must_use: str) -> None:
    assert must_use in rules[alert]["metrics"]


def test_recording_rules_used_by_alerts_are_defined(rules: dict[str, dict]) -> None:
    recorded = {name for name in rules if ":" in name}
    for rule in rules.values():
        for metric in rule["metrics"]:
            if ":" in metric:
                assert metric in recorded, f"{rule['name']} uses undefined recording rule {metric}"


def test_alerts_have_severity_and_runbook() -> None:
    doc = yaml.safe_load((PROM / "alerts.rules.yml").read_text(encoding="utf-8"))
    ops = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8").lower()
    for group in doc["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
            anchor = rule["annotations"]["runbook"].split("#", 1)[1]
            assert f'<a id="{anchor}">' in ops or f"# {anchor.replace('-', ' ')}" in ops, (
                f"runbook anchor {anchor} missing")


def test_scrape_config_covers_every_service_the_console_and_triton() -> None:
    config = yaml.safe_load((PROM / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    expected = {"ingest:9101", "recognizer:9102", "matcher:9103", "alerts:9104", "watchlist:9105", "officers:9106",
                "console:9107", "triton:8002"}
    assert expected <= targets
    mounted = {"/etc/prometheus/rules/" + f.name for f in RULE_FILES}
    assert set(config["rule_files"]) == mounted
