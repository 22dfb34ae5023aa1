"""The local stack's real Prometheus (services/stack/prometheus.py) against the session's real pipeline.

The e2e pipeline runs on shifted ports (PORT_OFFSET): the test drops a file_sd targets file for them into
Prometheus' ``targets/`` (picked up as it changes) and, in ``rules.d/``, the project's own LfrServiceDown rule
(deploy/prometheus/alerts.rules.yml, same expression and labels) with a ``for:`` of 5 s instead of 1 m, loaded
with ``POST /-/reload``; both are removed (and Prometheus reloaded) at the end. Then, on the real server:

1. every target of the running pipeline (watchlist, recognizer, matcher, alerts, officers), Triton and
   Prometheus itself is up;
2. after the Hamilton clip streams (Lin-Manuel Miranda enrolled), ``lfr_frame_to_alert_seconds`` has samples,
   as many as the alerts raised at least;
3. the officers service is killed (SIGKILL, as a crash): LfrServiceDown fires for it, and the project's rule
   with its real ``for: 1m`` is at least pending; the console's health view, reading this Prometheus, shows the
   killed service down and the others up.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import yaml

from e2e_support import E2E, FACES_DIR, REPO
from services.cli.demo import Enrolment
from services.cli.launch import OFFICERS, PIPELINE_ORDER
from services.console.health import HealthReader
from services.stack.base import Component
from services.stack.manager import load_components
from services.stack.prometheus import PrometheusComponent, file_sd_entry

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

LMM = Enrolment(name="Lin-Manuel Miranda", subject_id="lin-manuel-miranda",
                image=FACES_DIR / "lin_manuel_miranda_1.png")
ALERTS_RULES = REPO / "deploy" / "prometheus" / "alerts.rules.yml"
T = TypeVar("T")


@dataclass
class Live:
    prom: PrometheusComponent
    label: str  # the `pipeline` label of this session's targets

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.prom.url}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (loopback)
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/query", query=promql)["result"])

    def gone(self, label: str) -> bool:
        """No active target carries ``pipeline=label``."""
        active = self.get("/api/v1/targets", state="active")["activeTargets"]
        return not [t for t in active if t["labels"].get("pipeline") == label]

    def reload(self) -> None:
        req = urllib.request.Request(f"{self.prom.url}/-/reload", method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 (loopback)
            assert r.status == 200


def wait_for(what: str, probe: Callable[[], T | None], timeout_s: float = 60.0) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        if (got := probe()) is not None:
            return got
        assert time.monotonic() < deadline, f"Prometheus: {what} not seen in {timeout_s:.0f} s"
        time.sleep(1.0)


def fast_service_down_rule(tag: str) -> dict[str, Any]:
    """The project's LfrServiceDown as it is, but for 5 s, marked with this session's tag."""
    rules = [r for g in yaml.safe_load(ALERTS_RULES.read_text(encoding="utf-8"))["groups"] for r in g["rules"]
             if r.get("alert") == "LfrServiceDown"]
    assert len(rules) == 1, f"LfrServiceDown must be in {ALERTS_RULES} once"
    rule = copy.deepcopy(rules[0])
    rule["for"] = "5s"
    rule["labels"] = {**rule["labels"], "e2e": tag}
    return {"groups": [{"name": f"e2e-{tag}", "rules": [rule]}]}


@pytest.fixture(scope="module")
def live(e2e: E2E) -> Iterator[Live]:
    comps: list[Component] = load_components(only=["prometheus"])
    prom = comps[0]
    assert isinstance(prom, PrometheusComponent)
    health = prom.status()
    if not health.healthy:
        pytest.fail(f"the stack's Prometheus is not healthy ({health.detail}) — fix: .venv/bin/lfr stack up")
    label = f"e2e-{e2e.tag}"
    targets = prom.targets_dir / f"{label}.json"
    rules = prom.rules_dir / f"{label}.yml"
    entries = [file_sd_entry(f"lfr-{name}", f"127.0.0.1:{e2e.layout.metrics_port(name)}", service=name,
                             pipeline=label) for name in (*PIPELINE_ORDER, OFFICERS)]
    targets.write_text(json.dumps(entries), encoding="utf-8")
    rules.write_text(yaml.safe_dump(fast_service_down_rule(e2e.tag)), encoding="utf-8")
    out = Live(prom, label)
    try:
        out.reload()
        yield out
    finally:
        # the targets first, and wait until they are gone (a reload at the same moment loses the file's removal)
        targets.unlink(missing_ok=True)
        wait_for(f"the targets of {label} dropped", lambda: out.gone(label) or None, timeout_s=30)
        rules.unlink(missing_ok=True)
        out.reload()


async def test_prometheus_scrapes_the_pipeline_sees_latency_and_alerts_on_a_killed_service(
        e2e: E2E, live: Live) -> None:
    await e2e.pipeline.start((OFFICERS,))
    officers = e2e.pipeline.services[OFFICERS]
    killed = f"127.0.0.1:{officers.metrics_port}"
    try:
        # 1. every target of the running pipeline, Triton and Prometheus is up
        expected = {f"127.0.0.1:{e2e.layout.metrics_port(n)}" for n in (*PIPELINE_ORDER, OFFICERS)}

        def all_up() -> list[dict[str, Any]] | None:
            active = live.get("/api/v1/targets", state="active")["activeTargets"]
            ours = [t for t in active if t["labels"].get("pipeline") == live.label
                    or t["labels"]["job"] in ("triton", "prometheus")]
            seen = {t["labels"]["instance"] for t in ours if t["labels"].get("pipeline") == live.label}
            return ours if seen == expected and all(t["health"] == "up" for t in ours) else None

        ours = wait_for(f"every target of {live.label}, triton and prometheus up", all_up)
        assert {t["labels"]["job"] for t in ours} >= {"triton", "prometheus", "lfr-alerts", "lfr-officers"}
        rules = live.get("/api/v1/rules", type="alert")["groups"]
        loaded = {r["name"] for g in rules for r in g["rules"]}
        assert {"LfrServiceDown", "LfrFrameToAlertP95OverSlo", "LfrAuditChainBroken"} <= loaded

        # 2. the demo stream: frame-to-alert samples reach Prometheus
        client = e2e.watchlists()
        wl = await e2e.new_watchlist(client, e2e.cameras["prometheus"].deployment_id, "prometheus")
        try:
            await client.enrol(wl, LMM)
            run = await e2e.run("prometheus")
        finally:
            await client.close(wl, "e2e test done")
            await client.close_channel()
        assert run.alerts, f"the Hamilton clip raised no alert: {run.summary()}"
        count_q = f'sum(lfr_frame_to_alert_seconds_count{{pipeline="{live.label}"}})'

        def counted() -> float | None:
            res = live.query(count_q)
            return float(res[0]["value"][1]) if res and float(res[0]["value"][1]) >= len(run.alerts) else None

        samples = wait_for(f"{count_q} >= {len(run.alerts)}", counted, timeout_s=30)
        p95 = live.query(f'histogram_quantile(0.95, sum by (le) '
                         f'(lfr_frame_to_alert_seconds_bucket{{pipeline="{live.label}"}}))')
        print(f"\nPrometheus: {samples:.0f} frame-to-alert samples, p95 {p95[0]['value'][1]} s")

        # 3. a crash: the officers service is killed; LfrServiceDown fires for it
        assert officers.proc is not None
        os.kill(officers.proc.pid, signal.SIGKILL)
        officers.proc.wait(10)

        def firing() -> list[dict[str, Any]] | None:
            alerts = [a for a in live.get("/api/v1/alerts")["alerts"]
                      if a["labels"].get("alertname") == "LfrServiceDown" and a["labels"].get("instance") == killed]
            fast = [a for a in alerts if a["labels"].get("e2e") == e2e.tag and a["state"] == "firing"]
            real = [a for a in alerts if "e2e" not in a["labels"]]
            return alerts if fast and real else None

        alerts = wait_for(f"LfrServiceDown firing for {killed}", firing, timeout_s=60)
        fast = next(a for a in alerts if a["labels"].get("e2e") == e2e.tag)
        assert fast["labels"]["job"] == "lfr-officers" and fast["labels"]["severity"] == "critical"
        assert "lfr-officers" in fast["annotations"]["summary"]
        assert {a["state"] for a in alerts if "e2e" not in a["labels"]} <= {"pending", "firing"}
        assert float(live.query(f'up{{instance="{killed}"}}')[0]["value"][1]) == 0
        others = live.query(f'up{{pipeline="{live.label}", instance!="{killed}"}} == 0')
        assert others == [], f"only the killed service is down: {others}"

        # the console's health page, reading this Prometheus (LFR_CONSOLE__PROMETHEUS_URL), says the same
        rep = await HealthReader({}, live.prom.url).report()
        assert rep.up["prometheus"] and rep.up[f"officers {killed}"] is False, rep.up
        assert rep.up[f"alerts 127.0.0.1:{e2e.layout.metrics_port('alerts')}"] is True, rep.up
        assert rep.latency["frame_to_alert"]["p95"] is not None
    finally:
        e2e.pipeline.stop((OFFICERS,))  # reaps the killed process (or stops it if the test failed before)
