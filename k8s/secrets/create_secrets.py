#!/usr/bin/env python3
"""Render the production Secrets of the LFR platform from an operator's directory of files,
as a Kubernetes List on stdout (or -o FILE), for `kubectl apply -f -`. Nothing here is committed:
the values live only in SRC (keep it off git, mode 0700) and in the cluster.

    k8s/secrets/create_secrets.py SRC --namespace lfr | kubectl apply -f -

SRC layout (certificates from your PKI; passwords, Milvus tokens, the device-token key and the audit
signing keys are generated into SRC, mode 0600, when missing, so a rerun yields the same Secrets):

    SRC/grpc-ca.crt                       CA of the services' gRPC certificates and of the callers'
    SRC/redis/tls.crt, tls.key, ca.crt    Redis server certificate (names lfr-redis,
                                          lfr-redis-headless, *.lfr-redis-headless; clientAuth too)
    SRC/redis/{probe,replication,sentinel,admin}-password        [generated]
    SRC/<service>/grpc-tls.crt, grpc-tls.key    the service's gRPC server certificate (SANs: lfr-<service>,
                                                lfr-<service>.<namespace>.svc, localhost, 127.0.0.1)
    SRC/<service>/probe-client.crt, probe-client.key   client certificate of its health probe
    SRC/<service>/redis-password                  [generated]
    SRC/console/redis-password                    [generated: the console's sessions, lfr:console:* only]
    SRC/console/grpc-client.crt, grpc-client.key  the console's gRPC client certificate (CN console, OU console)
    SRC/console/users.yaml                        the console's users (python -m services.console.users add);
                                                  refused when it holds the development users
    SRC/{matcher,watchlist}/milvus-token          [generated: lfr-<service>:<random>]
    SRC/officers/device-token.key                 [generated: HMAC key of device tokens]
    SRC/<service>/audit-signing.key               [generated: the service's own Ed25519 audit signing key]
    SRC/audit-keyring/<service>.pub               [written from those keys: the public keys verification
                                                   trusts; give a copy to the auditor (lfr audit verify --keyring)]

Secrets rendered (run with the project's Python: the audit keys and the console's users file use its code):
    lfr-<service>-secrets   per service, mounted by k8s/components/secure-services
    lfr-console-secrets     the console's users.yaml, redis-password, redis-ca.crt, grpc-client.crt, grpc-client.key,
                            grpc-ca.crt (k8s/components/secure-services/console-patch.yaml)
    lfr-audit-keyring       a ConfigMap (public keys only): <service>.pub of every service that audits, mounted
                            by the watchlist service (AuditService.Verify, its re-verification)
    lfr-redis-acl           users.acl (deploy/redis/users.acl.template, SHA-256 hashes only) and the
                            probe/replication/sentinel passwords (k8s/components/redis-secure)
    lfr-redis-tls           tls.crt, tls.key, ca.crt
The Kafka SCRAM passwords are not here: Strimzi generates them into the Secret lfr-<service> of each
KafkaUser. Milvus users: deploy/milvus/users.py reads the same SRC/<service>/milvus-token files.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACL_TEMPLATE = ROOT / "deploy" / "redis" / "users.acl.template"
SERVICES = ("ingest", "recognizer", "matcher", "alerts", "watchlist", "officers")
MILVUS_USERS = ("matcher", "watchlist")
DEVICE_TOKEN_SERVICES = ("officers",)
AUDIT_SERVICES = SERVICES  # every gRPC service audits the calls it refuses (api.refused) with its own key
AUDIT_KEYRING = "audit-keyring"
REDIS_SYSTEM_USERS = ("probe", "replication", "sentinel", "admin")
REDIS_CLIENTS = ("console",)  # Redis users without a gRPC service of their own
PLACEHOLDER = re.compile(r"<SHA256:([a-z]+)>")


class SecretsError(ValueError):
    """SRC is incomplete or the template cannot be rendered."""


def _generated(path: Path, make: str) -> str:
    """The file's value; generated (0600) first when missing."""
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(make)
    return path.read_text(encoding="utf-8").strip()


def _required(path: Path) -> bytes:
    if not path.is_file():
        raise SecretsError(f"{path} is missing (see the SRC layout in k8s/secrets/create_secrets.py)")
    return path.read_bytes()


def redis_password(src: Path, user: str) -> str:
    """The Redis password of a service (``ingest``...) or a system user (``probe``...)."""
    path = src / "redis" / f"{user}-password" if user in REDIS_SYSTEM_USERS else src / user / "redis-password"
    return _generated(path, secrets.token_urlsafe(32))


def audit_key(src: Path, service: str) -> tuple[bytes, str]:
    """(private key PEM, public key PEM) of ``service``'s audit signing key: made (Ed25519, 0600) when missing;
    the public key is (re)written to ``SRC/audit-keyring/<service>.pub``."""
    from services.common.pki import ensure_ed25519_key

    key_file, pub_file = src / service / "audit-signing.key", src / AUDIT_KEYRING / f"{service}.pub"
    try:
        ensure_ed25519_key(key_file, pub_file)
    except ValueError as e:
        raise SecretsError(f"{key_file}: {e} (remove it to have a new one made)") from None
    return key_file.read_bytes(), pub_file.read_text(encoding="utf-8")


