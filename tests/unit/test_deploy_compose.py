"""docker-compose.yml validated offline with compose-go (the loader behind `docker compose config`).

The docker CLI here has no compose plugin (`docker compose` is an unknown command) and there is no
engine, so deploy/tools/composecheck (built by install-tools.sh from compose-go) loads the file:
compose-spec JSON-schema validation, interpolation, anchors/merge keys and reference checks.
"""

from __future__ import annotations

import json
import re

import pytest

from deploy_support import ROOT, run, tool

SERVICES = {
    "ingest": (50051, 9101),
    "recognizer": (50052, 9102),
    "matcher": (50053, 9103),
    "alerts": (50054, 9104),
    "watchlist": (50055, 9105),
    "officers": (50056, 9106),
}


@pytest.fixture(scope="module")
def project() -> dict:
    proc = run([tool("composecheck"), ROOT / "docker-compose.yml"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_compose_file_is_valid(project: dict) -> None:
    infra = {"kafka", "kafka-init", "redis", "etcd", "minio", "milvus", "models-init", "triton", "prometheus", "grafana"}
    assert set(project["services"]) == infra | set(SERVICES)


def test_composecheck_rejects_a_broken_file(tmp_path) -> None:
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  a:\n    image: busybox\n    depends_on: [nope]\n", encoding="utf-8")
    proc = run([tool("composecheck"), "-q", bad])
    assert proc.returncode != 0 and "nope" in proc.stderr
    bad.write_text("services:\n  a:\n    image: busybox\n    restart_policy: always\n", encoding="utf-8")
    proc = run([tool("composecheck"), "-q", bad])
    assert proc.returncode != 0 and "restart_policy" in proc.stderr


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_service_is_slim_non_root_and_healthchecked(project: dict, name: str) -> None:
    svc = project["services"][name]
    grpc, metrics = SERVICES[name]
    assert svc["build"]["dockerfile"] == "deploy/docker/service.Dockerfile"
    assert svc["build"]["args"]["SERVICE"] == name
    assert svc["user"] == "10001:10001"
    assert svc["read_only"] is True and "ALL" in svc["cap_drop"]
    assert svc["healthcheck"]["test"][:2] == ["CMD", "python"]
    env = svc["environment"]
    assert env["LFR_GRPC__PORT"] == str(grpc) and env["LFR_METRICS__PORT"] == str(metrics)
    assert env["LFR_GRPC__HOST"] == "0.0.0.0" and env["LFR_KAFKA__BOOTSTRAP"] == "kafka:9092"


def test_infrastructure_images_healthchecks_and_gpu(project: dict) -> None:
    s = project["services"]
    assert s["kafka"]["image"].startswith("apache/kafka:")
    assert s["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert s["redis"]["image"].startswith("redis:")
    assert s["milvus"]["image"].startswith("milvusdb/milvus:") and s["milvus"]["command"][-1] == "standalone"
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:2[5-9]\.\d\d-py3", s["triton"]["image"])
    devices = s["triton"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert any(v["target"] == "/models" for v in s["triton"]["volumes"])
    for name in ("kafka", "redis", "etcd", "minio", "milvus", "triton", "prometheus", "grafana", *SERVICES):
        assert s[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_topics_created_with_their_retention(project: dict) -> None:
    script = " ".join(project["services"]["kafka-init"]["command"])
    for topic, retention in [("lfr.frames.v1", "60000"), ("lfr.faces.v1", "60000"), ("lfr.alerts.v1", "86400000"), ("lfr.audit.v1", "-1")]:
        assert re.search(rf"--topic {re.escape(topic)} .*?retention\.ms={re.escape(retention)}", script), topic


def test_observability_mounts_project_files(project: dict) -> None:
    prom = {v["source"].removeprefix(str(ROOT) + "/") for v in project["services"]["prometheus"]["volumes"] if v["type"] == "bind"}
    assert {"deploy/prometheus/prometheus.yml", "deploy/prometheus/recording.rules.yml", "deploy/prometheus/alerts.rules.yml"} <= prom
    graf = {v["source"].removeprefix(str(ROOT) + "/") for v in project["services"]["grafana"]["volumes"] if v["type"] == "bind"}
    assert {"deploy/grafana/provisioning", "deploy/grafana/dashboards"} <= graf
    for path in prom | graf:
        assert (ROOT / path).exists(), path


def test_dockerfiles_are_non_root() -> None:
    for dockerfile in (ROOT / "deploy" / "docker").glob("*.Dockerfile"):
        text = dockerfile.read_text(encoding="utf-8")
        users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
        assert users and users[-1].split(":")[0] not in ("root", "0"), dockerfile.name
        assert re.search(r"python:3\.11[\w.-]*-slim", text), dockerfile.name  # slim base
