"""HTML of the views (server-rendered, escaped; the alerts view is filled by static/alerts.js)."""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from string import Template
from typing import Any

from lfr.v1 import audit_pb2, officers_pb2, watchlist_pb2

from services.common.cameras import Camera
from services.console.health import HealthReport
from services.console.roles import VIEW_TITLES, views_for
from services.console.sessions import Session

TEMPLATES = Path(__file__).parent / "templates"
e = html.escape


def ts(unix_ns: int) -> str:
    if not unix_ns:
        return "—"
    return datetime.fromtimestamp(unix_ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text())


def page(session: Session, csrf: str, view: str, body: str, *, scripts: Sequence[str] = (),
         main_attrs: dict[str, str] | None = None, title: str | None = None) -> str:
    current = ' aria-current="page"'
    nav = "".join(f'<li><a href="/{v}"{current if v == view else ""}>{e(VIEW_TITLES[v])}</a></li>'
                  for v in views_for(session.roles))
    attrs = " ".join(f'{k}="{e(v)}"' for k, v in (main_attrs or {}).items())
    return template("base.html").substitute(
        title=e(title or VIEW_TITLES.get(view, view)), nav=nav, user=e(session.username),
        roles=e(", ".join(session.roles)), csrf=e(csrf), body=body, main_attrs=attrs,
        scripts="".join(f'<script src="/static/{e(s)}" defer></script>' for s in scripts))


def login_page(message: str = "") -> str:
    msg = f'<p class="error" role="alert">{e(message)}</p>' if message else ""
    return template("login.html").substitute(message=msg)


def notice(text: str, kind: str = "info") -> str:
    role = ' role="alert"' if kind == "error" else ' role="status"'
    return f'<p class="notice {kind}"{role}>{e(text)}</p>'


def table(caption: str, headers: Iterable[str], rows: Iterable[Iterable[str]], empty: str, cls: str = "") -> str:
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    if not body:
        return f"<h2>{e(caption)}</h2><p>{e(empty)}</p>"
    head = "".join(f'<th scope="col">{e(h)}</th>' for h in headers)
    return (f'<table class="{cls}"><caption>{e(caption)}</caption><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>")


# --- alerts ----------------------------------------------------------------------


def alerts_body() -> str:
    return ('<p class="live" id="live-status" role="status" aria-live="polite">Connecting to the live alert stream…</p>'
            '<p class="hint">Alerts arrive by themselves (server-sent events). Images are shown only while the '
            'alert is within its retention; nothing is kept in the browser.</p>'
            '<div id="announcer" class="visually-hidden" aria-live="assertive"></div>'
            '<section id="alerts" aria-label="Live alerts"><p id="no-alerts">No alerts yet.</p></section>')


# --- cameras ----------------------------------------------------------------------


def available_count(officers: Sequence[officers_pb2.OfficerState], zone: str, now_ns: int) -> int:
    return sum(1 for o in officers if zone in o.zones and o.status == officers_pb2.OFFICER_STATUS_AVAILABLE
               and not o.supervisor and (not o.expires_unix_ns or o.expires_unix_ns > now_ns))


def cameras_body(cameras: Sequence[Camera], officers: Sequence[officers_pb2.OfficerState], min_officers: int,
                 ingest_active: dict[str, float] | None, error: str = "") -> str:
    from services.common.availability import may_run

    now = time.time_ns()
    out = [notice(error, "error")] if error else []
    rows = []
    for cam in cameras:
        n = available_count(officers, cam.zone, now)
        active = may_run(n, min_officers) and not error
        if error:
            state, why = "unknown", "the officer API did not answer"
        elif active:
            state, why = "active", f"{n} available officer(s) on duty in zone {cam.zone}"
        elif n == 0:
            state, why = "gated off", f"no officer on duty in zone {cam.zone}"
        else:
            state, why = "gated off", f"{n} available officer(s) in zone {cam.zone}, minimum {min_officers}"
        ingest = "—"
        if ingest_active is not None and cam.id in ingest_active:
            ingest = "streaming" if ingest_active[cam.id] == 1 else "stopped"
        rows.append([e(cam.id), e(cam.zone), e(cam.deployment_id),
                     f'<span class="state state-{state.replace(" ", "-")}" data-camera="{e(cam.id)}">{e(state)}</span>',
                     e(why), e(ingest)])
    out.append(table("Cameras", ["Camera", "Zone", "Deployment", "State", "Why", "Ingest reports"], rows,
                     "No cameras in the registry.", "cameras"))
    if error:
        return "".join(out)
    zones = sorted({c.zone for c in cameras} | {z for o in officers for z in o.zones})
    orows = []
    for zone in zones:
        for o in officers:
            if zone in o.zones:
                status = officers_pb2.OfficerStatus.Name(o.status).removeprefix("OFFICER_STATUS_").lower()
                orows.append([e(zone), e(o.officer_id), e(status), "yes" if o.supervisor else "no",
                              e(o.device_id), e(ts(o.last_heartbeat_unix_ns)), e(ts(o.expires_unix_ns))])
    out.append(table("Officers on duty per zone", ["Zone", "Officer", "Status", "Supervisor", "Device",
                                                   "Last heartbeat", "Available until"], orows,
                     "No officer is on duty in any zone: every camera is gated off.", "officers"))
    return "".join(out)


# --- watchlists ----------------------------------------------------------------------


def watchlists_body(watchlists: Sequence[watchlist_pb2.Watchlist], can_close: bool, csrf: str,
                    message: str = "", error: str = "") -> str:
    out = [notice(error, "error")] if error else []
    if message:
        out.append(notice(message))
    rows = []
    for w in watchlists:
        state = watchlist_pb2.WatchlistState.Name(w.state).removeprefix("WATCHLIST_STATE_").lower()
        action = "—"
        if can_close and w.state in (watchlist_pb2.WATCHLIST_STATE_ACTIVE, watchlist_pb2.WATCHLIST_STATE_PENDING):
            wid = e(w.watchlist_id)
            action = (f'<form method="post" action="/watchlists/{wid}/close" class="close">'
                      f'<input type="hidden" name="csrf" value="{e(csrf)}">'
                      f'<label for="reason-{wid}">Reason</label>'
                      f'<input id="reason-{wid}" name="reason" required maxlength="200">'
                      f'<button type="submit" class="danger" '
                      f'aria-label="Close watchlist {e(w.name or w.watchlist_id)}">'
                      f"Close</button></form>")
        rows.append([e(w.name or "—") + f'<br><small>{e(w.watchlist_id)}</small>', e(w.deployment_id),
                     e(w.authorisation_ref) + f"<br><small>by {e(w.authorising_officer)}</small>",
                     f"{e(ts(w.valid_from_unix_ns))} –<br>{e(ts(w.valid_until_unix_ns))}", e(state),
                     str(int(w.subject_count)), action])
    out.append(table("Watchlists", ["Watchlist", "Deployment", "Authorisation", "Valid", "State", "Subjects",
                                    "Action"], rows, "No active watchlists.", "watchlists"))
    return "".join(out)


# --- audit ----------------------------------------------------------------------


def audit_body(entries: Sequence[audit_pb2.AuditEntry], verify: audit_pb2.VerifyAuditResponse | None,
               error: str = "") -> str:
    out = [notice(error, "error")] if error else []
    if verify is not None:
        kind = "ok" if verify.ok else "error"
        out.append(f'<p class="notice {kind}" role="status" id="verify">Verify: {e(verify.summary)} '
                   f"(checked {e(ts(verify.verified_unix_ns))})</p>")
    rows = []
    for entry in reversed(entries):
        r = entry.record
        details = ", ".join(f"{k}={v}" for k, v in sorted(r.details.items()))
        rows.append([str(r.seq), e(ts(r.ts_unix_ns)), f"<code>{e(r.action)}</code>", e(r.actor),
                     e(r.deployment_id or "—"), e(", ".join(r.subject_ids) or "—"), e(details or "—"),
                     f"<code>{e(bytes(r.hash).hex()[:12])}</code>"])
    out.append(table("Latest audit records (newest first)", ["Seq", "Time", "Action", "Actor", "Deployment", "Ids",
                                                              "Details", "Hash"], rows, "The audit log is empty.",
                     "audit"))
    return "".join(out)


# --- health ----------------------------------------------------------------------


def _num(v: float | None, unit: str = "", digits: int = 2) -> str:
    if v is None:
        return "—"
    return f"{v:,.{digits}f}{unit}" if not float(v).is_integer() or digits == 3 else f"{int(v):,}{unit}"


def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v * 1000:,.0f} ms"


