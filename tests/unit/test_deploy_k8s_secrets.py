"""Production credentials in k8s, rendered with kustomize and checked structurally:

- every service Deployment of the prod overlay mounts its own Secret (plus Strimzi's KafkaUser
  Secret and cluster CA) read-only at /var/run/secrets/lfr and gets the LFR_*__*_FILE settings
  pointing into that mount; its settings class accepts the resulting environment;
- no secret value is in the rendered YAML (no Secret objects, no PEM, no password-like env values,
  no secretKeyRef env);
- k8s/secrets/create_secrets.py renders every key the Deployments and Redis mount, and users.acl
  carries hashes only;
- the audit log: every service that audits mounts its own Ed25519 signing key and nobody
  else's, the shared checkpoint claim (ReadWriteMany) and the watchlist service the keyring ConfigMap
  (public keys only) that create_secrets.py renders; a key mounted in one service cannot sign for another;
- the prod Redis runs deploy/redis/redis.conf (TLS + ACL file) with the ACL/TLS Secrets mounted.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import re
import stat
from pathlib import Path

import pytest

from deploy_support import ROOT, kustomize_build

SERVICES = ("ingest", "recognizer", "matcher", "alerts", "watchlist", "officers")
MOUNT = "/var/run/secrets/lfr"
MILVUS = {"matcher", "watchlist"}
CHECKPOINTS = "/var/lib/lfr/audit-checkpoints"
KEYRING = "/etc/lfr/audit-keyring"


def _render(overlay: str) -> tuple[str, list[dict]]:
    return kustomize_build(ROOT / "k8s" / "overlays" / overlay)


@pytest.fixture(scope="module")
def prod() -> tuple[str, list[dict]]:
    return _render("prod")


@pytest.fixture(scope="module")
def dev() -> tuple[str, list[dict]]:
    return _render("dev")


def _one(docs: list[dict], kind: str, name: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _env(docs: list[dict], container: dict) -> dict[str, str]:
    env: dict[str, str] = {}
    for ref in container.get("envFrom", []):
        env.update(_one(docs, "ConfigMap", ref["configMapRef"]["name"]).get("data", {}))
    for var in container.get("env", []):
        env[var["name"]] = var["value"]
    return env



def _secrets_mount(pod: dict) -> tuple[dict, dict]:
    """The pod's container and the files of its one read-only 0440 projected volume at MOUNT."""
    (c,) = pod["containers"]
    (mount,) = [m for m in c["volumeMounts"] if m["mountPath"] == MOUNT]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["projected"]["defaultMode"] == 0o440
    return c, _projected_paths(volume)

def _projected_paths(volume: dict) -> dict[str, tuple[str, str]]:
    """path inside the mount -> (Secret name, key)."""
    out = {}
    for source in volume["projected"]["sources"]:
        sec = source["secret"]
        for item in sec["items"]:
            out[item["path"]] = (sec["name"], item["key"])
    return out


