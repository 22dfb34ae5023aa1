"""The console's aiohttp application: login, the views, the live alert stream
(server-sent events), the images (Cache-Control: no-store) and the two actions
(Adjudicate, CloseWatchlist), each checked against services.console.roles and
forwarded to the platform's gRPC APIs with the user's identity.

Sessions live in Redis and are re-checked against the users file on every
request (services.console.sessions); sign-in is throttled per user name and per
client address (429 + Retry-After)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from redis.exceptions import RedisError

from lfr.v1 import officers_pb2

from services.common.cameras import CameraFile
from services.console import views
from services.common.clients import redis_kwargs
from services.console.config import DEV_USERS_FILE, ConsoleOptions
from services.console.feed import AlertFeed, visible
from services.console.health import HealthReader, fetch_text, parse, split
from services.console.platform import Platform
from services.console.roles import VIEW_ORDER, may, may_view, views_for
from services.console.sessions import COOKIE, Session, SessionStore, SignInThrottle, client_address
from services.console.users import UsersFileError, UsersSource, authenticate, password_hashes

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
KEEPALIVE_S = 15.0
NO_STORE = "no-store"
OUTCOMES = {"confirmed": officers_pb2.ADJUDICATION_OUTCOME_CONFIRMED,
            "rejected": officers_pb2.ADJUDICATION_OUTCOME_REJECTED,
            "no_action": officers_pb2.ADJUDICATION_OUTCOME_NO_ACTION}
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

CONSOLE_KEY: web.AppKey["Console"] = web.AppKey("console")


class Console:
    """State shared by the handlers."""

    def __init__(self, options: ConsoleOptions, metrics: Any = None, redis: Any = None) -> None:
        """``redis``: a redis.asyncio client (default: one for ``options.redis``, connected on first use)."""
        options.check_exposure()
        self.options = options
        # outside the local stack a users file holding the development users' hashes is refused, copied or not;
        # without the development file to compare against (an image built without it) nothing is served
        if not options.dev_users and not DEV_USERS_FILE.is_file():
            raise UsersFileError(f"the development users file {DEV_USERS_FILE} is missing, so a users file holding "
                                 "the development users (published passwords) could not be refused; the console "
                                 "image must contain it (deploy/docker/service.Dockerfile)")
        self.users = UsersSource(options.users_path,
                                 frozenset() if options.dev_users else password_hashes(DEV_USERS_FILE))
        if redis is None:
            from redis.asyncio import Redis

            redis = Redis.from_url(options.redis.url, **redis_kwargs(options.redis))
        self.redis = redis
        self.sessions = SessionStore(redis, options.key_prefix, options.session_ttl_s)
        self.throttle = SignInThrottle(redis, options.key_prefix, options.login)
        self.platform = Platform(options.platform)
        self.feed = AlertFeed(self.platform, options, metrics)
        self.health = HealthReader(options.metrics_targets, options.prometheus_url)
        self.cameras = CameraFile(options.cameras_file, "LFR_CONSOLE__CAMERAS_FILE")  # read on the cameras page
        self.stop = asyncio.Event()
        self.logins = metrics.counter("console_logins_total", "console sign-ins", ("result",)) if metrics else None
        self.refusals = metrics.counter("console_refusals_total", "requests refused by the console's role check",
                                        ("what",)) if metrics else None

    def refuse(self, what: str) -> None:
        if self.refusals is not None:
            self.refusals.labels(what).inc()


def _console(request: web.Request) -> Console:
    return request.app[CONSOLE_KEY]


async def _session(request: web.Request) -> Session | None:
    c = _console(request)
    return await c.sessions.resolve(request.cookies.get(COOKIE), c.users.get)


@web.middleware
async def security_headers(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    try:
        resp = await handler(request)
    except UsersFileError as e:
        log.error("request refused: the users file cannot be used", extra={"error": str(e)})
        resp = web.Response(status=503, text="the console's users file cannot be used; an administrator must fix it "
                                             "(see the console's log)")
    except RedisError as e:
        log.error("request refused: the session store does not answer", extra={"error": f"{type(e).__name__}: {e}"})
        resp = web.Response(status=503, text="the console's session store (Redis) does not answer; try again shortly")
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("Referrer-Policy", "no-referrer")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    if not request.path.startswith("/static/"):
        resp.headers["Cache-Control"] = NO_STORE  # pages and images hold operational data
    return resp


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8", status=status)


async def _require(request: web.Request, view: str | None = None) -> Session:
    """The session, or a redirect to /login (pages) / 401 (API); 403 without the view's role."""
    session = await _session(request)
    if session is None:
        if request.path.startswith("/api/"):
            raise web.HTTPUnauthorized(text="sign in first")
        raise web.HTTPSeeOther("/login")
    if view is not None and not may_view(session.roles, view):
        _console(request).refuse(f"view:{view}")
        raise web.HTTPForbidden(text=f"your roles ({', '.join(session.roles)}) may not open {view}")
    return session


