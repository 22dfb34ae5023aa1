"""The console's only way into the platform: its gRPC APIs (AlertService,
WatchlistService, AuditService, OfficerService, DeviceService). No Redis, Kafka
or Milvus client is ever opened here.

Identity: every call carries the console's own credentials (mTLS client
certificate and/or ``authorization: Bearer <token>``) and the end user it acts
for, in metadata the platform's interceptor can trust from the console's
principal only: ``lfr-on-behalf-of: <username>`` and ``lfr-roles: r1,r2``.
Calls the console makes for itself (the alert stream it fans out) carry
``lfr-on-behalf-of: console`` with no user roles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from lfr.v1 import (
    alerts_pb2, alerts_pb2_grpc, audit_pb2, audit_pb2_grpc, officers_pb2, officers_pb2_grpc, watchlist_pb2,
    watchlist_pb2_grpc,
)

from services.console.config import PlatformEndpoints, read_secret
from services.console.sessions import Session

ON_BEHALF_OF = "lfr-on-behalf-of"
ROLES = "lfr-roles"
CONSOLE_PRINCIPAL = "console"
MAX_MESSAGE = 16 * 1024 * 1024


def identity_metadata(session: Session | None, token: str | None) -> tuple[tuple[str, str], ...]:
    md: list[tuple[str, str]] = []
    if token:
        md.append(("authorization", f"Bearer {token}"))
    if session is None:
        md.append((ON_BEHALF_OF, CONSOLE_PRINCIPAL))
    else:
        md += [(ON_BEHALF_OF, session.username), (ROLES, ",".join(session.roles))]
    return tuple(md)


class Platform:
    """gRPC channels and stubs; ``await close()`` at shutdown."""

    def __init__(self, endpoints: PlatformEndpoints) -> None:
        self.ep = endpoints
        secret = read_secret(endpoints.token_file)
        self._token = secret.get_secret_value() if secret is not None else None
        self._channels: list[grpc.aio.Channel] = []
        alerts = self._channel(endpoints.alerts)
        watch = self._channel(endpoints.watchlist)
        officers = self._channel(endpoints.officers)
        self.alerts = alerts_pb2_grpc.AlertServiceStub(alerts)
        self.watchlists = watchlist_pb2_grpc.WatchlistServiceStub(watch)
        self.audit = audit_pb2_grpc.AuditServiceStub(watch)
        self.officers = officers_pb2_grpc.OfficerServiceStub(officers)
        self.devices = officers_pb2_grpc.DeviceServiceStub(officers)

    def _channel(self, target: str) -> grpc.aio.Channel:
        from services.common.grpc_client import ClientTls, aio_channel

        tls = None
        if self.ep.ca_file is not None:
            tls = ClientTls(ca=self.ep.ca_file.read_bytes(),
                            cert=self.ep.cert_file.read_bytes() if self.ep.cert_file else None,
                            key=self.ep.key_file.read_bytes() if self.ep.key_file else None)
        channel = aio_channel(target, tls=tls or False)
        self._channels.append(channel)
        return channel

    def md(self, session: Session | None) -> tuple[tuple[str, str], ...]:
        return identity_metadata(session, self._token)

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()

    # --- alerts -----------------------------------------------------------------------

    def stream_alerts(self) -> Any:
        """The console's own subscription (every zone); it filters per user before showing."""
        return self.alerts.StreamAlerts(alerts_pb2.StreamAlertsRequest(), metadata=self.md(None))

    async def get_alert(self, alert_id: str, session: Session | None = None) -> officers_pb2.AlertStatus:
        return await self.devices.GetAlert(officers_pb2.GetAlertRequest(alert_id=alert_id),
                                           metadata=self.md(session), timeout=self.ep.timeout_s)

    async def adjudicate(self, session: Session, alert_id: str, outcome: int, note: str = "",
                         case_ref: str = "") -> officers_pb2.AdjudicateResponse:
        return await self.devices.Adjudicate(officers_pb2.AdjudicateRequest(
            alert_id=alert_id, officer_id=session.username, outcome=outcome, note=note, case_ref=case_ref),
            metadata=self.md(session), timeout=self.ep.timeout_s)

    # --- officers -----------------------------------------------------------------------

    async def list_officers(self, session: Session | None, zone: str = "") -> Sequence[officers_pb2.OfficerState]:
        resp = await self.officers.ListOfficers(officers_pb2.ListOfficersRequest(zone=zone),
                                                metadata=self.md(session), timeout=self.ep.timeout_s)
        return list(resp.officers)

    # --- watchlists -----------------------------------------------------------------------

    async def list_watchlists(self, session: Session, include_closed: bool = False) -> list[watchlist_pb2.Watchlist]:
        out: list[watchlist_pb2.Watchlist] = []
        token = ""
        for _ in range(100):
            resp = await self.watchlists.ListWatchlists(watchlist_pb2.ListWatchlistsRequest(
                include_closed=include_closed, page_size=200, page_token=token),
                metadata=self.md(session), timeout=self.ep.timeout_s)
            out.extend(resp.watchlists)
            token = resp.next_page_token
            if not token:
                break
        return out

    async def close_watchlist(self, session: Session, watchlist_id: str,
                              reason: str) -> watchlist_pb2.CloseWatchlistResponse:
        return await self.watchlists.CloseWatchlist(watchlist_pb2.CloseWatchlistRequest(
            watchlist_id=watchlist_id, reason=reason), metadata=self.md(session), timeout=self.ep.timeout_s)

    # --- audit -----------------------------------------------------------------------

    async def audit_tail(self, session: Session, limit: int = 50) -> audit_pb2.TailAuditResponse:
        return await self.audit.Tail(audit_pb2.TailAuditRequest(limit=limit), metadata=self.md(session),
                                     timeout=self.ep.timeout_s)

    async def audit_verify(self, session: Session) -> audit_pb2.VerifyAuditResponse:
        return await self.audit.Verify(audit_pb2.VerifyAuditRequest(), metadata=self.md(session),
                                       timeout=self.ep.audit_timeout_s)