def render_users_acl(template: str, passwords: dict[str, str]) -> str:
    """users.acl: the template without comments, each ``<SHA256:name>`` replaced by the SHA-256 hex
    of ``passwords[name]`` (Redis stores and compares hashes; no password is in the file)."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in passwords:
            raise SecretsError(f"no password for the Redis ACL user of <SHA256:{name}>")
        return hashlib.sha256(passwords[name].encode()).hexdigest()

    lines = [ln for ln in template.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return "\n".join(PLACEHOLDER.sub(sub, ln) for ln in lines) + "\n"


def _secret(name: str, namespace: str, data: dict[str, bytes | str]) -> dict[str, object]:
    encoded = {k: base64.b64encode(v.encode() if isinstance(v, str) else v).decode() for k, v in data.items()}
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "lfr"}},
            "data": encoded}


def service_secret_data(src: Path, service: str) -> dict[str, bytes | str]:
    d = src / service
    data: dict[str, bytes | str] = {
        "redis-password": redis_password(src, service),
        "redis-ca.crt": _required(src / "redis" / "ca.crt"),
        "grpc-tls.crt": _required(d / "grpc-tls.crt"),
        "grpc-tls.key": _required(d / "grpc-tls.key"),
        "grpc-ca.crt": _required(src / "grpc-ca.crt"),
        "probe-client.crt": _required(d / "probe-client.crt"),
        "probe-client.key": _required(d / "probe-client.key"),
    }
    if service in MILVUS_USERS:
        data["milvus-token"] = _generated(d / "milvus-token", f"lfr-{service}:{secrets.token_urlsafe(24)}")
    if service in DEVICE_TOKEN_SERVICES:
        data["device-token.key"] = _generated(d / "device-token.key", secrets.token_hex(32))
    if service in AUDIT_SERVICES:
        data["audit-signing.key"] = audit_key(src, service)[0]
    return data


def console_users(path: Path) -> bytes:
    """The console's users file, checked as the console checks it: valid, and not holding the development users
    (published passwords; deploy/local/console-users.yaml), copied or not."""
    from services.console.config import DEV_USERS_FILE
    from services.console.users import UsersFileError, UsersSource, password_hashes

    data = _required(path)
    try:
        UsersSource(path, password_hashes(DEV_USERS_FILE))
    except UsersFileError as e:
        raise SecretsError(f"{e} (make your own: python -m services.console.users add {path} USER ROLE...)") from None
    return data


def console_secret_data(src: Path) -> dict[str, bytes | str]:
    d = src / "console"
    return {
        "users.yaml": console_users(d / "users.yaml"),
        "redis-password": redis_password(src, "console"),
        "redis-ca.crt": _required(src / "redis" / "ca.crt"),
        "grpc-client.crt": _required(d / "grpc-client.crt"),
        "grpc-client.key": _required(d / "grpc-client.key"),
        "grpc-ca.crt": _required(src / "grpc-ca.crt"),
    }


def build(src: Path, namespace: str, template: str | None = None) -> dict[str, object]:
    """The Kubernetes List of every Secret."""
    if not src.is_dir():
        raise SecretsError(f"{src} is not a directory")
    items = [_secret(f"lfr-{s}-secrets", namespace, service_secret_data(src, s)) for s in SERVICES]
    items.append(_secret("lfr-console-secrets", namespace, console_secret_data(src)))
    passwords = {u: redis_password(src, u) for u in (*REDIS_SYSTEM_USERS, *SERVICES, *REDIS_CLIENTS)}
    acl = render_users_acl(template if template is not None else ACL_TEMPLATE.read_text(encoding="utf-8"), passwords)
    items.append(_secret("lfr-redis-acl", namespace, {
        "users.acl": acl, **{f"{u}-password": passwords[u] for u in ("probe", "replication", "sentinel")}}))
    items.append(_secret("lfr-redis-tls", namespace, {
        k: _required(src / "redis" / k) for k in ("tls.crt", "tls.key", "ca.crt")}))
    items.append({"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": "lfr-audit-keyring", "namespace": namespace,
                               "labels": {"app.kubernetes.io/part-of": "lfr"}},
                  "data": {f"{s}.pub": audit_key(src, s)[1] for s in AUDIT_SERVICES}})
    return {"apiVersion": "v1", "kind": "List", "items": items}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the LFR production Secrets from SRC (see the module doc).")
    parser.add_argument("src", type=Path, help="the operator's directory of certificates and passwords")
    parser.add_argument("--namespace", default="lfr", help="namespace of the Secrets (default lfr)")
    parser.add_argument("-o", "--output", type=Path, help="write here (mode 0600) instead of stdout")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:  # run as a script: services.common.pki (the audit keys) from this checkout
        sys.path.insert(0, str(ROOT))
    try:
        text = json.dumps(build(args.src, args.namespace), indent=1) + "\n"
    except (SecretsError, OSError) as e:
        sys.stderr.write(f"create_secrets: error: {e}\n")
        return 2
    if args.output:
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
