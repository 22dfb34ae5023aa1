"""Server-side sessions and sign-in throttling, both in Redis (shared by every console replica).

The cookie holds only a random session id (256 bits); the session record lives in Redis under
``<prefix>session:<sha256(id)>`` (so a reader of Redis holds no usable cookie) with the session's TTL:
user, roles, deployments, created, last seen, the CSRF token and a fingerprint of the user's password
hash. Every request re-reads the record and re-checks the user against the users file
(:meth:`SessionStore.resolve`): logout deletes the record, a removed user or a changed password ends
the session, a changed role or deployment list applies at once. The cookie is HttpOnly and
SameSite=Strict; state-changing requests must also carry the session's CSRF token.

Failed sign-ins are counted per user name and per client address (:class:`SignInThrottle`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from services.console.config import LoginThrottle

COOKIE = "lfr_console"
SID_BYTES = 32
MAX_COOKIE = 128
TOUCH_EVERY_S = 30.0  # last_seen is rewritten at most this often


@dataclasses.dataclass(frozen=True)
class Session:
    username: str
    roles: tuple[str, ...]
    deployments: tuple[str, ...]
    expires: float
    sid: str
    csrf: str = ""
    created: float = 0.0
    last_seen: float = 0.0


class Account(Protocol):
    """What a session is checked against (services.console.users.User)."""

    @property
    def username(self) -> str: ...
    @property
    def roles(self) -> tuple[str, ...]: ...
    @property
    def deployments(self) -> tuple[str, ...]: ...
    @property
    def password(self) -> str: ...


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def password_fingerprint(stored_hash: str) -> str:
    """Changes when the user's password changes (a new hash): that ends the user's sessions."""
    return _digest("lfr-console-session\0" + stored_hash)[:32]


class SessionStore:
    def __init__(self, redis: Any, prefix: str, ttl_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s

    def key(self, sid: str) -> str:
        return f"{self.prefix}session:{_digest(sid)}"

    @staticmethod
    def _record(s: Session, fingerprint: str) -> str:
        return json.dumps({"u": s.username, "r": list(s.roles), "d": list(s.deployments), "e": s.expires,
                           "c": s.created, "l": s.last_seen, "x": s.csrf, "p": fingerprint}, separators=(",", ":"))

    async def create(self, user: Account) -> Session:
        now = time.time()
        s = Session(username=user.username, roles=tuple(user.roles), deployments=tuple(user.deployments),
                    expires=float(int(now + self.ttl_s)), sid=secrets.token_urlsafe(SID_BYTES),
                    csrf=secrets.token_urlsafe(32), created=now, last_seen=now)
        await self.redis.set(self.key(s.sid), self._record(s, password_fingerprint(user.password)), ex=self.ttl_s)
        return s

    async def delete(self, sid: str) -> None:
        await self.redis.delete(self.key(sid))

    async def resolve(self, cookie: str | None, lookup: Callable[[str], Account | None]) -> Session | None:
        """The live session of this cookie, checked against the users file now; None when there is none
        (unknown id, logged out, expired, user removed or password changed: the record is deleted)."""
        if not cookie or len(cookie) > MAX_COOKIE:
            return None
        key = self.key(cookie)
        raw = await self.redis.get(key)
        if raw is None:
            return None
        try:
            d = json.loads(raw)
            fingerprint = str(d["p"])
            s = Session(username=str(d["u"]), roles=tuple(map(str, d["r"])), deployments=tuple(map(str, d["d"])),
                        expires=float(d["e"]), sid=cookie, csrf=str(d["x"]), created=float(d["c"]),
                        last_seen=float(d["l"]))
        except (ValueError, KeyError, TypeError):
            await self.redis.delete(key)
            return None
        now = time.time()
        user = lookup(s.username)
        if s.expires <= now or user is None or password_fingerprint(user.password) != fingerprint:
            await self.redis.delete(key)
            return None
        current = dataclasses.replace(s, roles=tuple(user.roles), deployments=tuple(user.deployments))
        if current != s or now - s.last_seen >= TOUCH_EVERY_S:
            current = dataclasses.replace(current, last_seen=now)
            # KEEPTTL: the session still ends at its first deadline; XX: a logout in between is not undone
            await self.redis.set(key, self._record(current, fingerprint), keepttl=True, xx=True)
        return current

    @staticmethod
    def check_csrf(session: Session, token: str | None) -> bool:
        return bool(token) and bool(session.csrf) and hmac.compare_digest(str(token), session.csrf)


# KEYS: user counter, address counter; ARGV: window (s). Both counted first (atomic, so concurrent guesses
# cannot slip past the limit); the window starts at the first attempt and is never extended.
_ATTEMPT = """
local out = {}
for i, k in ipairs(KEYS) do
  redis.call('SET', k, 0, 'EX', ARGV[1], 'NX')
  out[2 * i - 1] = redis.call('INCR', k)
  out[2 * i] = redis.call('TTL', k)
end
return out
"""
# a successful sign-in: the user's counter is cleared, this attempt leaves the address counter (never
# re-creating an expired key); other users' failures from the address stay counted
_SUCCEEDED = """
redis.call('DEL', KEYS[1])
if redis.call('EXISTS', KEYS[2]) == 1 and tonumber(redis.call('GET', KEYS[2])) > 0 then
  redis.call('DECR', KEYS[2])
end
return 0
"""


def address_key(address: str | None) -> str:
    """The counted address: an IPv4 address, or the /64 of an IPv6 one (one host holds a whole /64)."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: tuple[str, ...]) -> str | None:
    """The address sign-ins are counted against: the peer, or behind trusted proxies the rightmost
    X-Forwarded-For entry that is not one of them (entries left of it can be forged by the client)."""
    nets = [ipaddress.ip_network(n, strict=False) for n in trusted_proxies]

    def trusted(addr: str | None) -> bool:
        try:
            ip = ipaddress.ip_address((addr or "").strip())
        except ValueError:
            return False
        return any(ip in net for net in nets)

    if not nets or not trusted(peer) or not forwarded_for:
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not trusted(hop):
            return hop
    return hops[0] if hops else peer


class SignInThrottle:
    """Sign-in attempts counted per user name and per client address in fixed windows."""

    def __init__(self, redis: Any, prefix: str, options: LoginThrottle) -> None:
        self.redis = redis
        self.prefix = prefix
        self.options = options

    def keys(self, username: str, address: str | None) -> tuple[str, str]:
        return (f"{self.prefix}signin:user:{_digest(username)[:32]}",
                f"{self.prefix}signin:addr:{address_key(address)}")

    async def attempt(self, username: str, address: str | None) -> int:
        """Count one attempt; 0 when it may go on, else the seconds until it may (Retry-After)."""
        user_n, user_ttl, addr_n, addr_ttl = (int(x) for x in await self.redis.eval(
            _ATTEMPT, 2, *self.keys(username, address), self.options.window_s))
        over = [ttl for n, ttl, limit in ((user_n, user_ttl, self.options.max_failures_per_user),
                                          (addr_n, addr_ttl, self.options.max_failures_per_address)) if n > limit]
        return max(1, *over) if over else 0

    async def succeeded(self, username: str, address: str | None) -> None:
        await self.redis.eval(_SUCCEEDED, 2, *self.keys(username, address))
