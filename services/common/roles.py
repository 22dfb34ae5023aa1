"""Who may call what: THE table of every RPC of the platform and the roles allowed
to call it (default deny: a method missing here is refused to everyone).

Roles come from the caller's client certificate (OUs; see :mod:`services.common.pki`),
a signed device token (:mod:`services.common.tokens`) or, for calls the console
makes for a logged-in user, the ``lfr-roles`` metadata, trusted only from a
caller whose own certificate carries the ``console`` role.

A role may be *bound* to the request:

- ``SELF``: the request's ``officer_id`` must be the caller: an officer goes on
  duty, streams and acknowledges/adjudicates as themselves. Whether a
  ``device_id`` is the caller's own is the device registry's answer (an exact
  match, :mod:`services.officers.roster`), checked by the officers service,
  which also keeps an officer to the zones assigned to them and to the alerts
  routed to them or their zones, and lets only supervisors set the supervisor flag.
- ``DEPLOYMENT``: the request's ``deployment_id`` must be one of the caller's
  deployments (an integrator reads the alerts of their deployments only).
- ``ANY``: no condition on the request.

Health and reflection are open (probes); they are not in this table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

Binding = Literal["any", "self", "deployment"]
ANY: Binding = "any"
SELF: Binding = "self"
DEPLOYMENT: Binding = "deployment"

# roles a person can hold (the console forwards only these)
HUMAN_ROLES: frozenset[str] = frozenset(
    {"operator", "watchlist_manager", "officer", "supervisor", "auditor", "integrator"})
# roles of machines
SERVICE = "service"
CONSOLE = "console"
ALL_ROLES: frozenset[str] = HUMAN_ROLES | {SERVICE, CONSOLE}

_W = "/lfr.v1.WatchlistService/"
_A = "/lfr.v1.AuditService/"
_AL = "/lfr.v1.AlertService/"
_O = "/lfr.v1.OfficerService/"
_D = "/lfr.v1.DeviceService/"

_WATCHLIST_READERS = {"watchlist_manager": ANY, "operator": ANY, "supervisor": ANY, "auditor": ANY}

# full method name -> {role: binding}
TABLE: Mapping[str, Mapping[str, Binding]] = {
    # watchlists: managed by watchlist managers only; read by those who oversee operations
    _W + "CreateWatchlist": {"watchlist_manager": ANY},
    _W + "EnrolSubject": {"watchlist_manager": ANY},
    _W + "RemoveSubject": {"watchlist_manager": ANY},
    _W + "CloseWatchlist": {"watchlist_manager": ANY},
    _W + "BulkImport": {"watchlist_manager": ANY},
    _W + "ReembedWatchlist": {"watchlist_manager": ANY},
    _W + "ListWatchlists": _WATCHLIST_READERS,
    _W + "GetWatchlist": _WATCHLIST_READERS,
    # the audit: auditors
    _A + "Tail": {"auditor": ANY},
    _A + "Verify": {"auditor": ANY},
    # the alert feed: operators and supervisors see all, integrators their deployments, the console fans out
    _AL + "StreamAlerts": {"operator": ANY, "supervisor": ANY, "integrator": DEPLOYMENT, CONSOLE: ANY},
    # duty (cameras run only while officers are on duty): officers themselves; supervisors for their teams
    _O + "GoOnDuty": {"officer": SELF, "supervisor": ANY},
    _O + "Heartbeat": {"officer": SELF, "supervisor": ANY},
    _O + "SetStatus": {"officer": SELF, "supervisor": ANY},
    _O + "GoOffDuty": {"officer": SELF, "supervisor": ANY},
    _O + "ListOfficers": {"operator": ANY, "supervisor": ANY, "officer": ANY, CONSOLE: ANY},
    # the duty roster (which zones an officer may go on duty in, until when): supervisors and operators
    _O + "AssignZones": {"supervisor": ANY, "operator": ANY},
    _O + "ListAssignments": {"supervisor": ANY, "operator": ANY},
    _O + "RevokeAssignment": {"supervisor": ANY, "operator": ANY},
    # devices and adjudication: an officer's own stream and decisions; supervisors take escalations (as themselves)
    _D + "Subscribe": {"officer": SELF, "supervisor": SELF},
    _D + "Acknowledge": {"officer": SELF, "supervisor": SELF},
    _D + "Adjudicate": {"officer": SELF, "supervisor": SELF},
    _D + "GetAlert": {"officer": ANY, "supervisor": ANY, "operator": ANY, CONSOLE: ANY},
    # the device registry (device id -> officer): supervisors and operators
    _D + "RegisterDevice": {"supervisor": ANY, "operator": ANY},
    _D + "UnregisterDevice": {"supervisor": ANY, "operator": ANY},
}


@dataclasses.dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # why (for the refusal message and the audit); never request contents beyond ids


def _bound_ok(binding: Binding, principal: str, deployments: frozenset[str], request: Any) -> str | None:
    """None when the request satisfies the binding, else why not."""
    if binding == ANY:
        return None
    if request is None:
        return "the request cannot be checked against the caller"
    if binding == SELF:
        officer_id = getattr(request, "officer_id", None)
        if officer_id and officer_id != principal:
            return "officer_id is not the caller"
        return None
    deployment_id = getattr(request, "deployment_id", None)
    if not deployment_id or deployment_id not in deployments:
        return "deployment_id is not one of the caller's deployments"
    return None


def decide(method: str, principal: str, roles: frozenset[str], deployments: frozenset[str],
           request: Any = None) -> Decision:
    """May ``principal`` holding ``roles`` call ``method`` with ``request``? Default deny."""
    rule = TABLE.get(method)
    if rule is None:
        return Decision(False, "method not in the roles table (default deny)")
    granting = [r for r in roles if r in rule]
    if not granting:
        return Decision(False, f"none of the caller's roles {sorted(roles)} may call it")
    reasons = []
    for role in sorted(granting):
        why = _bound_ok(rule[role], principal, deployments, request)
        if why is None:
            return Decision(True, f"role {role}")
        reasons.append(f"{role}: {why}")
    return Decision(False, "; ".join(reasons))


def needs_request(method: str) -> bool:
    """True when some role's binding needs the request to decide."""
    return any(b != ANY for b in TABLE.get(method, {}).values())
