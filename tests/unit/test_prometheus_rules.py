"""The Prometheus rules and configs, checked by promtool itself (Debian's ``prometheus`` package, which
``make setup`` installs through ``lfr stack install``): ``promtool check config`` on the local stack's
generated config and on deploy/prometheus/prometheus.yml, ``promtool check rules``, and
``promtool test rules`` on deploy/prometheus/tests/*.test.yml, where every alert must have a case where it
fires and a case where it stays quiet, and breaking an alert (never firing, always firing) must fail them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.stack.base import StackPaths
from services.stack.prometheus import RULE_FILES, PrometheusComponent

ROOT = Path(__file__).resolve().parents[2]
PROM = ROOT / "deploy" / "prometheus"
TESTS = sorted((PROM / "tests").glob("*.test.yml"))


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    assert found, ("promtool is missing — fix: run 'make setup' (or '.venv/bin/lfr stack install --only prometheus'), "
                   "which installs Debian's prometheus package")
    return found


def run(argv: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=120, cwd=cwd, check=False)


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_names() -> list[str]:
    return [r["alert"] for g in load(PROM / "alerts.rules.yml")["groups"] for r in g["rules"] if "alert" in r]


def test_check_rules(promtool: str) -> None:
    res = run([promtool, "check", "rules", *RULE_FILES])
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(alert_names())} rules found" in res.stdout


def test_check_rules_rejects_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.rules.yml"
    bad.write_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(rate(x[5m])\n",
                   encoding="utf-8")
    res = run([promtool, "check", "rules", bad])
    assert res.returncode != 0 and "parse error" in (res.stdout + res.stderr)


def test_check_config_of_the_local_stack(promtool: str, tmp_path: Path) -> None:
    comp = PrometheusComponent(StackPaths(cache=tmp_path / "cache", state=tmp_path / "state"))
    comp.prepare()
    res = run([promtool, "check", "config", comp.config_file])
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in res.stdout
    config = load(comp.config_file)
    static = {t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    assert {f"127.0.0.1:{p}" for p in range(9101, 9108)} | {"127.0.0.1:8002"} <= static
    assert config["global"]["scrape_interval"] == "5s"
    assert all(t.startswith("127.0.0.1:") for t in static)


def test_check_config_of_compose(promtool: str, tmp_path: Path) -> None:
    """deploy/prometheus/prometheus.yml reads the rules where compose mounts them: point it at copies."""
    config = load(PROM / "prometheus.yml")
    for f in RULE_FILES:
        shutil.copy(f, tmp_path / f.name)
    config["rule_files"] = [str(tmp_path / Path(f).name) for f in config["rule_files"]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    res = run([promtool, "check", "config", tmp_path / "prometheus.yml"])
    assert res.returncode == 0, res.stdout + res.stderr


def test_rule_unit_tests_pass(promtool: str) -> None:
    assert TESTS, f"no promtool tests in {PROM / 'tests'}"
    res = run([promtool, "test", "rules", *TESTS])
    assert res.returncode == 0, res.stdout + res.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in TESTS:
        doc = load(path)
        assert {Path(f).name for f in doc["rule_files"]} == {f.name for f in RULE_FILES}, path
        for case in doc["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = set(alert_names())
    assert names - fires == set(), "alerts with no case where they fire"
    assert names - quiet == set(), "alerts with no case where they stay quiet"


@pytest.mark.parametrize("alert", alert_names())
@pytest.mark.parametrize("broken_expr", ["vector(1) == 0", "vector(1)"], ids=["never-fires", "always-fires"])
def test_breaking_an_alert_fails_its_tests(promtool: str, tmp_path: Path, alert: str, broken_expr: str) -> None:
    """The cases are not vacuous: an alert that never fires, or fires on anything, fails them."""
    rules = load(PROM / "alerts.rules.yml")
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                rule["expr"], rule["for"] = broken_expr, "0s"
    (tmp_path / "tests").mkdir()
    shutil.copy(PROM / "recording.rules.yml", tmp_path / "recording.rules.yml")
    (tmp_path / "alerts.rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    for t in TESTS:
        shutil.copy(t, tmp_path / "tests" / t.name)
    res = run([promtool, "test", "rules", *(f"tests/{t.name}" for t in TESTS)], cwd=tmp_path)
    assert res.returncode != 0, f"{alert} with expr {broken_expr!r} still passes {', '.join(t.name for t in TESTS)}"
    assert f'alertname: {alert}' in res.stdout + res.stderr


def test_the_console_metrics_port_is_the_one_scraped() -> None:
    from services.common.ports import CONSOLE_METRICS_PORT
    from services.console.config import ConsoleSettings

    assert ConsoleSettings.section_defaults["metrics"]["port"] == CONSOLE_METRICS_PORT
