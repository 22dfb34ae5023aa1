"""The Redis key of a pass (``lfr:pass:<camera>:<subject>``): the alerts service writes the pass
record (services/alerts/passes.py); the officers service drops its best crop when it purges the
pass's alert (services/officers/alert_store.py)."""

from __future__ import annotations

PASS_PREFIX = "lfr:pass:"


def pass_key(camera_id: str, subject_id: str) -> str:
    return f"{PASS_PREFIX}{camera_id}:{subject_id}"
