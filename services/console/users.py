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
import logging
import os
import sys
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.console.roles import ROLES

log = logging.getLogger(__name__)

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

    username: str = Field(..., pattern=r"^[A-Za-z0-9_.@-]{1,64}$",
                          description="login name (the officer id for officers)")
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
        return cls.parse(Path(path).read_text(), path)

    @classmethod
    def parse(cls, text: str, path: Path) -> "UsersFile":
        out = cls.model_validate(yaml.safe_load(text) or {})
        names = [u.username for u in out.users]
        if len(names) != len(set(names)):
            raise ValueError(f"{path}: duplicate usernames")
        return out

    def get(self, username: str) -> User | None:
        return next((u for u in self.users if u.username == username), None)


class UsersFileError(ValueError):
    """The users file cannot be used now (missing, invalid, or holding the development users)."""


class DevelopmentUsersError(UsersFileError):
    """The users file holds the development users (published passwords) outside the local stack."""


class UsersSource:
    """The users file, re-read whenever it changes (a stat on every use; read and hashed only when the stat
    differs: the file is small), so
    that a removed user, a changed role or a changed password applies on the next request. While the
    file cannot be used, :meth:`current` raises (every request is refused, no session is ended) until it
    is fixed. ``forbidden_hashes``: password hashes refused in the file (the development users' outside
    the local stack)."""

    def __init__(self, path: Path, forbidden_hashes: frozenset[str] = frozenset()) -> None:
        self.path = Path(path)
        self.forbidden_hashes = forbidden_hashes
        self._stat = self._stat_now()
        raw = self._read()
        self._digest = hashlib.sha256(raw).digest()
        self._users: UsersFile | None = self._load(raw)  # raises at start: nothing is served
        self._error = ""

    def _load(self, raw: bytes) -> UsersFile:
        try:
            users = UsersFile.parse(raw.decode(), self.path)
        except (ValueError, yaml.YAMLError) as e:
            raise UsersFileError(f"users file {self.path}: {e}") from e
        dev = sorted(u.username for u in users.users if u.password in self.forbidden_hashes)
        if dev:
            raise DevelopmentUsersError(f"users file {self.path} holds DEVELOPMENT users with published passwords "
                                 f"({', '.join(dev)})")
        return users

    def _read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except OSError as e:
            raise UsersFileError(f"users file {self.path}: {e.strerror or type(e).__name__}") from e

    def _stat_now(self) -> tuple[int, int, int] | None:
        """(inode, size, mtime) of the file (a mounted Secret's update swaps a link: another inode)."""
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def current(self) -> UsersFile:
        stat = self._stat_now()
        if stat is not None and stat == self._stat and self._users is not None:
            return self._users
        try:
            raw = self._read()
        except UsersFileError as e:
            self._stat, self._digest, self._users, self._error = None, b"", None, str(e)
            raise
        self._stat = stat
        digest = hashlib.sha256(raw).digest()
        if digest != self._digest:
            self._digest = digest
            try:
                self._users, self._error = self._load(raw), ""
                log.info("users file loaded", extra={"path": str(self.path), "users": len(self._users.users)})
            except UsersFileError as e:
                self._users, self._error = None, str(e)
                log.error("users file refused: every request is refused until it is fixed", extra={"error": str(e)})
        if self._users is None:
            raise UsersFileError(self._error)
        return self._users

    def get(self, username: str) -> User | None:
        return self.current().get(username)


def password_hashes(path: Path) -> frozenset[str]:
    """The password hashes of a users file (empty when there is no such file)."""
    if not path.is_file():
        return frozenset()
    return frozenset(u.password for u in UsersFile.load(path).users)


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