def health_body(rep: HealthReport) -> str:
    out = [f"<p>Source: {e(rep.source)}.</p>"]
    down = [f"{k} ({rep.errors.get(k, 'down')})" for k, ok in sorted(rep.up.items()) if not ok]
    if down:
        out.append(notice("Not answering: " + "; ".join(down), "error"))
    if rep.audit_chain_ok is not None:
        out.append(notice("Audit chain: " + ("OK" if rep.audit_chain_ok == 1 else "BROKEN"),
                          "ok" if rep.audit_chain_ok == 1 else "error"))
    out.append(table("Per-stage throughput", ["Stage", "Split", "Total", "Per second"],
                     [[e(t["stage"]), e(t["split"] or "—"), _num(t["total"]), _num(t["per_s"])]
                      for t in rep.throughput], "No throughput reported yet.", "throughput"))
    out.append(table("Latency", ["Measure", "Count", "Mean", "p50", "p95"],
                     [[e(name.replace("_", " ")), _num(h.get("count")), _ms(h.get("mean")), _ms(h.get("p50")),
                       _ms(h.get("p95"))] for name, h in rep.latency.items()], "No latency reported yet.", "latency"))
    out.append(table("Consumer lag", ["Topic", "Group", "Lag (records)"],
                     [[e(x["topic"]), e(x["group"]), _num(x["lag"])] for x in rep.lag], "No consumer lag reported.",
                     "lag"))
    out.append(table("Dependencies", ["Service", "Dependency", "Up"],
                     [[e(x["service"]), e(x["dependency"]), "up" if x["up"] else "<strong>DOWN</strong>"]
                      for x in rep.dependencies], "No dependency reported.", "deps"))
    return "".join(out)


def error_text(err: Any) -> str:
    """A gRPC error as one line for the page."""
    code = getattr(err, "code", None)
    details = getattr(err, "details", None)
    if callable(code) and callable(details):
        return f"the platform answered {code().name}: {details() or ''}".strip()
    return f"{type(err).__name__}: {err}"
