"""Signed, stateless session cookies (HMAC-SHA256) and the CSRF token bound to a session.

Cookie value: ``base64url(json payload) "." base64url(hmac)``; the payload holds
the username, roles, deployments, expiry and a random session id. The cookie is
HttpOnly and SameSite=Strict; state-changing requests must also carry the
session's CSRF token (a header or a form field)."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import time

COOKIE = "lfr_console"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclasses.dataclass(frozen=True)
class Session:
    username: str
    roles: tuple[str, ...]
    deployments: tuple[str, ...]
    expires: float
    sid: str


class SessionSigner:
    def __init__(self, key: bytes | None, ttl_s: int) -> None:
        if key is not None and len(key) < 32:
            raise ValueError("the session secret must be at least 32 bytes")
        self._key = key if key is not None else os.urandom(32)
        self.ttl_s = ttl_s

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.new(self._key, purpose + b"\0" + data, hashlib.sha256).digest()

    def issue(self, username: str, roles: tuple[str, ...], deployments: tuple[str, ...]) -> tuple[str, Session]:
        s = Session(username=username, roles=roles, deployments=deployments, expires=float(int(time.time() + self.ttl_s)),
                    sid=_b64(os.urandom(12)))
        body = json.dumps({"u": s.username, "r": list(s.roles), "d": list(s.deployments), "e": int(s.expires),
                           "s": s.sid}, separators=(",", ":")).encode()
        return f"{_b64(body)}.{_b64(self._mac(b'session', body))}", s

    def read(self, cookie: str | None) -> Session | None:
        if not cookie or "." not in cookie or len(cookie) > 4096:
            return None
        body_b64, _, mac_b64 = cookie.partition(".")
        try:
            body, mac = _unb64(body_b64), _unb64(mac_b64)
            if not hmac.compare_digest(mac, self._mac(b"session", body)):
                return None
            d = json.loads(body)
            s = Session(username=str(d["u"]), roles=tuple(map(str, d["r"])), deployments=tuple(map(str, d["d"])),
                        expires=float(d["e"]), sid=str(d["s"]))
        except (ValueError, KeyError, TypeError):
            return None
        return s if s.expires > time.time() else None

    def csrf(self, session: Session) -> str:
        return _b64(self._mac(b"csrf", session.sid.encode()))

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf(session))
