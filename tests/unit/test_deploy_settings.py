"""Each service's settings class accepts exactly the environment docker-compose.yml and the k8s
ConfigMaps give it. The services refuse LFR_* variables for sections they do not have, so a
connection given to the wrong service would crash it at start; this catches that offline.
Services whose settings class does not exist yet are skipped (named in the reason)."""

from __future__ import annotations

import importlib
import inspect

import pytest
import yaml

from deploy_support import ROOT, kustomize_build

SERVICES = ("ingest", "recognizer", "matcher", "alerts", "watchlist", "officers")


def settings_class(service: str):
    try:
        module = importlib.import_module(f"services.{service}.config")
    except ModuleNotFoundError:
        pytest.skip(f"services.{service}.config does not exist yet")
    from services.common.settings import ServiceSettings

    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, ServiceSettings) and c is not ServiceSettings and c.__module__ == module.__name__]
    if not classes:
        pytest.skip(f"services.{service}.config has no ServiceSettings subclass yet")
    return classes[0]


def compose_env(service: str) -> dict[str, str]:
    """The service's environment after YAML merge keys (PyYAML resolves `<<`)."""
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return {k: str(v) for k, v in doc["services"][service]["environment"].items()}


def k8s_env(service: str) -> dict[str, str]:
    """The service's environment in k8s/base as rendered (its workload is built from shared parts)."""
    _, docs = kustomize_build(ROOT / "k8s" / "base")
    config_maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    (dep,) = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == f"lfr-{service}"]
    env: dict[str, str] = {}
    for ref in dep["spec"]["template"]["spec"]["containers"][0]["envFrom"]:
        env.update(config_maps[ref["configMapRef"]["name"]])
    return env


@pytest.mark.parametrize("source", ["compose", "k8s"])
@pytest.mark.parametrize("service", SERVICES)
def test_service_accepts_its_environment(service: str, source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cls = settings_class(service)
    env = compose_env(service) if source == "compose" else k8s_env(service)
    for key in [k for k in list(__import__("os").environ) if k.upper().startswith("LFR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = cls()
    assert settings.grpc.host == "0.0.0.0" and settings.metrics.host == "0.0.0.0"
    assert settings.grpc.port == int(env["LFR_GRPC__PORT"]) and settings.metrics.port == int(env["LFR_METRICS__PORT"])
    assert settings.kafka.bootstrap == env["LFR_KAFKA__BOOTSTRAP"]


@pytest.mark.parametrize("source", ["compose", "k8s"])
def test_console_accepts_its_environment(source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console (no gRPC server, no Kafka): its environment of docker-compose.yml and of the k8s base, and
    what a pod needs to serve: all interfaces, a users file of its own, the Secure cookie, the three gRPC APIs."""
    from services.console.config import ConsoleSettings

    env = compose_env("console") if source == "compose" else k8s_env("console")
    for key in [k for k in list(__import__("os").environ) if k.upper().startswith("LFR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = ConsoleSettings()
    opts = settings.console
    assert opts.http_host == "0.0.0.0" and settings.metrics.host == "0.0.0.0" and settings.metrics.port == 9107
    assert opts.users_file is not None and not opts.dev_users and opts.secure_cookie
    opts.check_exposure()
    prefix = "" if source == "compose" else "lfr-"
    assert (opts.platform.alerts, opts.platform.watchlist, opts.platform.officers) == (
        f"{prefix}alerts:50054", f"{prefix}watchlist:50055", f"{prefix}officers:50056")