def _check_csrf(session: Session, token: str | None) -> None:
    if not SessionStore.check_csrf(session, token):
        raise web.HTTPForbidden(text="missing or wrong CSRF token; reload the page")


# --- login ----------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    """The probes' page (compose healthcheck, k8s startup/readiness/liveness): the server answers. No session, no
    data, nothing from Redis or the platform."""
    return web.Response(text="ok\n")


async def login_form(request: web.Request) -> web.Response:
    return _html(views.login_page())


async def login(request: web.Request) -> web.Response:
    c = _console(request)
    form = await request.post()
    username, password = str(form.get("username", ""))[:64], str(form.get("password", ""))[:1024]
    address = client_address(request.remote, request.headers.get("X-Forwarded-For"), c.options.login.trusted_proxies)
    wait_s = await c.throttle.attempt(username, address)  # counted before the password is checked
    if wait_s:
        if c.logins is not None:
            c.logins.labels("throttled").inc()
        log.warning("sign-in throttled", extra={"username": username, "address": address, "retry_after_s": wait_s})
        minutes = max(1, -(-wait_s // 60))
        resp = _html(views.login_page(f"Too many failed sign-ins for this user or from this address. Try again in "
                                      f"{minutes} minute(s), or ask an administrator."), status=429)
        resp.headers["Retry-After"] = str(wait_s)
        return resp
    user = await asyncio.to_thread(authenticate, c.users.current(), username, password)
    if user is None:
        if c.logins is not None:
            c.logins.labels("refused").inc()
        log.info("sign-in refused", extra={"username": username, "address": address})
        return _html(views.login_page("Wrong user name or password."), status=401)
    await c.throttle.succeeded(username, address)
    session = await c.sessions.create(user)
    if c.logins is not None:
        c.logins.labels("ok").inc()
    log.info("signed in", extra={"username": user.username, "roles": list(user.roles), "address": address})
    first = views_for(user.roles)
    resp = web.HTTPSeeOther(f"/{first[0]}" if first else "/nothing")
    resp.set_cookie(COOKIE, session.sid, httponly=True, samesite="Strict", secure=c.options.secure_cookie, path="/",
                    max_age=c.options.session_ttl_s)
    raise resp


async def logout(request: web.Request) -> web.Response:
    session = await _session(request)
    if session is not None:
        form = await request.post()
        _check_csrf(session, str(form.get("csrf", "")))
        await _console(request).sessions.delete(session.sid)
        log.info("signed out", extra={"username": session.username})
    resp = web.HTTPSeeOther("/login")
    resp.del_cookie(COOKIE, path="/")
    raise resp


async def index(request: web.Request) -> web.Response:
    session = await _require(request)
    first = views_for(session.roles)
    raise web.HTTPSeeOther(f"/{first[0]}" if first else "/nothing")


async def nothing(request: web.Request) -> web.Response:
    session = await _require(request)
    return _html(views.page(session, session.csrf, "", views.notice(
        "Your roles give you no view in this console."), title="No views"))


# --- views ----------------------------------------------------------------------


async def alerts_view(request: web.Request) -> web.Response:
    session = await _require(request, "alerts")
    csrf = session.csrf
    return _html(views.page(session, csrf, "alerts", views.alerts_body(), scripts=["alerts.js"], main_attrs={
        "data-csrf": csrf, "data-can-adjudicate": "1" if may(session.roles, "adjudicate") else "0"}))


async def cameras_view(request: web.Request) -> web.Response:
    session = await _require(request, "cameras")
    c = _console(request)
    error = ""
    officers: list[Any] = []
    try:
        officers = list(await c.platform.list_officers(session))
    except grpc.aio.AioRpcError as err:
        error = views.error_text(err)
    cameras = await asyncio.to_thread(c.cameras.current)
    ingest_active = None
    url = c.options.metrics_targets.get("ingest")
    if url:
        try:
            samples = await asyncio.to_thread(lambda: parse(fetch_text(url, 1.0)))
            ingest_active = split(samples, "lfr_camera_active", "camera")
        except (OSError, ValueError):
            ingest_active = None
    body = views.cameras_body(cameras.cameras, officers, c.options.gating.min_officers, ingest_active, error)
    return _html(views.page(session, session.csrf, "cameras", body))


async def watchlists_view(request: web.Request, message: str = "", status: int = 200) -> web.Response:
    session = await _require(request, "watchlists")
    c = _console(request)
    error = ""
    lists: list[Any] = []
    try:
        lists = await c.platform.list_watchlists(session)
    except grpc.aio.AioRpcError as err:
        error = views.error_text(err)
    csrf = session.csrf
    body = views.watchlists_body(lists, may(session.roles, "close_watchlist"), csrf,
                                 message=message if status == 200 else "",
                                 error=error or (message if status != 200 else ""))
    return _html(views.page(session, csrf, "watchlists", body), status=status)


async def close_watchlist(request: web.Request) -> web.Response:
    session = await _require(request, "watchlists")
    c = _console(request)
    form = await request.post()
    _check_csrf(session, str(form.get("csrf", "")))
    if not may(session.roles, "close_watchlist"):
        c.refuse("close_watchlist")
        raise web.HTTPForbidden(text="only a watchlist manager may close a watchlist")
    wid = request.match_info["watchlist_id"]
    reason = str(form.get("reason", "")).strip()[:200]
    if not reason:
        return await watchlists_view(request, "A reason is required to close a watchlist.", status=400)
    try:
        resp = await c.platform.close_watchlist(session, wid, reason)
    except grpc.aio.AioRpcError as err:
        status = 403 if err.code() == grpc.StatusCode.PERMISSION_DENIED else 502
        return await watchlists_view(request, views.error_text(err), status=status)
    log.info("watchlist closed", extra={"watchlist_id": wid, "by": session.username})
    return await watchlists_view(
        request, f"Watchlist {wid} closed: {resp.subjects_deleted} subject(s), {resp.vectors_deleted} vector(s) "
                 f"destroyed.")


async def audit_view(request: web.Request) -> web.Response:
    session = await _require(request, "audit")
    c = _console(request)
    entries: list[Any] = []
    verify = None
    errors = []
    tail_res, verify_res = await asyncio.gather(c.platform.audit_tail(session), c.platform.audit_verify(session),
                                                return_exceptions=True)
    if isinstance(tail_res, grpc.aio.AioRpcError):
        errors.append("tail: " + views.error_text(tail_res))
    elif isinstance(tail_res, BaseException):
        raise tail_res
    else:
        entries = list(tail_res.entries)
    if isinstance(verify_res, grpc.aio.AioRpcError):
        errors.append("verify: " + views.error_text(verify_res))
    elif isinstance(verify_res, BaseException):
        raise verify_res
    else:
        verify = verify_res
    body = views.audit_body(entries, verify, "; ".join(errors))
    return _html(views.page(session, session.csrf, "audit", body))


async def health_view(request: web.Request) -> web.Response:
    session = await _require(request, "health")
    c = _console(request)
    report = await c.health.report()
    return _html(views.page(session, session.csrf, "health", views.health_body(report)))


# --- live alerts API ----------------------------------------------------------------


async def alert_stream(request: web.Request) -> web.StreamResponse:
    session = await _require(request, "alerts")
    c = _console(request)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": NO_STORE,
                                       "X-Accel-Buffering": "no"})
    await resp.prepare(request)
    sub = c.feed.subscribe(session)
    recheck_s = c.options.session_recheck_s
    try:
        async def send(event: str, data: str) -> None:
            await resp.write(f"event: {event}\ndata: {data}\n\n".encode())

        await send("status", json.dumps({"connected": c.feed.connected}))
        for alert in c.feed.snapshot(session):
            await send("alert", json.dumps(alert.public(), separators=(",", ":")))
        checked = last_write = time.monotonic()
        while not c.stop.is_set():
            try:
                event, data = await asyncio.wait_for(sub.queue.get(), timeout=recheck_s)
            except asyncio.TimeoutError:
                event = data = ""
            if event or time.monotonic() - checked >= recheck_s:  # logout, user removed, role lost: it ends
                checked = time.monotonic()
                try:
                    live = await _session(request)
                except (UsersFileError, RedisError):
                    live = None
                if live is None or not may_view(live.roles, "alerts"):
                    log.info("alert stream closed: its session ended", extra={"username": session.username})
                    await send("end", json.dumps({"reason": "session ended"}))
                    break
                sub.session = live  # a changed deployment list applies to the next events
            if event:
                await send(event, data)
                last_write = time.monotonic()
            elif time.monotonic() - last_write >= KEEPALIVE_S:
                await resp.write(b": keepalive\n\n")
                last_write = time.monotonic()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        c.feed.unsubscribe(sub)
    return resp


async def alert_image(request: web.Request) -> web.Response:
    session = await _require(request, "alerts")
    c = _console(request)
    alert = c.feed.alerts.get(request.match_info["alert_id"])
    if alert is None or not visible(session, alert):
        raise web.HTTPNotFound(text="no such alert here (never seen, or its retention ended)")
    data = alert.crop if request.match_info["which"] == "crop" else alert.watchlist_jpeg
    if data is None:
        raise web.HTTPNotFound(text="no image")
    return web.Response(body=data, content_type="image/jpeg", headers={"Cache-Control": NO_STORE})


async def adjudicate(request: web.Request) -> web.Response:
    session = await _require(request, "alerts")
    c = _console(request)
    _check_csrf(session, request.headers.get("X-CSRF-Token"))
    if not may(session.roles, "adjudicate"):
        c.refuse("adjudicate")
        raise web.HTTPForbidden(text="only an officer or a supervisor may adjudicate")
    alert_id = request.match_info["alert_id"]
    alert = c.feed.alerts.get(alert_id)
    if alert is None or not visible(session, alert):
        raise web.HTTPNotFound(text="no such alert here")
    try:
        body = await request.json()
    except ValueError as err:
        raise web.HTTPBadRequest(text="JSON body expected") from err
    outcome = OUTCOMES.get(str(body.get("outcome", "")))
    if outcome is None:
        raise web.HTTPBadRequest(text=f"outcome must be one of {sorted(OUTCOMES)}")
    note = str(body.get("note", ""))[:500]
    deadline = time.monotonic() + 3.0
    while True:
        try:
            resp = await c.platform.adjudicate(session, alert_id, outcome, note)
            break
        except grpc.aio.AioRpcError as err:
            # the officers service stores an alert a moment after the stream delivered it
            if err.code() == grpc.StatusCode.NOT_FOUND and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                continue
            status = {grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.FAILED_PRECONDITION: 409,
                      grpc.StatusCode.NOT_FOUND: 404}.get(err.code(), 502)
            return web.json_response({"ok": False, "error": views.error_text(err)}, status=status)
    log.info("adjudicated", extra={"alert_id": alert_id, "officer_id": session.username,
                                   "state": int(resp.state)})
    await c.feed.refresh(alert_id, purge_missing=False)
    live = c.feed.alerts.get(alert_id)
    return web.json_response({"ok": True, "state": officers_pb2.AlertState.Name(resp.state),
                              "final_outcome": officers_pb2.AdjudicationOutcome.Name(resp.final_outcome),
                              "confirmed_by": list(resp.confirmed_by),
                              "alert": live.public() if live else None})


# --- the app ----------------------------------------------------------------------


def build_app(console: Console) -> web.Application:
    app = web.Application(middlewares=[security_headers], client_max_size=64 * 1024)
    app[CONSOLE_KEY] = console
    app.add_routes([
        web.get("/", index), web.get("/healthz", healthz), web.get("/login", login_form), web.post("/login", login),
        web.post("/logout", logout),
        web.get("/nothing", nothing),
        web.get("/alerts", alerts_view), web.get("/cameras", cameras_view), web.get("/watchlists", watchlists_view),
        web.post("/watchlists/{watchlist_id}/close", close_watchlist), web.get("/audit", audit_view),
        web.get("/health", health_view),
        web.get("/api/alerts/stream", alert_stream),
        web.get(r"/api/alerts/{alert_id}/{which:crop|watchlist}.jpg", alert_image),
        web.post("/api/alerts/{alert_id}/adjudicate", adjudicate),
        web.static("/static", STATIC, follow_symlinks=False),
    ])
    assert set(VIEW_ORDER) <= {r.resource.canonical.strip("/") for r in app.router.routes() if r.resource}
    return app