def _load_create_secrets():
    spec = importlib.util.spec_from_file_location("create_secrets", ROOT / "k8s" / "secrets" / "create_secrets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("service", SERVICES)
def test_prod_service_mounts_its_secret_and_reads_files(prod, service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _, docs = prod
    pod = _one(docs, "Deployment", f"lfr-{service}")["spec"]["template"]["spec"]
    c, paths = _secrets_mount(pod)
    secrets = {name for name, _ in paths.values()}
    # its own Secret, Strimzi's KafkaUser Secret and cluster CA, and nobody else's
    assert secrets == {f"lfr-{service}-secrets", f"lfr-{service}", "lfr-cluster-ca-cert"}
    assert paths["kafka/password"] == (f"lfr-{service}", "password")
    assert paths["kafka/ca.crt"] == ("lfr-cluster-ca-cert", "ca.crt")

    env = _env(docs, c)
    want = {
        "LFR_KAFKA__SECURITY_PROTOCOL": "SASL_SSL", "LFR_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "LFR_KAFKA__SASL_USERNAME": f"lfr-{service}", "LFR_KAFKA__SASL_PASSWORD_FILE": f"{MOUNT}/kafka/password",
        "LFR_KAFKA__SSL_CAFILE": f"{MOUNT}/kafka/ca.crt", "LFR_KAFKA__BOOTSTRAP": "lfr-kafka-bootstrap:9093",
        "LFR_REDIS__USERNAME": f"lfr-{service}", "LFR_REDIS__PASSWORD_FILE": f"{MOUNT}/redis/password",
        "LFR_REDIS__SSL_CA_FILE": f"{MOUNT}/redis/ca.crt", "LFR_REDIS__URL": "rediss://lfr-redis:6379/0",
        "LFR_GRPC__TLS__CERT_FILE": f"{MOUNT}/grpc/tls.crt", "LFR_GRPC__TLS__KEY_FILE": f"{MOUNT}/grpc/tls.key",
        "LFR_GRPC__TLS__CA_FILE": f"{MOUNT}/grpc/ca.crt", "LFR_GRPC__TLS__REQUIRE_CLIENT_CERT": "true",
        "LFR_GRPC__AUTH__REQUIRE_AUTHENTICATION": "true",
    }
    if service in MILVUS:
        want["LFR_MILVUS__TOKEN_FILE"] = f"{MOUNT}/milvus/token"
    if service == "officers":
        want["LFR_GRPC__AUTH__DEVICE_TOKEN_KEY_FILE"] = f"{MOUNT}/grpc/device-token.key"
    # the audit log: its own signing key, the checkpoint volume; the keyring where verification runs
    want["LFR_AUDIT__SIGNING_KEY_FILE"] = f"{MOUNT}/audit/signing.key"
    want["LFR_AUDIT__CHECKPOINT_DIR"] = CHECKPOINTS
    if service == "watchlist":
        want["LFR_AUDIT__KEYRING_DIR"] = KEYRING
    assert {k: env.get(k) for k in want} == want
    assert paths["audit/signing.key"] == (f"lfr-{service}-secrets", "audit-signing.key")
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert volumes[mounts[CHECKPOINTS]["name"]]["persistentVolumeClaim"] == {"claimName": "lfr-audit-checkpoints"}
    assert not mounts[CHECKPOINTS].get("readOnly")
    if service == "watchlist":
        assert mounts[KEYRING]["readOnly"] is True
        keyring = volumes[mounts[KEYRING]["name"]]["configMap"]
        assert keyring["name"] == "lfr-audit-keyring" and keyring["optional"] is False
    else:
        assert KEYRING not in mounts and "LFR_AUDIT__KEYRING_DIR" not in env
    # every file a setting names is really in the mount
    for key, value in env.items():
        if value.startswith(MOUNT + "/"):
            assert value[len(MOUNT) + 1:] in paths, (key, value)
    # the kubelet's gRPC probe cannot do TLS: the image's probe over mTLS instead
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert "grpc" not in c[probe] and c[probe]["exec"]["command"] == ["python", "/opt/lfr/grpc_health_probe.py"]
    assert {"LFR_CLIENT__CA_FILE", "LFR_CLIENT__CERT_FILE", "LFR_CLIENT__KEY_FILE"} <= set(env)

    # the service's own settings class accepts exactly this environment (nested typos would fail)
    from test_deploy_settings import settings_class  # noqa: PLC0415

    cls = settings_class(service)
    for key in [k for k in os.environ if k.upper().startswith("LFR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = cls()
    assert s.kafka.sasl_password_file == Path(f"{MOUNT}/kafka/password") and s.kafka.sasl_password is None
    assert s.redis.password_file == Path(f"{MOUNT}/redis/password") and s.redis.username == f"lfr-{service}"
    assert s.grpc.tls.cert_file == Path(f"{MOUNT}/grpc/tls.crt") and s.grpc.tls.require_client_cert
    if service in MILVUS:
        assert s.milvus.token_file == Path(f"{MOUNT}/milvus/token") and s.milvus.token is None
    assert s.audit.signing_key_file == Path(f"{MOUNT}/audit/signing.key")
    assert s.audit.checkpoint_dir == Path(CHECKPOINTS)
    assert s.audit.keyring_dir == (Path(KEYRING) if service == "watchlist" else None)


def test_every_auditing_service_is_deployed_with_its_key(prod) -> None:
    """Every service that writes to the audit log (WRITERS; every gRPC service audits api.refused) gets a key
    from create_secrets.py, and the checkpoint claim is ReadWriteMany (several pods of several services)."""
    from services.common.audit import WRITERS

    cs = _load_create_secrets()
    assert set(WRITERS) <= set(cs.AUDIT_SERVICES) == set(SERVICES)
    _, docs = prod
    claim = _one(docs, "PersistentVolumeClaim", "lfr-audit-checkpoints")["spec"]
    assert claim["accessModes"] == ["ReadWriteMany"]
    users = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"
             and any(v.get("persistentVolumeClaim", {}).get("claimName") == "lfr-audit-checkpoints"
                     for v in d["spec"]["template"]["spec"].get("volumes", []))}
    assert users == {f"lfr-{s}" for s in SERVICES}


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_no_secret_value_in_rendered_yaml(overlay: str, prod, dev) -> None:
    text, docs = prod if overlay == "prod" else dev
    assert not [d for d in docs if d["kind"] == "Secret"]
    assert "BEGIN" not in text and "PRIVATE KEY" not in text
    secretish = re.compile(r"PASSWORD|TOKEN|SECRET|_KEY$|PASS$", re.I)
    for d in docs:
        if d["kind"] == "ConfigMap":
            for key, value in d.get("data", {}).items():
                if secretish.search(key):
                    assert key.endswith("_FILE") and value.startswith("/"), (d["metadata"]["name"], key)
        if d["kind"] in ("Deployment", "StatefulSet"):
            spec = d["spec"]["template"]["spec"]
            for c in spec["containers"] + spec.get("initContainers", []):
                for var in c.get("env", []):
                    assert "secretKeyRef" not in var.get("valueFrom", {}), (d["metadata"]["name"], var["name"])
                    if secretish.search(var["name"]):
                        assert var["name"].endswith("_FILE"), var["name"]
                text_args = " ".join(c.get("args", []) + c.get("command", []))
                assert not re.search(r"--(pass|requirepass|masterauth)\b", text_args)


def test_dev_overlay_needs_no_secret(dev) -> None:
    """No Secret but the console's users file: in a pod the console refuses the development users (published
    passwords), so even dev needs users of its own (lfr-console-secrets, key users.yaml, and nothing else)."""
    _, docs = dev
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            for v in d["spec"]["template"]["spec"].get("volumes", []):
                if d["metadata"]["name"] == "lfr-console" and v["name"] == "lfr-secrets":
                    assert _projected_paths(v) == {"console/users.yaml": ("lfr-console-secrets", "users.yaml")}
                    continue
                assert "secret" not in v and "projected" not in v, d["metadata"]["name"]


def _fake_src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "redis").mkdir(parents=True)
    (src / "grpc-ca.crt").write_text("CA")
    for name in ("tls.crt", "tls.key", "ca.crt"):
        (src / "redis" / name).write_text(f"redis {name}")
    for s in SERVICES:
        (src / s).mkdir()
        for name in ("grpc-tls.crt", "grpc-tls.key", "probe-client.crt", "probe-client.key"):
            (src / s / name).write_text(f"{s} {name}")
    (src / "console").mkdir()
    for name in ("grpc-client.crt", "grpc-client.key"):
        (src / "console" / name).write_text(f"console {name}")
    from services.console.users import hash_password

    (src / "console" / "users.yaml").write_text(
        f"users:\n- username: ann\n  password: '{hash_password('pw-ann', n=2**10)}'\n  roles: [operator]\n")
    return src


def test_create_secrets_renders_every_mounted_key(prod, tmp_path: Path) -> None:
    _, docs = prod
    cs = _load_create_secrets()
    src = _fake_src(tmp_path)
    out = cs.build(src, "lfr")
    secrets = {i["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in i["data"].items()}
               for i in out["items"] if i["kind"] == "Secret"}
    assert cs.build(src, "lfr") == out  # generated values are kept in SRC: a rerun is stable
    for s in SERVICES:
        pod = _one(docs, "Deployment", f"lfr-{s}")["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "lfr-secrets"]
        wanted = {key for name, key in _projected_paths(volume).values() if name == f"lfr-{s}-secrets"}
        assert wanted == set(secrets[f"lfr-{s}-secrets"]), s
        pw = src / s / "redis-password"
        assert stat.S_IMODE(pw.stat().st_mode) == 0o600
    pod = _one(docs, "Deployment", "lfr-console")["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "lfr-secrets"]
    assert {key for _, key in _projected_paths(volume).values()} == set(secrets["lfr-console-secrets"])
    assert secrets["lfr-console-secrets"]["users.yaml"] == (src / "console" / "users.yaml").read_text()
    for s in MILVUS:
        user, _, password = secrets[f"lfr-{s}-secrets"]["milvus-token"].partition(":")
        assert user == f"lfr-{s}" and len(password) >= 24
    acl = secrets["lfr-redis-acl"]["users.acl"]
    assert "<SHA256" not in acl and not any(line.startswith("#") for line in acl.splitlines())
    assert acl.splitlines()[0] == "user default off"
    for s in (*SERVICES, "console"):
        password = secrets[f"lfr-{s}-secrets"]["redis-password"]
        assert password not in acl
        assert f"user lfr-{s} on #{hashlib.sha256(password.encode()).hexdigest()} " in acl
    # the keys Redis and Sentinel read (probe, init script)
    assert {"users.acl", "probe-password", "replication-password", "sentinel-password"} == set(secrets["lfr-redis-acl"])
    assert set(secrets["lfr-redis-tls"]) == {"tls.crt", "tls.key", "ca.crt"}
    sentinel_script = _one(docs, "ConfigMap", "lfr-redis-sentinel-scripts")["data"]
    for key in ("replication-password", "sentinel-password"):
        assert f"/etc/redis/acl/{key}" in sentinel_script["init.sh"]
    assert "/etc/redis/acl/probe-password" in str(_one(docs, "StatefulSet", "lfr-redis"))


def test_create_secrets_gives_each_service_its_own_audit_key_and_a_public_keyring(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from services.common.audit import AuditSigner, Keyring, build_record, verify_chain

    cs = _load_create_secrets()
    src = _fake_src(tmp_path)
    out = cs.build(src, "lfr")
    secrets = {i["metadata"]["name"]: {k: base64.b64decode(v) for k, v in i["data"].items()}
               for i in out["items"] if i["kind"] == "Secret"}
    (keyring,) = [i for i in out["items"] if i["kind"] == "ConfigMap"]
    assert keyring["metadata"] == {"name": "lfr-audit-keyring", "namespace": "lfr",
                                   "labels": {"app.kubernetes.io/part-of": "lfr"}}
    assert set(keyring["data"]) == {f"{s}.pub" for s in SERVICES}
    assert not any("PRIVATE" in pem for pem in keyring["data"].values())  # public keys only
    signers: dict[str, AuditSigner] = {}
    for s in SERVICES:
        pem = secrets[f"lfr-{s}-secrets"]["audit-signing.key"]
        key_file = src / s / "audit-signing.key"
        assert pem == key_file.read_bytes() and stat.S_IMODE(key_file.stat().st_mode) == 0o600
        # its own key, in its own Secret only
        assert [name for name, data in secrets.items() if any(pem in v for v in data.values())] == [f"lfr-{s}-secrets"]
        signers[s] = AuditSigner.load(s, key_file)
        assert (src / "audit-keyring" / f"{s}.pub").read_text() == keyring["data"][f"{s}.pub"]
    assert len({s.key_id.split(":")[1] for s in signers.values()}) == len(SERVICES)  # six different keys
    # the ConfigMap as the watchlist pod sees it: verification trusts exactly these keys
    mounted = tmp_path / "audit-keyring"
    mounted.mkdir()
    for name, pem in keyring["data"].items():
        (mounted / name).write_text(pem)
    ring = Keyring.load(mounted)
    assert {service for service, _ in ring.keys.values()} == set(SERVICES)

    def verdict(service: str, signer: AuditSigner, action: str = "watchlist.enrol") -> str:
        rec = build_record(seq=0, prev_hash=b"", action=action, actor="attacker", service=service, signer=signer)
        result = verify_chain([(0, rec.SerializeToString())], keyring=ring)
        return "ok" if result.ok else result.reason

    assert verdict("watchlist", signers["watchlist"]) == "ok"
    # a stolen ingest credential (its mounted key) cannot write as the watchlist service
    ingest_key = serialization.load_pem_private_key(secrets["lfr-ingest-secrets"]["audit-signing.key"], None)
    assert "unknown key" in verdict("watchlist", AuditSigner("watchlist", ingest_key))
    assert "signed by ingest's key" in verdict("watchlist", signers["ingest"])
    assert "may not write" in verdict("ingest", signers["ingest"])
    assert verdict("ingest", signers["ingest"], "api.refused") == "ok"


def test_create_secrets_refuses_an_incomplete_src(tmp_path: Path) -> None:
    cs = _load_create_secrets()
    src = _fake_src(tmp_path)
    (src / "matcher" / "grpc-tls.key").unlink()
    with pytest.raises(cs.SecretsError, match="grpc-tls.key"):
        cs.build(src, "lfr")
    with pytest.raises(cs.SecretsError, match="nobody"):
        cs.render_users_acl("user x on #<SHA256:nobody> +ping\n", {})


def test_prod_redis_runs_the_secure_config(prod, dev) -> None:
    _, docs = prod
    conf = (ROOT / "deploy" / "redis" / "redis.conf").read_text(encoding="utf-8")
    assert (ROOT / "k8s" / "components" / "redis-secure" / "redis.conf").read_text(encoding="utf-8") == conf
    assert _one(docs, "ConfigMap", "lfr-redis-config")["data"]["redis.conf"] == conf
    for line in ("port 0", "tls-port 6379", "aclfile /etc/redis/acl/users.acl", "tls-replication yes"):
        assert re.search(rf"^{re.escape(line)}$", conf, re.M), line
    sts = _one(docs, "StatefulSet", "lfr-redis")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in sts["volumes"]}
    assert volumes["acl"]["secret"] == {"secretName": "lfr-redis-acl", "defaultMode": 0o440, "optional": False}
    assert volumes["tls"]["secret"]["secretName"] == "lfr-redis-tls" and volumes["tls"]["secret"]["optional"] is False
    for c in sts["containers"] + sts["initContainers"]:
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        assert mounts["acl"]["readOnly"] and mounts["tls"]["readOnly"], c["name"]
    redis = next(c for c in sts["containers"] if c["name"] == "redis")
    assert "--tls" in redis["readinessProbe"]["exec"]["command"][-1]
    # dev keeps the plain single node
    _, dev_docs = dev
    assert "tls-port" not in _one(dev_docs, "ConfigMap", "lfr-redis-config")["data"]["redis.conf"]


def test_prod_keda_lag_triggers_authenticate_as_the_consumer_they_scale(prod: tuple[str, list[dict]]) -> None:
    from services.common.acls import ACLS

    _, docs = prod
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    assert {d["metadata"]["name"] for d in scaled} == {"lfr-recognizer", "lfr-matcher"}
    for so in scaled:
        service = so["metadata"]["name"].removeprefix("lfr-")
        (trigger,) = so["spec"]["triggers"]
        meta = trigger["metadata"]
        assert meta["bootstrapServers"].endswith(":9093") and meta["sasl"] == "scram_sha512" and meta["tls"] == "enable"
        auth = _one(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])["spec"]
        refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["secretTargetRef"]}
        assert refs == {"password": (f"lfr-{service}", "password"), "ca": ("lfr-cluster-ca-cert", "ca.crt")}
        (user_env,) = auth["env"]
        assert (user_env["parameter"], user_env["containerName"]) == ("username", service)
        deployment = _one(docs, "Deployment", f"lfr-{service}")
        (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == service]
        assert _env(docs, container)[user_env["name"]] == f"lfr-{service}"
        acl = next(a for a in ACLS if a.service == service)
        assert meta["consumerGroup"] in acl.groups and meta["topic"] in acl.reads  # Read implies Describe


def test_prod_console_mounts_its_secret_and_reads_files(prod, monkeypatch: pytest.MonkeyPatch) -> None:
    """The console in prod: only its own Secret (users file, Redis password of lfr-console, its gRPC client
    certificate), no Kafka credential and no audit key; ConsoleSettings accepts the environment, every file it
    names is in the mount, and the exposure checks pass (Secure cookie, a users file, no development users)."""
    from services.console.config import ConsoleSettings

    _, docs = prod
    pod = _one(docs, "Deployment", "lfr-console")["spec"]["template"]["spec"]
    c, paths = _secrets_mount(pod)
    assert {name for name, _ in paths.values()} == {"lfr-console-secrets"}
    assert not [m for m in c["volumeMounts"] if m["mountPath"] == CHECKPOINTS]  # it signs nothing
    env = _env(docs, c)
    for key in [k for k in os.environ if k.upper().startswith("LFR_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = ConsoleSettings()
    opts = settings.console
    assert opts.redis.url.startswith("rediss://lfr-redis:") and opts.redis.username == "lfr-console"
    files = {"users": opts.users_file, "redis password": opts.redis.password_file, "redis ca": opts.redis.ssl_ca_file,
             "grpc ca": opts.platform.ca_file, "client cert": opts.platform.cert_file,
             "client key": opts.platform.key_file}
    for what, path in files.items():
        assert path is not None and str(path).startswith(MOUNT + "/"), what
        assert str(path).removeprefix(MOUNT + "/") in paths, what  # mounted
    assert paths["grpc/client.crt"] == ("lfr-console-secrets", "grpc-client.crt")
    assert (opts.platform.alerts, opts.platform.watchlist, opts.platform.officers) == (
        "lfr-alerts:50054", "lfr-watchlist:50055", "lfr-officers:50056")
    assert not settings.kafka.sasl_password_file and "LFR_KAFKA__BOOTSTRAP" not in env
    opts.check_exposure()
    assert opts.secure_cookie and opts.login.trusted_proxies  # behind the Ingress: the real client address


def test_create_secrets_refuses_the_development_console_users(tmp_path: Path) -> None:
    """An operator who copies the development users (published passwords) into SRC gets no Secret."""
    from services.console.config import DEV_USERS_FILE

    cs = _load_create_secrets()
    src = _fake_src(tmp_path)
    users = src / "console" / "users.yaml"
    users.write_text(DEV_USERS_FILE.read_text())
    with pytest.raises(cs.SecretsError, match="DEVELOPMENT users"):
        cs.build(src, "lfr")
    users.write_text("users:\n- username: ann\n  password: plain-text-password-here\n  roles: [operator]\n")
    with pytest.raises(cs.SecretsError, match="scrypt hash"):
        cs.build(src, "lfr")
    users.unlink()
    with pytest.raises(cs.SecretsError, match="console/users.yaml is missing"):
        cs.build(src, "lfr")
