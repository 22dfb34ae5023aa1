"""What each platform role may see and do in the console: THE table (one place).

The roles are the platform's: operator, watchlist_manager, officer,
supervisor, auditor, integrator. The console checks this table before showing a
view or calling an API, and forwards the user's identity and roles with every
gRPC call, so the API applies its own rules as well (it has the last word).
"""

from __future__ import annotations

from collections.abc import Iterable

ROLES: tuple[str, ...] = ("operator", "watchlist_manager", "officer", "supervisor", "auditor", "integrator")

# view -> roles that may open it
VIEWS: dict[str, frozenset[str]] = {
    "alerts": frozenset({"operator", "officer", "supervisor", "integrator"}),
    "cameras": frozenset({"operator", "officer", "supervisor"}),
    "watchlists": frozenset({"operator", "watchlist_manager", "supervisor", "auditor"}),
    "audit": frozenset({"auditor"}),
    "health": frozenset({"operator", "supervisor"}),
}
VIEW_ORDER: tuple[str, ...] = ("alerts", "cameras", "watchlists", "audit", "health")
VIEW_TITLES: dict[str, str] = {"alerts": "Live alerts", "cameras": "Cameras", "watchlists": "Watchlists",
                               "audit": "Audit", "health": "Health"}

# action -> roles that may do it
ACTIONS: dict[str, frozenset[str]] = {
    "adjudicate": frozenset({"officer", "supervisor"}),  # a trained officer decides on every alert
    "close_watchlist": frozenset({"watchlist_manager"}),
}


def may_view(roles: Iterable[str], view: str) -> bool:
    return bool(VIEWS.get(view, frozenset()) & set(roles))


def may(roles: Iterable[str], action: str) -> bool:
    return bool(ACTIONS.get(action, frozenset()) & set(roles))


def views_for(roles: Iterable[str]) -> list[str]:
    have = set(roles)
    return [v for v in VIEW_ORDER if VIEWS[v] & have]
