"""docker-compose.yml validated offline with compose-go (the loader behind `docker compose config`).

The docker CLI here has no compose plugin (`docker compose` is an unknown command) and there is no
engine, so deploy/tools/composecheck (built by install-tools.sh from compose-go) loads the file:
compose-spec JSON-schema validation, interpolation, anchors/merge keys and reference checks.
"""

from __future__ import annotations

import argparse
import json
import os
import re

import pytest

from deploy_support import ROOT, run, tool
from services.common.ports import SERVICE_PORTS

SERVICES = SERVICE_PORTS  # the platform's one ports table: compose must publish these


@pytest.fixture(scope="module")
def project() -> dict:
    proc = run([tool("composecheck"), ROOT / "docker-compose.yml"], timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_compose_file_is_valid(project: dict) -> None:
    infra = {"kafka", "kafka-init", "redis", "etcd", "minio", "milvus", "models-init", "triton", "prometheus",
             "grafana", "audit-keys-init"}
    assert set(project["services"]) == infra | set(SERVICES) | {"console"}


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
    for topic, retention in [("lfr.frames.v1", "60000"), ("lfr.faces.v1", "60000"), ("lfr.alerts.v1", "86400000"),
                             ("lfr.audit.v1", "-1")]:
        assert re.search(rf"--topic {re.escape(topic)} .*?retention\.ms={re.escape(retention)}", script), topic


def test_observability_mounts_project_files(project: dict) -> None:
    prom = {v["source"].removeprefix(str(ROOT) + "/") for v in project["services"]["prometheus"]["volumes"]
            if v["type"] == "bind"}
    assert {"deploy/prometheus/prometheus.yml", "deploy/prometheus/recording.rules.yml",
            "deploy/prometheus/alerts.rules.yml"} <= prom
    graf = {v["source"].removeprefix(str(ROOT) + "/") for v in project["services"]["grafana"]["volumes"]
            if v["type"] == "bind"}
    assert {"deploy/grafana/provisioning", "deploy/grafana/dashboards"} <= graf
    for path in prom | graf:
        assert (ROOT / path).exists(), path


def test_dockerfiles_are_non_root() -> None:
    for dockerfile in (ROOT / "deploy" / "docker").glob("*.Dockerfile"):
        text = dockerfile.read_text(encoding="utf-8")
        users = re.findall(r"^USER\s+(\S+)", text, flags=re.M)
        assert users and users[-1].split(":")[0] not in ("root", "0"), dockerfile.name
        assert re.search(r"python:3\.11[\w.-]*-slim", text), dockerfile.name  # slim base


DEV_CERTS = "/var/lib/lfr/dev-certs"
CHECKPOINTS = "/var/lib/lfr/audit-checkpoints"


def test_every_auditing_service_gets_its_audit_key_keyring_and_checkpoints(project: dict, tmp_path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The signed audit log out of the box: without a signing key every audited action fails and the watchlist
    service never becomes ready (AuditWriter.from_settings: "audit signing key ... cannot be read"). The one-shot
    audit-keys-init makes each service's key in dev-audit-keys before any service starts; each service signs with
    its own file, keeps checkpoints on the audit-checkpoints volume, and the watchlist service (AuditService.Verify)
    trusts the keyring. The keys it writes are the ones the settings name, and they sign records that verify."""
    from services.audit.cli import _keys_init
    from services.common.audit import WRITERS, AuditSigner, Keyring, build_record, verify_chain
    from services.common.pki import SERVICES as AUDITING  # every gRPC service audits api.refused
    from test_deploy_settings import settings_class

    assert set(WRITERS) <= set(AUDITING) == set(SERVICES)
    s = project["services"]
    init = s["audit-keys-init"]
    assert init["entrypoint"] == ["python", "-m", "services.cli.main", "audit", "keys", "init", "--dir", DEV_CERTS]
    assert init["build"]["dockerfile"] == "deploy/docker/service.Dockerfile" and init["user"] == "10001:10001"
    assert init["network_mode"] == "none" and init["read_only"] is True and init["restart"] == "no"
    (out,) = init["volumes"]
    assert (out["source"], out["target"]) == ("dev-audit-keys", DEV_CERTS) and not out.get("read_only")
    assert {"dev-audit-keys", "audit-checkpoints"} <= set(project["volumes"])
    dockerfile = (ROOT / "deploy" / "docker" / "service.Dockerfile").read_text(encoding="utf-8")
    # fresh named volumes take the owner of the image's directory: 10001 may write both
    assert re.search(rf"install -d -o 10001 -g 10001 -m 0750 .*{CHECKPOINTS}.*{DEV_CERTS}", dockerfile)

    # run what the init container runs, into a directory standing for the volume
    _keys_init(argparse.Namespace(dir=tmp_path, service=None))
    keyring = Keyring.load(tmp_path / "audit" / "pub")
    for name in AUDITING:
        svc = s[name]
        assert svc["depends_on"]["audit-keys-init"]["condition"] == "service_completed_successfully", name
        env = svc["environment"]
        key = env["LFR_AUDIT__SIGNING_KEY_FILE"]
        assert key == f"{DEV_CERTS}/audit/{name}.key", name
        assert env["LFR_AUDIT__CHECKPOINT_DIR"] == CHECKPOINTS, name
        if name == "watchlist":
            assert env["LFR_AUDIT__KEYRING_DIR"] == f"{DEV_CERTS}/audit/pub"
        else:
            assert "LFR_AUDIT__KEYRING_DIR" not in env, name
        mounts = {v["target"]: v for v in svc["volumes"]}
        assert mounts[DEV_CERTS]["source"] == "dev-audit-keys" and mounts[DEV_CERTS]["read_only"] is True, name
        assert mounts[CHECKPOINTS]["source"] == "audit-checkpoints" and not mounts[CHECKPOINTS].get("read_only"), name
        # the service's settings class reads these paths, and the key made there signs what verifies
        for var in [k for k in os.environ if k.upper().startswith("LFR_")]:
            monkeypatch.delenv(var)
        for var, value in env.items():
            monkeypatch.setenv(var, str(value))
        settings = settings_class(name)()
        assert str(settings.audit.signing_key_file) == key and str(settings.audit.checkpoint_dir) == CHECKPOINTS
        signer = AuditSigner.load(name, tmp_path / key.removeprefix(DEV_CERTS + "/"))
        record = build_record(seq=0, prev_hash=b"", action="api.refused", actor="x", service=name, signer=signer)
        assert verify_chain([(0, record.SerializeToString())], keyring=keyring).ok, name


def test_console_ships_hardened_with_a_users_file_of_its_own(project: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console: the shared image (SERVICE=console), hardened like the services, HTTP published on loopback
    only, probed on /healthz, its users from a compose secret (not the development users, which it refuses off
    loopback), sessions in Redis, only the three gRPC APIs it calls; its settings class accepts this environment
    and the exposure checks pass (Secure cookie, no development users)."""
    from services.console.config import ConsoleSettings

    svc = project["services"]["console"]
    assert (svc["build"]["dockerfile"] == "deploy/docker/service.Dockerfile"
            and svc["build"]["args"]["SERVICE"] == "console")
    assert svc["image"].startswith("lfr/console:") and svc["user"] == "10001:10001"
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"] and "no-new-privileges:true" in svc["security_opt"]
    assert [(p["host_ip"], p["published"], p["target"]) for p in svc["ports"]] == [("127.0.0.1", "8080", 8080)]
    assert "/healthz" in " ".join(svc["healthcheck"]["test"])
    # the console signs nothing: not the anchor's audit volumes (every service's development key among them)
    assert [v["target"] for v in svc["volumes"]] == ["/etc/lfr/cameras.yaml"] and svc["volumes"][0]["read_only"]
    (users,) = svc["secrets"]
    assert project["secrets"][users["source"]]["file"].endswith("/.lfr/console/users.yaml")
    env = svc["environment"]
    assert env["LFR_CONSOLE__USERS_FILE"] == users["target"] and "LFR_CONSOLE__DEV_USERS" not in env
    assert {env[f"LFR_CONSOLE__PLATFORM__{api}"] for api in ("ALERTS", "WATCHLIST", "OFFICERS")} == {
        "alerts:50054", "watchlist:50055", "officers:50056"}
    assert {k: v["condition"] for k, v in svc["depends_on"].items()} == {
        "redis": "service_healthy", "alerts": "service_healthy", "watchlist": "service_healthy",
        "officers": "service_healthy"}
    for var in [k for k in os.environ if k.upper().startswith("LFR_")]:
        monkeypatch.delenv(var)
    for var, value in env.items():
        monkeypatch.setenv(var, str(value))
    settings = ConsoleSettings()
    opts = settings.console
    assert (opts.http_host, opts.http_port, settings.metrics.host, settings.metrics.port) == ("0.0.0.0", 8080,
                                                                                            "0.0.0.0", 9107)
    assert opts.redis.url == "redis://redis:6379/0" and opts.prometheus_url == "http://prometheus:9090"
    assert str(opts.cameras_file) == "/etc/lfr/cameras.yaml" and (ROOT / "deploy/local/cameras.yaml").is_file()
    opts.check_exposure()  # a users file, no development users
    assert opts.secure_cookie and not opts.dev_users
