"""Local console users: a YAML file of salted scrypt password hashes and platform roles.

    users:
      - username: alice
        password: "scrypt$16384$8$1$<salt b64>$<hash b64>"
        roles: [officer]
        deployments: []        # optional: only alerts of these deployments (integrators)

``python -m services.console.users hash`` reads a password from stdin and prints
its hash line; ``add FILE USER ROLE...`` appends a user (password from stdin).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import os
import sys
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.console.roles import ROLES

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
DKLEN = 32
MAX_PASSWORD = 1024


def hash_password(password: str, *, n: int = N, r: int = R, p: int = P, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=DKLEN)
    b64 = base64.b64encode
    return f"{SCHEME}${n}${r}${p}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != SCHEME or len(password) > MAX_PASSWORD:
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(..., pattern=r"^[A-Za-z0-9_.@-]{1,64}$", description="login name (the officer id for officers)")
    password: str = Field(..., min_length=20, description="scrypt$N$r$p$salt$hash")
    roles: tuple[str, ...] = Field(..., min_length=1, description="platform roles")
    deployments: tuple[str, ...] = Field((), description="only these deployments' alerts (empty: all)")
    display_name: str = Field("", max_length=200, description="shown in the page")

    @field_validator("roles")
    @classmethod
    def _known(cls, roles: tuple[str, ...]) -> tuple[str, ...]:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}; roles are {list(ROLES)}")
        return roles

    @field_validator("password")
    @classmethod
    def _hashed(cls, value: str) -> str:
        if not value.startswith(SCHEME + "$") or value.count("$") != 5:
            raise ValueError("password must be a scrypt hash (python -m services.console.users hash)")
        return value


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    users: tuple[User, ...] = Field(default=(), description="console users")

    @classmethod
    def load(cls, path: Path) -> "UsersFile":
        data = yaml.safe_load(Path(path).read_text()) or {}
        out = cls.model_validate(data)
        names = [u.username for u in out.users]
        if len(names) != len(set(names)):
            raise ValueError(f"{path}: duplicate usernames")
        return out

    def get(self, username: str) -> User | None:
        return next((u for u in self.users if u.username == username), None)


# a hash to check against when the user does not exist (same cost: no user enumeration by timing)
_DUMMY = hash_password("not a password", salt=b"\0" * 16)


def authenticate(users: UsersFile, username: str, password: str) -> User | None:
    user = users.get(username)
    ok = verify_password(password, user.password if user else _DUMMY)
    return user if ok and user is not None else None


def _main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m services.console.users", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("hash", help="hash the password read from stdin")
    add = sub.add_parser("add", help="append a user to FILE (password from stdin)")
    add.add_argument("file", type=Path)
    add.add_argument("username")
    add.add_argument("roles", nargs="+", choices=ROLES)
    args = ap.parse_args(argv)
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        print("no password on stdin", file=sys.stderr)
        return 2
    line = hash_password(password)
    if args.cmd == "hash":
        print(line)
        return 0
    data = yaml.safe_load(args.file.read_text()) if args.file.exists() else None
    data = data or {"users": []}
    data["users"].append({"username": args.username, "password": line, "roles": list(args.roles)})
    UsersFile.model_validate(data)
    args.file.write_text(yaml.safe_dump(data, sort_keys=False))
    print(f"added {args.username} ({', '.join(args.roles)}) to {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
