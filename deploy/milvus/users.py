#!/usr/bin/env python3
"""Create the per-service Milvus users and roles on a Milvus with authorizationEnabled,
from THE table services.common.acls.milvus_roles(): lfr-matcher (role lfr_matcher_read) and
lfr-watchlist (role lfr_watchlist_write). Idempotent: existing users keep their password (use
--reset-passwords to set them from the token files again), grants are re-applied.

    .venv/bin/python deploy/milvus/users.py --uri https://milvus:19530 \
        --root-token-file ROOT_TOKEN --secrets-dir SRC [--ca-file ca.crt] [--dry-run]

ROOT_TOKEN: a file holding `root:<password>` (Milvus starts with root:Milvus: change it first,
e.g. with --new-root-password-file, which replaces the default password once).
SRC/<service>/milvus-token: `lfr-<service>:<password>`, the same files k8s/secrets/create_secrets.py
puts into the services' Secrets (generated there when missing). Passwords are never printed.
Not testable on milvus-lite (no authentication): tests/unit/test_kafka_acls.py checks the table.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from services.common.acls import MilvusRole, milvus_roles  # noqa: E402

log = logging.getLogger("lfr.milvus.users")


def read_token(path: Path, user: str | None = None) -> tuple[str, str]:
    """(user, password) from a `user:password` file; the user must match when given."""
    name, sep, password = path.read_text(encoding="utf-8").strip().partition(":")
    if not sep or not name or not password:
        raise ValueError(f"{path} does not hold `user:password`")
    if user is not None and name != user:
        raise ValueError(f"{path} is for user {name!r}, expected {user!r}")
    return name, password


def plan(roles: tuple[MilvusRole, ...]) -> list[str]:
    """The calls, without secrets (what --dry-run prints)."""
    out = []
    for r in roles:
        out += [f"create_user {r.user}", f"create_role {r.role}"]
        out += [f"grant_privilege {r.role} {g.object_type} {g.object_name} {g.privilege}" for g in r.grants]
        out.append(f"grant_role {r.user} {r.role}")
    return out


def apply(client, roles: tuple[MilvusRole, ...], secrets_dir: Path, reset_passwords: bool = False) -> None:
    users = set(client.list_users())
    existing_roles = set(client.list_roles())
    for r in roles:
        _, password = read_token(secrets_dir / r.service / "milvus-token", r.user)
        if r.user not in users:
            client.create_user(user_name=r.user, password=password)
            log.info("created user %s", r.user)
        elif reset_passwords:
            client.drop_user(user_name=r.user)
            client.create_user(user_name=r.user, password=password)
            log.info("reset the password of %s", r.user)
        if r.role not in existing_roles:
            client.create_role(role_name=r.role)
            log.info("created role %s", r.role)
        for g in r.grants:
            client.grant_privilege(role_name=r.role, object_type=g.object_type, privilege=g.privilege,
                                   object_name=g.object_name)
        client.grant_role(user_name=r.user, role_name=r.role)
        log.info("role %s: %d privileges, granted to %s", r.role, len(r.grants), r.user)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Create the LFR services' Milvus users and roles (see the module doc).")
    p.add_argument("--uri", default="http://127.0.0.1:19530", help="Milvus URI")
    p.add_argument("--root-token-file", type=Path, help="file with root:<password>")
    p.add_argument("--new-root-password-file", type=Path, help="replace root's password with this file's content")
    p.add_argument("--secrets-dir", type=Path, help="SRC with <service>/milvus-token files")
    p.add_argument("--ca-file", type=Path, help="CA of an https:// Milvus")
    p.add_argument("--reset-passwords", action="store_true", help="set existing users' passwords from the files")
    p.add_argument("--dry-run", action="store_true", help="print the calls, connect to nothing")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    roles = milvus_roles()
    if args.dry_run:
        sys.stdout.write("\n".join(plan(roles)) + "\n")
        return 0
    if args.root_token_file is None or args.secrets_dir is None:
        p.error("--root-token-file and --secrets-dir are required (or --dry-run)")
    from pymilvus import MilvusClient

    user, password = read_token(args.root_token_file, "root")
    kw = {"server_pem_path": str(args.ca_file)} if args.ca_file else {}
    client = MilvusClient(uri=args.uri, token=f"{user}:{password}", **kw)
    try:
        if args.new_root_password_file:
            new = args.new_root_password_file.read_text(encoding="utf-8").strip()
            client.update_password(user_name="root", old_password=password, new_password=new)
            log.info("root password replaced")
        apply(client, roles, args.secrets_dir, args.reset_passwords)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
