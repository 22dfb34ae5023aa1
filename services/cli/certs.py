"""``lfr certs init|token|show``: the local stack's development PKI (see services/common/pki.py).

- ``init``: a development CA, a server certificate per service (SAN 127.0.0.1,
  localhost) and client certificates for each service, the console and one
  person per role, under ``<state>/certs``; idempotent.
- ``token``: a signed device token for an officer (``--principal officer-1``).
- ``show``: the identities (CN, roles, deployments) of the client certificates.
Never prints key material.
"""

from __future__ import annotations

import argparse
from typing import Any

from services.common.ids import cli_id


def _init(args: argparse.Namespace) -> int:
    from services.common.grpc_client import cert_paths
    from services.common.pki import init

    paths = cert_paths()
    report = init(paths)
    print(f"certs in {paths.root}: created {len(report['created'])} ({', '.join(report['created']) or '-'}), "
          f"kept {len(report['kept'])}")
    return 0


def _token(args: argparse.Namespace) -> int:
    from services.common import tokens
    from services.common.errors import SetupError
    from services.common.grpc_client import cert_paths

    paths = cert_paths()
    if not paths.device_token_key.is_file():
        raise SetupError(f"no device token key at {paths.device_token_key}", "run `lfr certs init`")
    key = paths.device_token_key.read_bytes().strip()
    print(tokens.issue(key, args.principal, args.role, ttl_s=args.ttl_s, deployments=args.deployment or ()))
    return 0


def _show(args: argparse.Namespace) -> int:
    from services.common.grpc_client import cert_paths
    from services.common.pki import identity_from_pem

    root = cert_paths().root / "client"
    for pem in sorted(root.glob("*.pem")):
        ident = identity_from_pem(pem.read_bytes())
        dep = f" deployments={','.join(sorted(ident.deployments))}" if ident.deployments else ""
        print(f"{ident.principal}: roles={','.join(sorted(ident.roles))}{dep}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("certs", help="development CA and certificates of the local stack (mTLS)")
    cmds = p.add_subparsers(dest="certs_command", required=True)
    cmds.add_parser("init", help="create the CA, server and client certificates (idempotent)").set_defaults(
        func=_init)
    t = cmds.add_parser("token", help="print a signed device token (bearer) for an officer's device")
    t.add_argument("--principal", required=True, type=cli_id("principal"), help="officer id the token stands for")
    t.add_argument("--role", action="append", default=None, help="role (repeatable; default officer)")
    t.add_argument("--deployment", action="append", help="deployment scope (integrators)")
    t.add_argument("--ttl-s", type=int, default=12 * 3600, help="lifetime in seconds (default one shift, 12 h)")
    t.set_defaults(func=lambda a: _token(argparse.Namespace(**{**vars(a), "role": a.role or ["officer"]})))
    cmds.add_parser("show", help="list the client identities and their roles").set_defaults(func=_show)
