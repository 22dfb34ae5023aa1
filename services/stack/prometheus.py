"""Prometheus from Debian's ``prometheus`` package on 127.0.0.1:9090.

Installed with apt when missing, like Redis. Started with a generated config (written under the state dir at
each start) that scrapes every local service's /metrics port (the six services and the console,
services/common/ports.py) and Triton's (8002) every few seconds, and evaluates the project's rules
(deploy/prometheus/*.rules.yml, read where they are in the checkout). Its TSDB lives in the state dir with a
short retention.

Two drop-in directories under its data dir let a run add to it without a new config:
``targets/*.json`` (file_sd, read as they change: e.g. the e2e pipeline's ports, shifted by its offset) and
``rules.d/*.yml`` (read at start and on ``POST /-/reload``; the lifecycle API is on, on loopback only).
"""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.errors import SetupError
from services.common.paths import REPO_ROOT
from services.common.ports import metrics_ports
from services.stack.base import Component, Health, StackPaths, apt_install
from services.stack.triton import METRICS_PORT as TRITON_METRICS_PORT

RULES_DIR = REPO_ROOT / "deploy" / "prometheus"
RULE_FILES: tuple[Path, ...] = (RULES_DIR / "recording.rules.yml", RULES_DIR / "alerts.rules.yml")


class PrometheusSettings(BaseSettings):
    """Overrides for the local Prometheus component (env prefix ``LFR_PROMETHEUS_``)."""

    model_config = SettingsConfigDict(env_prefix="LFR_PROMETHEUS_", extra="forbid")

    port: int = Field(default=9090, ge=1, le=65535, description="HTTP port (API, UI, /-/reload) on 127.0.0.1")
    retention: str = Field(default="1d", pattern=r"^[0-9]+[mhd]$",
                           description="how long samples are kept (--storage.tsdb.retention.time)")
    scrape_interval_s: int = Field(default=5, ge=1, le=300, description="scrape interval in seconds")
    evaluation_interval_s: int = Field(default=5, ge=1, le=300, description="rule evaluation interval in seconds")


def scrape_target(job: str, address: str, **labels: str) -> dict[str, Any]:
    return {"job_name": job, "static_configs": [{"targets": [address], "labels": labels}]}


def file_sd_entry(job: str, address: str, **labels: str) -> dict[str, Any]:
    """One entry of a ``targets/*.json`` file: a target whose ``job`` label is set by the file."""
    return {"targets": [address], "labels": {"job": job, **labels}}


class PrometheusComponent(Component):
    name = "prometheus"

    def __init__(self, paths: StackPaths, settings: PrometheusSettings | None = None) -> None:
        super().__init__(paths)
        self.settings = settings or PrometheusSettings()

    @property
    def port(self) -> int:
        return self.settings.port

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port,)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.paths.data_dir(self.name) / "prometheus.yml"

    @property
    def targets_dir(self) -> Path:
        """file_sd drop-ins (``*.json``): picked up as they change."""
        return self.paths.data_dir(self.name) / "targets"

    @property
    def rules_dir(self) -> Path:
        """Extra rule files (``*.yml``): loaded at start and on ``POST /-/reload``."""
        return self.paths.data_dir(self.name) / "rules.d"

    def install(self) -> None:
        apt_install("prometheus", "prometheus")
        apt_install("prometheus", "promtool")

    def config(self) -> dict[str, Any]:
        s = self.settings
        jobs = [scrape_target(f"lfr-{svc}", f"{self.host}:{port}", service=svc)
                for svc, port in metrics_ports().items()]
        jobs.append(scrape_target("triton", f"{self.host}:{TRITON_METRICS_PORT}", service="triton"))
        jobs.append(scrape_target("prometheus", f"{self.host}:{self.port}"))
        jobs.append({"job_name": "lfr-extra",
                     "file_sd_configs": [{"files": [str(self.targets_dir / "*.json")], "refresh_interval": "5s"}]})
        return {
            "global": {"scrape_interval": f"{s.scrape_interval_s}s",
                       "scrape_timeout": f"{max(1, s.scrape_interval_s - 1)}s",
                       "evaluation_interval": f"{s.evaluation_interval_s}s",
                       "external_labels": {"platform": "lfr", "env": "local"}},
            "rule_files": [*(str(f) for f in RULE_FILES), str(self.rules_dir / "*.yml")],
            "scrape_configs": jobs,
        }

    def prepare(self) -> None:
        for f in RULE_FILES:
            if not f.is_file():
                raise SetupError(f"prometheus: rule file {f} is missing", "restore it from git (deploy/prometheus/)")
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        self.rules_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text("# generated by services/stack/prometheus.py at each start: do not edit\n"
                                    + yaml.safe_dump(self.config(), sort_keys=False), encoding="utf-8")

    def command(self) -> tuple[list[str], dict[str, str]]:
        argv = [
            self._binary(),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.paths.data_dir(self.name) / 'tsdb'}",
            f"--storage.tsdb.retention.time={self.settings.retention}",
            f"--web.listen-address={self.host}:{self.port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ]
        return argv, {}

    def _binary(self) -> str:
        binary = shutil.which("prometheus")
        if binary is None:
            raise SetupError("prometheus is not installed", "run 'lfr stack install --only prometheus'")
        return binary

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=2.0) as r:
            return json.loads(r.read()) if path.startswith("/api/") else r.read().decode()

    def health(self) -> Health:
        endpoint = self.url
        try:
            self._get("/-/ready")
            groups = self._get("/api/v1/rules?type=alert")["data"]["groups"]
            targets = self._get("/api/v1/targets?state=active")["data"]["activeTargets"]
        except urllib.error.HTTPError as e:
            return Health(self.name, False, f"{e.url} answered {e.code}", endpoint=endpoint)
        except (urllib.error.URLError, OSError, ValueError, KeyError, TypeError) as e:
            return Health(self.name, False, f"no answer on {self.url}/-/ready: {e}", endpoint=endpoint)
        alerts = sum(len(g.get("rules", [])) for g in groups)
        up = sum(1 for t in targets if t.get("health") == "up")
        return Health(self.name, alerts > 0, f"ready; {alerts} alert rules loaded; targets up {up}/{len(targets)}",
                      endpoint=endpoint)
