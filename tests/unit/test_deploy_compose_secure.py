"""docker-compose.secure.yml over docker-compose.yml, loaded offline with compose-go
(deploy/tools/composecheck): every service gets its own credentials as compose secrets (files) at
the k8s paths and the *_FILE settings that read them (its own audit signing key among them, the audit
checkpoint volume, the keyring where verification runs), its settings class accepts the environment,
no secret value is in an environment value, Redis runs deploy/redis/redis.conf, Kafka runs with
SCRAM over TLS, default-deny ACLs and the generated ACL script."""

from __future__ import annotations

import json
import os
import re

import pytest

from deploy_support import ROOT, run, tool

SERVICES = ("ingest", "recognizer", "matcher", "alerts", "watchlist", "officers")
MOUNT = "/var/run/secrets/lfr"
FILES = ("docker-compose.yml", "docker-compose.secure.yml")


def _load(env: dict[str, str]) -> tuple[int, str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")} | env
    proc = __import__("subprocess").run([str(tool("composecheck")), *[str(ROOT / f) for f in FILES]], cwd=ROOT,
                                        capture_output=True, text=True, timeout=60, env=full, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def project() -> dict:
    code, out, err = _load({"LFR_SECRETS_DIR": "/srv/lfr-secrets"})
    assert code == 0, err
    return json.loads(out)


def test_secrets_dir_is_required() -> None:
    code, _, err = _load({})
    assert code != 0 and "LFR_SECRETS_DIR" in err


@pytest.mark.parametrize("service", SERVICES)
def test_service_reads_its_own_secret_files(project: dict, service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    svc = project["services"][service]
    mounted = {s["target"]: s["source"] for s in svc["secrets"]}
    for target, source in mounted.items():
        assert target.startswith(MOUNT + "/")
        file = project["secrets"][source]["file"]
        assert file.startswith("/srv/lfr-secrets/")
        shared = source in ("grpc-ca", "redis-ca", "kafka-ca")
        assert shared or (source.startswith(f"{service}-") and file.startswith(f"/srv/lfr-secrets/{service}/")), source
    env = svc["environment"]
    assert env["LFR_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL" and env["LFR_KAFKA__SASL_USERNAME"] == f"lfr-{service}"
    assert env["LFR_REDIS__URL"].startswith("rediss://") and env["LFR_REDIS__USERNAME"] == f"lfr-{service}"
    assert env["LFR_GRPC__TLS__REQUIRE_CLIENT_CERT"] == "true"
    files = {k: v for k, v in env.items() if k.endswith("_FILE") or k.endswith("_CAFILE")}
    assert {"LFR_KAFKA__SASL_PASSWORD_FILE", "LFR_REDIS__PASSWORD_FILE", "LFR_GRPC__TLS__KEY_FILE"} <= set(files)
    if service in ("matcher", "watchlist"):
        assert "LFR_MILVUS__TOKEN_FILE" in files
    for key, path in files.items():
        assert path in mounted, (key, path)  # every file a setting names is mounted
    for key in env:
        if re.search(r"PASSWORD|TOKEN|SECRET", key):
            assert key.endswith("_FILE"), key

    from test_deploy_settings import settings_class  # noqa: PLC0415

    cls = settings_class(service)
    for key in [k for k in os.environ if k.upper().startswith("LFR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    s = cls()
    assert s.kafka.sasl_password is None and str(s.kafka.sasl_password_file) == f"{MOUNT}/kafka/password"
    assert s.redis.password is None and str(s.redis.password_file) == f"{MOUNT}/redis/password"

    # the audit log: its own signing key, the checkpoint volume, the keyring where Verify runs
    key = f"{MOUNT}/audit/signing.key"
    assert str(s.audit.signing_key_file) == key and mounted[key] == f"{service}-audit-signing-key"
    assert project["secrets"][mounted[key]]["file"] == f"/srv/lfr-secrets/{service}/audit-signing.key"
    volumes = {v["target"]: v for v in svc.get("volumes", [])}
    # docker-compose.yml's dev-audit-keys (every service's development key) is not mounted (!override)
    assert all(v.get("source") != "dev-audit-keys" for v in volumes.values())
    assert set(volumes) == ({str(s.audit.checkpoint_dir)}
                            | ({str(s.audit.keyring_dir)} if s.audit.keyring_dir else set()))
    checkpoints = volumes[str(s.audit.checkpoint_dir)]
    assert checkpoints["type"] == "volume" and checkpoints["source"] == "audit-checkpoints"
    assert not checkpoints.get("read_only") and "audit-checkpoints" in project["volumes"]
    if service == "watchlist":
        ring = volumes[str(s.audit.keyring_dir)]
        assert ring["type"] == "bind" and ring["read_only"] is True
        assert ring["source"] == "/srv/lfr-secrets/audit-keyring"  # public keys only (create_secrets.py)
    else:
        assert s.audit.keyring_dir is None


def test_infrastructure_is_secured(project: dict) -> None:
    s = project["services"]
    redis = s["redis"]
    assert redis["command"] == ["redis-server", "/etc/redis/redis.conf"]
    (conf,) = [v for v in redis["volumes"] if v["target"] == "/etc/redis/redis.conf"]
    assert conf["source"] == str(ROOT / "deploy" / "redis" / "redis.conf") and conf["read_only"]
    assert {x["target"] for x in redis["secrets"]} >= {"/etc/redis/acl/users.acl", "/etc/redis/tls/tls.key"}
    assert "--tls" in redis["healthcheck"]["test"][-1]
    broker = (ROOT / "deploy" / "kafka" / "compose-secure-broker.sh").read_text()
    for line in ("authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                 "allow.everyone.if.no.acl.found=false",
                 "listener.security.protocol.map=SECURE:SASL_SSL,CONTROLLER:SSL",
                 "listener.name.controller.ssl.client.auth=required"):
        assert line in broker, line
    assert s["kafka"]["entrypoint"][-1] == "/opt/lfr/kafka/compose-secure-broker.sh"
    init = s["kafka-init"]
    assert init["entrypoint"] == ["/bin/bash"] and init["command"] == ["/opt/lfr/kafka/compose-secure-init.sh"]
    assert {x["target"] for x in init["secrets"]} >= {f"/run/secrets/kafka-password-{svc}" for svc in SERVICES}
    script = (ROOT / "deploy" / "kafka" / "compose-secure-init.sh").read_text()
    assert "/opt/lfr/kafka/acls.sh" in script and "--command-config /tmp/admin.properties" in script
    from services.common.topics import TOPICS

    for topic in TOPICS:  # the same topics and retention as the plain kafka-init
        assert re.search(rf"--topic {re.escape(topic.name)} .*retention\.ms={topic.retention_ms}\b", script), topic.name
    for name in ("compose-secure-broker.sh", "compose-secure-init.sh"):
        proc = run(["bash", "-n", ROOT / "deploy" / "kafka" / name])
        assert proc.returncode == 0, proc.stderr
    (user_yaml,) = [v for v in s["milvus"]["volumes"] if v["target"] == "/milvus/configs/user.yaml"]
    assert "authorizationEnabled: true" in open(user_yaml["source"], encoding="utf-8").read()


def test_console_reads_its_own_secret_files(project: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console over the secure file: its Redis ACL user lfr-console (rediss), its mTLS client certificate
    for the gRPC APIs, its users file, each a compose secret of its own under SECRETS_DIR/console/ (or a shared
    CA); no secret in an environment value; the settings class reads them."""
    from services.console.config import ConsoleSettings

    svc = project["services"]["console"]
    mounted = {s["target"]: s["source"] for s in svc["secrets"]}
    for target, source in mounted.items():
        assert target.startswith(MOUNT + "/")
        file = project["secrets"][source]["file"]
        assert source in ("grpc-ca", "redis-ca") or (source.startswith("console-")
                                                     and file.startswith("/srv/lfr-secrets/console/")), source
    assert project["secrets"][mounted[f"{MOUNT}/console/users.yaml"]]["file"] == "/srv/lfr-secrets/console/users.yaml"
    env = svc["environment"]
    for key, value in env.items():
        if key.endswith("_FILE") and key != "LFR_CONSOLE__CAMERAS_FILE":
            assert value in mounted, key  # every file a setting names is mounted
        if re.search(r"PASSWORD|TOKEN|SECRET", key):
            assert key.endswith("_FILE"), key
    for key in [k for k in os.environ if k.upper().startswith("LFR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    opts = ConsoleSettings().console
    assert opts.redis.url.startswith("rediss://") and opts.redis.username == "lfr-console"
    assert str(opts.redis.password_file) == f"{MOUNT}/redis/password" and opts.redis.password is None
    p = opts.platform
    assert (str(p.ca_file), str(p.cert_file), str(p.key_file)) == (
        f"{MOUNT}/grpc/ca.crt", f"{MOUNT}/grpc/client.crt", f"{MOUNT}/grpc/client.key")
    assert (mounted[str(p.cert_file)] == "console-grpc-client-crt"
            and mounted[str(p.key_file)] == "console-grpc-client-key")
    assert str(opts.users_file) == f"{MOUNT}/console/users.yaml"
    opts.check_exposure()
