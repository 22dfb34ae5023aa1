"""The development PKI of the local stack (``lfr certs init``) and how identities
are read back from certificates.

Layout under ``<state>/certs`` (``.lfr/certs``; ``LFR_STATE`` moves it):

- ``ca.pem`` / ``ca.key``: a development CA (EC P-256, 5 years), never used in an operation;
- ``server/<service>.pem|.key``: one server certificate per gRPC service, SAN ``127.0.0.1`` and ``localhost``;
- ``client/<principal>.pem|.key``: client certificates. The subject's CN is the
  principal, each OU one of its roles (``operator``, ``watchlist_manager``,
  ``officer``, ``supervisor``, ``auditor``, ``integrator``, ``service``,
  ``console``), and an OU ``deployment=<id>`` scopes an integrator to a deployment.
- ``device-token.key``: the HMAC key that signs device tokens (see :mod:`services.common.tokens`).
- ``audit/<service>.key`` (Ed25519, PKCS#8 PEM, 0600): the key each service signs its audit records and
  checkpoints with; ``audit/pub/<service>.pub``: the keyring ``lfr audit verify`` trusts (see
  :mod:`services.common.audit`).

Idempotent: what exists and is still valid (chains to the CA, not expiring within
30 days) is kept; anything missing is made. Private keys are written 0600.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ipaddress
import os
import secrets
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.common.ids import check_id

SERVICES: tuple[str, ...] = ("ingest", "recognizer", "matcher", "alerts", "watchlist", "officers")
DEPLOYMENT_OU = "deployment="
VALID_DAYS = 825
RENEW_WITHIN = dt.timedelta(days=30)


@dataclasses.dataclass(frozen=True)
class ClientSpec:
    principal: str
    roles: tuple[str, ...]
    deployments: tuple[str, ...] = ()


# the local stack's identities: every service, the console, one person per role
DEV_CLIENTS: tuple[ClientSpec, ...] = (
    *(ClientSpec(s, ("service",)) for s in SERVICES),
    ClientSpec("console", ("console",)),
    ClientSpec("operator", ("operator",)),
    ClientSpec("manager", ("watchlist_manager",)),
    ClientSpec("officer-1", ("officer",)),
    ClientSpec("officer-2", ("officer",)),
    ClientSpec("demo-officer", ("officer",)),
    ClientSpec("supervisor", ("officer", "supervisor")),
    ClientSpec("auditor", ("auditor",)),
    ClientSpec("integrator", ("integrator",), ("demo",)),
    # the local developer: every human role at once (lfr demo, lfr watchlist ... on a laptop)
    ClientSpec("dev", ("operator", "watchlist_manager", "supervisor", "auditor")),
)


@dataclasses.dataclass(frozen=True)
class CertPaths:
    root: Path

    @property
    def ca(self) -> Path:
        return self.root / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    def server(self, service: str) -> tuple[Path, Path]:
        check_id("service", service)  # a file name: never a path out of the certs directory
        return self.root / "server" / f"{service}.pem", self.root / "server" / f"{service}.key"

    def client(self, principal: str) -> tuple[Path, Path]:
        check_id("principal", principal)  # a file name and a CN: never a path out of the certs directory
        return self.root / "client" / f"{principal}.pem", self.root / "client" / f"{principal}.key"

    @property
    def device_token_key(self) -> Path:
        return self.root / "device-token.key"

    def audit_key(self, service: str) -> Path:
        return self.root / "audit" / f"{service}.key"

    @property
    def audit_keyring(self) -> Path:
        return self.root / "audit" / "pub"

    def audit_pub(self, service: str) -> Path:
        return self.audit_keyring / f"{service}.pub"

    def exists(self) -> bool:
        return self.ca.is_file() and self.device_token_key.is_file()


def default_paths(state: Path) -> CertPaths:
    return CertPaths(state / "certs")


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _still_good(cert_file: Path, key_file: Path, ca: x509.Certificate) -> bool:
    if not cert_file.is_file() or not key_file.is_file():
        return False
    from cryptography.exceptions import InvalidSignature

    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) > RENEW_WITHIN


def _issue(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, subject: x509.Name, server: bool,
           ) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, content_commitment=False,
                                            data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    else:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def client_subject(spec: ClientSpec) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "LFR local"),
             *(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, r) for r in spec.roles),
             *(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEPLOYMENT_OU + d) for d in spec.deployments),
             x509.NameAttribute(NameOID.COMMON_NAME, spec.principal)]
    return x509.Name(attrs)


def init(paths: CertPaths, clients: tuple[ClientSpec, ...] = DEV_CLIENTS,
         services: tuple[str, ...] = SERVICES) -> dict[str, list[str]]:
    """Create what is missing; returns ``{"created": [...], "kept": [...]}`` (names, never key material).
    Safe to run from several processes at once (an flock on ``<root>/.lock``)."""
    import fcntl

    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _init_locked(paths, clients, services)


def _init_locked(paths: CertPaths, clients: tuple[ClientSpec, ...], services: tuple[str, ...]
                 ) -> dict[str, list[str]]:
    report: dict[str, list[str]] = {"created": [], "kept": []}
    if paths.ca.is_file() and paths.ca_key.is_file():
        ca = x509.load_pem_x509_certificate(paths.ca.read_bytes())
        ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        report["kept"].append("ca")
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "LFR local"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "LFR development CA (not for operations)")])
        ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
              .not_valid_after(now + dt.timedelta(days=5 * 365))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                           key_encipherment=False, content_commitment=False, data_encipherment=False,
                                           key_agreement=False, encipher_only=False, decipher_only=False),
                             critical=True)
              .sign(ca_key, hashes.SHA256()))
        _write_private(paths.ca_key, _key_pem(ca_key))
        _write_public(paths.ca, ca.public_bytes(serialization.Encoding.PEM))
        report["created"].append("ca")
    for service in services:
        cert_file, key_file = paths.server(service)
        if _still_good(cert_file, key_file, ca):
            report["kept"].append(f"server/{service}")
            continue
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "LFR local"),
                             x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "service"),
                             x509.NameAttribute(NameOID.COMMON_NAME, service)])
        cert, key = _issue(ca, ca_key, subject, server=True)
        _write_private(key_file, key)
        _write_public(cert_file, cert)
        report["created"].append(f"server/{service}")
    for spec in clients:
        cert_file, key_file = paths.client(spec.principal)
        if _still_good(cert_file, key_file, ca) and _subject_is(cert_file, client_subject(spec)):
            report["kept"].append(f"client/{spec.principal}")
            continue
        cert, key = _issue(ca, ca_key, client_subject(spec), server=False)
        _write_private(key_file, key)
        _write_public(cert_file, cert)
        report["created"].append(f"client/{spec.principal}")
    _audit_keys_locked(paths, services, report)
    if paths.device_token_key.is_file():
        report["kept"].append("device-token.key")
    else:
        _write_private(paths.device_token_key, secrets.token_hex(32).encode())
        report["created"].append("device-token.key")
    return report


def init_audit_keys(paths: CertPaths, services: tuple[str, ...] = SERVICES) -> dict[str, list[str]]:
    """Only the audit signing keys of ``services`` (``<root>/audit/<service>.key``) and their keyring
    (``<root>/audit/pub``), made when missing: what ``lfr audit keys init`` writes into the shared volume of
    the development deployments (docker-compose.yml, k8s/components/dev-audit-keys). Returns
    ``{"created": [...], "kept": [...]}``; safe from several processes at once (the flock of :func:`init`)."""
    import fcntl

    paths.root.mkdir(parents=True, exist_ok=True)
    report: dict[str, list[str]] = {"created": [], "kept": []}
    with open(paths.root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _audit_keys_locked(paths, services, report)
    return report


def _audit_keys_locked(paths: CertPaths, services: tuple[str, ...], report: dict[str, list[str]]) -> None:
    for service in services:
        report["created" if ensure_audit_key(paths, service) else "kept"].append(f"audit/{service}.key")


def ensure_audit_key(paths: CertPaths, service: str) -> bool:
    """``service``'s Ed25519 audit signing key and its public key in the keyring; True when the key was made.
    A missing public key is rewritten from the private key (never a new key for an existing one)."""
    return ensure_ed25519_key(paths.audit_key(service), paths.audit_pub(service))


def ensure_ed25519_key(key_file: Path, pub_file: Path) -> bool:
    """An Ed25519 private key (PKCS#8 PEM, 0600) at ``key_file``, made when missing (True then), and its
    public key (SubjectPublicKeyInfo PEM) at ``pub_file``, rewritten when missing or different. Also used by
    k8s/secrets/create_secrets.py for the production audit keys."""
    created = not key_file.is_file()
    if created:
        _write_private(key_file, ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(f"{key_file} is not an Ed25519 private key")
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    if not pub_file.is_file() or pub_file.read_bytes() != pub:
        _write_public(pub_file, pub)
    return created


def ensure_officer(paths: CertPaths, officer_id: str) -> None:
    """A client certificate (role officer) for ``officer_id``, issued by the LOCAL dev CA when missing:
    officers of demos and tests act as themselves. Needs the dev CA's key (never present in an operation).
    An ``officer_id`` that is not an identifier (services/common/ids.py: ``../../x``) raises InvalidId."""
    import fcntl

    check_id("officer id", officer_id)
    with open(paths.root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if paths.client(officer_id)[0].is_file():
            return
        ca = x509.load_pem_x509_certificate(paths.ca.read_bytes())
        ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        cert, key = _issue(ca, ca_key, client_subject(ClientSpec(officer_id, ("officer",))), server=False)
        cert_file, key_file = paths.client(officer_id)
        _write_private(key_file, key)
        _write_public(cert_file, cert)


def _subject_is(cert_file: Path, subject: x509.Name) -> bool:
    return x509.load_pem_x509_certificate(cert_file.read_bytes()).subject == subject


@dataclasses.dataclass(frozen=True)
class CertIdentity:
    principal: str
    roles: frozenset[str]
    deployments: frozenset[str]


@functools.lru_cache(maxsize=1024)
def identity_from_pem(pem: bytes) -> CertIdentity:
    """CN -> principal, OUs -> roles, ``deployment=<id>`` OUs -> deployments (cached per certificate)."""
    cert = x509.load_pem_x509_certificate(pem)
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    ous = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    return CertIdentity(
        principal=str(cns[0].value) if cns else "",
        roles=frozenset(o for o in ous if not o.startswith(DEPLOYMENT_OU)),
        deployments=frozenset(o[len(DEPLOYMENT_OU):] for o in ous if o.startswith(DEPLOYMENT_OU)),
    )
