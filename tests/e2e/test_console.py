"""The operator console in a real browser (headless Debian chromium driven by
playwright-core) over the real stack and services: the e2e pipeline (watchlist,
recognizer, matcher, alerts), the officers service and the console, on the e2e
ports. No mocks: frames go to Kafka, Triton finds the face, Milvus matches it,
the alert reaches the page over StreamAlerts and server-sent events.

1. The console camera's zone has no officer: the cameras view shows it gated
   off and why. An officer goes on duty (OfficerService.GoOnDuty): active.
2. Lin-Manuel Miranda is enrolled; frames of him reach the pipeline: his alert
   is on the page within 2 s of the matcher's decision, watchlist image and
   live crop side by side (images served no-store). Screenshot ->
   .lfr/console-alerts.png (docs/ with LFR_UPDATE_DOCS=1). Confirm is clicked: DeviceService.GetAlert says
   ADJUDICATED/CONFIRMED, and the auditor's audit view shows the
   alert.adjudicate record and an intact chain.
3. An operator (no watchlist-manager role) sees the watchlist but no close
   button, and the console refuses the close; a watchlist manager sees it.
   The API refuses it as well (roles in the gRPC interceptor).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator

import cv2
import grpc
import pytest
import yaml

from console_support import Browser, Child, console_service, node_modules, officers_service
from e2e_support import BOOTSTRAP, E2E, FACES_DIR, REPO, VIDEO, read_topic, sealed_frame, video_frames
from lfr.v1 import alerts_pb2, matches_pb2, officers_pb2, officers_pb2_grpc, watchlist_pb2
from topics_support import run_private
from services.cli.demo import Enrolment
from services.common.kafka import record_key, start_producer
from services.common.settings import KafkaSettings
from services.common.grpc_client import aio_channel, cert_paths
from services.console.config import PlatformEndpoints
from services.console.platform import Platform
from services.console.sessions import Session
from services.console.users import hash_password

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

LMM = Enrolment(name="Lin-Manuel Miranda", subject_id="lin-manuel-miranda",
                image=FACES_DIR / "lin_manuel_miranda_1.png")
ENROL_VISIBLE_S = 3.0  # Milvus' Bounded consistency (see test_dlq_e2e)
# A run writes its screenshot under the state dir; LFR_UPDATE_DOCS=1 refreshes
# the README's picture (docs/console-alerts.png) instead, so a test run never
# dirties the checkout.
SCREENSHOT = (REPO / "docs" / "console-alerts.png" if os.environ.get("LFR_UPDATE_DOCS") == "1"
              else REPO / ".lfr" / "console-alerts.png")
ROLES = {"officer": ["officer"], "auditor": ["auditor"], "operator": ["operator"], "manager": ["watchlist_manager"]}


class ConsoleRig:
    def __init__(self, e2e: E2E, users: dict[str, tuple[str, str]], browser: Browser, officers: Child,
                 console: Child, watchlist_id: str) -> None:
        self.e2e = e2e
        self.users = users  # role key -> (username, password)
        self.browser = browser
        self.officers = officers
        self.console = console
        self.watchlist_id = watchlist_id
        self.camera = e2e.cameras["console"]

    def officers_channel(self) -> grpc.aio.Channel:
        return aio_channel(f"127.0.0.1:{self.officers.grpc_port}")


@pytest.fixture(scope="module")
def rig(e2e: E2E, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleRig]:
    modules = node_modules()
    work = tmp_path_factory.mktemp("console")
    users = {k: (f"e2e-{e2e.tag}-{k}", secrets.token_urlsafe(12)) for k in ROLES}
    users_file = work / "users.yaml"
    users_file.write_text(yaml.safe_dump({"users": [
        {"username": name, "password": hash_password(pw), "roles": ROLES[k]} for k, (name, pw) in users.items()]}))
    officers = officers_service(e2e.layout, e2e.tag)
    console = console_service(e2e.layout, users_file, work / "console.yaml")
    camera = e2e.cameras["console"]
    browser: Browser | None = None
    watchlist_id = ""
    try:
        officers.start()
        console.start()
        run_private(officers.wait_serving(60))
        run_private(console.wait_http(f"http://127.0.0.1:{console.grpc_port}/login"))

        async def make_watchlist() -> str:
            client = e2e.watchlists()
            try:
                wl = await e2e.new_watchlist(client, camera.deployment_id, "console")
                await client.enrol(wl, LMM)
                return wl
            finally:
                await client.close_channel()

        watchlist_id = str(run_private(make_watchlist()))
        browser = Browser(modules, f"http://127.0.0.1:{console.grpc_port}")
        print(f"\nconsole e2e: {browser.version} on :{console.grpc_port}, officers on :{officers.grpc_port}")
        yield ConsoleRig(e2e, users, browser, officers, console, watchlist_id)
    finally:
        if browser is not None:
            browser.close()

        async def cleanup() -> None:
            client = e2e.watchlists()
            if watchlist_id:
                try:
                    await client.close(watchlist_id, "e2e console test done")
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err  # already closed by the test
            await client.close_channel()

        run_private(cleanup())
        codes = {svc.name: svc.stop() for svc in (console, officers)}
        shutil.rmtree(work, ignore_errors=True)
        assert all(c == 0 for c in codes.values()), f"console/officers did not stop cleanly: {codes}"


async def _camera_state(rig: ConsoleRig, ctx: str) -> tuple[str, str]:
    assert await rig.browser.goto(ctx, "/cameras") == 200
    sel = f'span[data-camera="{rig.camera.id}"]'
    state = await rig.browser.text(ctx, sel)
    row = str(await rig.browser.acall("eval", ctx=ctx, expr=f"document.querySelector({json.dumps(sel)})"
                                                            f".closest('tr').innerText"))
    return state, row


async def test_live_alert_confirm_audit_and_gating(rig: ConsoleRig) -> None:
    b, cam = rig.browser, rig.camera
    officer_name, officer_pw = rig.users["officer"]
    await b.login("officer", officer_name, officer_pw)

    # 1. gating: nobody on duty in the console zone -> gated off, and why
    state, row = await _camera_state(rig, "officer")
    assert state == "gated off", row
    assert f"no officer on duty in zone {cam.zone}" in row, row
    channel = rig.officers_channel()
    off = officers_pb2_grpc.OfficerServiceStub(channel)
    # as a supervisor would (the channel's identity is dev): the zone assigned, the device registered
    await off.AssignZones(officers_pb2.AssignZonesRequest(officer_id=officer_name, zones=[cam.zone], duration_s=3600),
                          timeout=10)
    await officers_pb2_grpc.DeviceServiceStub(channel).RegisterDevice(officers_pb2.RegisterDeviceRequest(
        device_id=f"{officer_name}-device", officer_id=officer_name), timeout=10)
    await off.GoOnDuty(officers_pb2.GoOnDutyRequest(officer_id=officer_name, zones=[cam.zone],
                                                    device_id=f"{officer_name}-device"), timeout=10)
    try:
        state, row = await _camera_state(rig, "officer")
        assert state == "active", row
        assert officer_name in await b.text("officer", "table.officers"), "officers on duty per zone"

        # 2. a live alert within 2 s of the match
        assert await b.goto("officer", "/alerts") == 200
        await b.acall("wait", ctx="officer", selector="#live-status.up")
        await asyncio.sleep(ENROL_VISIBLE_S)
        clip = [cv2.imencode(".jpg", f)[1].tobytes()
                for f in video_frames(VIDEO / "hamilton_white_house_short_clip.mp4", 5.0)[15:30]]
        producer = await start_producer(KafkaSettings(bootstrap=BOOTSTRAP), "e2e-console")
        try:
            for seq, jpeg in enumerate(clip, start=1):
                await producer.send_and_wait(rig.e2e.layout.topics.frames, value=await sealed_frame(cam, seq, jpeg),
                                             key=record_key(cam.id))
        finally:
            await producer.stop()
        card = "article.alert[data-alert-id]"
        await b.acall("wait", ctx="officer", selector=card, timeout=60_000)
        page_alert = await b.acall("eval", ctx="officer", expr=(
            "(() => { const c = document.querySelector('article.alert'); return {id: c.dataset.alertId, "
            "received: Number(c.dataset.receivedMs), text: c.innerText, "
            "imgs: [...c.querySelectorAll('img')].map(i => ({src: i.getAttribute('src'), alt: i.alt, "
            "w: i.naturalWidth}))}; })()"))
        alert_id = page_alert["id"]
        alerts = [a for a in (alerts_pb2.Alert.FromString(v) for v in await read_topic(rig.e2e.layout.topics.alerts))
                  if a.alert_id == alert_id]
        assert alerts and alerts[0].subject_id == LMM.subject_id and alerts[0].camera_id == cam.id
        matches = [m for m in (matches_pb2.MatchCandidate.FromString(v)
                               for v in await read_topic(rig.e2e.layout.topics.matches))
                   if m.frame.camera_id == cam.id and m.subject_id == LMM.subject_id]
        first_match_ms = min(m.match_unix_ns for m in matches) / 1e6
        delay_ms = page_alert["received"] - first_match_ms
        raised_ms = alerts[0].alert_unix_ns / 1e6
        print(f"alert {alert_id} on the page {delay_ms:.0f} ms after the first match (alerts service raised it "
              f"{raised_ms - first_match_ms:.0f} ms after the match, the page had it "
              f"{page_alert['received'] - raised_ms:.0f} "
              f"ms after that)")
        assert 0 <= delay_ms < 2000, f"alert on the page {delay_ms:.0f} ms after the match"
        assert LMM.subject_id in page_alert["text"] and cam.zone in page_alert["text"], page_alert["text"]
        assert {i["src"].rsplit("/", 1)[1] for i in page_alert["imgs"]} == {"watchlist.jpg", "crop.jpg"}
        assert all(i["alt"] and i["w"] > 0 for i in page_alert["imgs"]), "both images shown, with alt text"
        crop_url = f"{b.base_url}/api/alerts/{alert_id}/crop.jpg"
        headers = await b.acall("eval", ctx="officer", expr=(
            f"fetch({json.dumps(crop_url)}).then(r => ({{status: r.status, cc: r.headers.get('cache-control'), "
            f"type: r.headers.get('content-type')}}))"))
        assert headers == {"status": 200, "cc": "no-store", "type": "image/jpeg"}, headers
        # wait for the officers service's state (buttons present), then take the screenshot
        await b.acall("wait", ctx="officer", selector=f'{card} button[data-outcome="confirmed"]')
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        await b.acall("screenshot", ctx="officer", path=str(SCREENSHOT))

        # confirm, by keyboard: focus the button and press Enter
        await b.acall("eval", ctx="officer",
                      expr=f"document.querySelector('{card} button[data-outcome=\"confirmed\"]').focus()")
        await b.acall("press", ctx="officer", key="Enter")
        await b.acall("wait", ctx="officer", selector=f'{card}[data-state="adjudicated"]', timeout=20_000)
        status = await officers_pb2_grpc.DeviceServiceStub(channel).GetAlert(
            officers_pb2.GetAlertRequest(alert_id=alert_id), timeout=10)
        assert status.state == officers_pb2.ALERT_STATE_ADJUDICATED
        assert status.outcome == officers_pb2.ADJUDICATION_OUTCOME_CONFIRMED
        assert list(status.confirmed_by) == [officer_name]
    finally:
        await off.GoOffDuty(officers_pb2.GoOffDutyRequest(officer_id=officer_name), timeout=10)
        await channel.close()

    # the auditor sees the adjudication and an intact chain; the officer may not open the audit
    assert await b.goto("officer", "/audit") == 403
    auditor, pw = rig.users["auditor"]
    await b.login("auditor", auditor, pw)
    assert await b.goto("auditor", "/audit") == 200
    verify = await b.text("auditor", "#verify")
    assert "audit chain OK" in verify, verify
    rows = await b.text("auditor", "table.audit")
    mine = [line for line in rows.splitlines() if "alert.adjudicate" in line and alert_id in line]
    assert mine and "outcome=confirmed" in mine[0] and officer_name in mine[0], rows[:2000]


async def test_close_button_only_for_watchlist_managers(rig: ConsoleRig) -> None:
    b = rig.browser
    wl = rig.watchlist_id
    operator, pw = rig.users["operator"]
    await b.login("operator", operator, pw)
    assert await b.goto("operator", "/watchlists") == 200
    table = await b.text("operator", "table.watchlists")
    assert wl in table and rig.camera.deployment_id in table and f"E2E-{rig.e2e.tag}" in table, table
    assert await b.acall("eval", ctx="operator",
                         expr="document.querySelectorAll('form.close, button.danger').length") == 0
    # the console refuses the call even when the request is forged (valid session and CSRF token)
    refused = await b.acall("eval", ctx="operator", expr=(
        "(() => { const f = new FormData(); f.append('csrf', document.querySelector('input[name=csrf]').value); "
        f"f.append('reason', 'forged'); return fetch('/watchlists/{wl}/close', {{method: 'POST', body: f}})"
        ".then(r => r.status); })()"))
    assert refused == 403
    assert await _watchlist_state(rig, wl) == watchlist_pb2.WATCHLIST_STATE_ACTIVE

    manager, mpw = rig.users["manager"]
    await b.login("manager", manager, mpw)
    assert await b.goto("manager", "/watchlists") == 200
    await b.acall("fill", ctx="manager", selector=f"#reason-{wl}", value="e2e: operation over")
    await b.acall("click", ctx="manager", selector=f'form[action="/watchlists/{wl}/close"] button')
    await b.acall("wait", ctx="manager", selector="p.notice[role=status]")
    assert f"Watchlist {wl} closed" in await b.text("manager", "p.notice[role=status]")
    assert await _watchlist_state(rig, wl) == watchlist_pb2.WATCHLIST_STATE_CLOSED


async def test_api_refuses_close_without_watchlist_manager_role(rig: ConsoleRig) -> None:
    client = rig.e2e.watchlists()
    wl = await rig.e2e.new_watchlist(client, rig.camera.deployment_id, "console api refusal")
    operator, _ = rig.users["operator"]
    session = Session(username=operator, roles=("operator",), deployments=(), expires=time.time() + 60, sid="e2e")
    # the console's own client certificate: the API trusts its lfr-on-behalf-of/lfr-roles, and applies them
    certs = cert_paths()
    cert, key = certs.client("console")
    platform = Platform(PlatformEndpoints(watchlist=f"127.0.0.1:{rig.e2e.layout.grpc_port('watchlist')}",
                                          ca_file=certs.ca, cert_file=cert, key_file=key))
    try:
        try:
            await platform.close_watchlist(session, wl, "an operator may not close")
            refused = None
        except grpc.aio.AioRpcError as err:
            refused = err.code()
        assert refused == grpc.StatusCode.PERMISSION_DENIED, f"CloseWatchlist as an operator answered {refused}"
    finally:
        await platform.close()
        if await _watchlist_state(rig, wl) != watchlist_pb2.WATCHLIST_STATE_CLOSED:
            await client.close(wl, "e2e test done")
        await client.close_channel()


async def _watchlist_state(rig: ConsoleRig, wl: str) -> int:
    client = rig.e2e.watchlists()
    try:
        resp = await client.stub.GetWatchlist(watchlist_pb2.GetWatchlistRequest(watchlist_id=wl), timeout=10)
        return int(resp.watchlist.state)
    finally:
        await client.close_channel()
