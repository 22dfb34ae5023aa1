"""Signed device tokens: the alternative to a client certificate for officers' devices.

Format (JWT-like, HMAC-SHA256, compact): ``lfr1.<payload>.<signature>``, both
parts unpadded base64url; the payload is JSON ``{"sub": principal, "roles": [...],
"dep": [...], "exp": unix seconds}``. The HMAC key is a file (a Kubernetes Secret;
``.lfr/certs/device-token.key`` locally) named by ``LFR_GRPC__AUTH__DEVICE_TOKEN_KEY_FILE``.
A device sends ``authorization: Bearer lfr1....`` over TLS (server-authenticated).
Tokens are short-lived (default 12 h: one shift); there is no revocation list, so
rotate the key to revoke every token at once.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import time
from collections.abc import Iterable

PREFIX = "lfr1"
MAX_TOKEN_CHARS = 4096
MIN_KEY_BYTES = 32  # HMAC-SHA256: a shorter key (an empty file!) is guessable; `lfr certs init` writes 64


class TokenError(ValueError):
    """The token is malformed, badly signed or expired."""


@dataclasses.dataclass(frozen=True)
class TokenClaims:
    principal: str
    roles: frozenset[str]
    deployments: frozenset[str]
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def check_key(key: bytes) -> bytes:
    """``key`` if it is long enough to sign tokens; TokenError otherwise (the message never holds the key)."""
    if len(key) < MIN_KEY_BYTES:
        raise TokenError(f"the token key is {len(key)} bytes; at least {MIN_KEY_BYTES} are needed")
    return key


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, f"{PREFIX}.{payload}".encode(), hashlib.sha256).digest())


def issue(key: bytes, principal: str, roles: Iterable[str], ttl_s: int = 12 * 3600,
          deployments: Iterable[str] = (), now: float | None = None) -> str:
    check_key(key)
    claims = {"sub": principal, "roles": sorted(roles), "dep": sorted(deployments),
              "exp": int((time.time() if now is None else now) + ttl_s)}
    payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return f"{PREFIX}.{payload}.{_sign(key, payload)}"


def verify(key: bytes, token: str, now: float | None = None) -> TokenClaims:
    check_key(key)
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("token too long")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise TokenError("not an lfr1 token")
    if not hmac.compare_digest(_sign(key, parts[1]), parts[2]):
        raise TokenError("bad signature")
    try:
        claims = json.loads(_unb64(parts[1]))
        out = TokenClaims(principal=str(claims["sub"]), roles=frozenset(map(str, claims["roles"])),
                          deployments=frozenset(map(str, claims.get("dep", []))), expires=int(claims["exp"]))
    except (ValueError, KeyError, TypeError) as e:
        raise TokenError("malformed claims") from e
    if not out.principal:
        raise TokenError("empty subject")
    if out.expires < (time.time() if now is None else now):
        raise TokenError("expired")
    return out
