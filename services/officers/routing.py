"""Who gets an alert, in which order: pure functions (unit-tested).

- The first wave is the ``first_wave`` available officers of the camera's zone
  nearest to the camera (officers with a known location first, by great-circle
  distance; then those without, by id; all by id when the camera has no location).
- Each escalation (nobody acknowledged within the timeout) sends it to the next
  ``escalation_wave`` officers not yet notified.
- When no officer is left, the zone's supervisors (on-duty officers with the
  supervisor role, plus a configured supervisor device for the zone) get it.
- When nobody new can be reached, the alert is UNREACHABLE.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from services.common.availability import Officer
from services.officers.state import distance_m

OFFICERS = "officers"
SUPERVISOR = "supervisor"
UNREACHABLE = "unreachable"
CONFIGURED_PREFIX = "device:"  # a configured supervisor device has no officer id: it is named by its device


@dataclasses.dataclass(frozen=True)
class Target:
    officer_id: str  # "device:<id>" for a configured supervisor device
    device_id: str


@dataclasses.dataclass(frozen=True)
class Wave:
    kind: str  # OFFICERS | SUPERVISOR | UNREACHABLE
    targets: tuple[Target, ...] = ()


def rank(officers: Sequence[Officer], camera_lat: float | None, camera_lon: float | None) -> list[Officer]:
    """Nearest first when both locations are known; unknown locations after, by id."""

    def key(o: Officer) -> tuple[int, float, str]:
        if camera_lat is not None and camera_lon is not None and o.location is not None:
            return (0, distance_m(o.location, camera_lat, camera_lon), o.officer_id)
        return (1, 0.0, o.officer_id)

    return sorted(officers, key=key)


def next_wave(
    ranked: Sequence[Officer],
    supervisors: Sequence[Officer],
    supervisor_device: str | None,
    notified: Collection[str],
    *,
    level: int,
    first_wave: int,
    escalation_wave: int,
    supervisor_notified: bool = False,
) -> Wave:
    """The wave for ``level`` (0 = first), given who was already notified."""
    size = first_wave if level == 0 else escalation_wave
    fresh = [o for o in ranked if o.officer_id not in notified and o.device_id]
    if fresh and not supervisor_notified:
        return Wave(OFFICERS, tuple(Target(o.officer_id, o.device_id) for o in fresh[:size]))
    targets = [Target(o.officer_id, o.device_id) for o in sorted(supervisors, key=lambda o: o.officer_id)
               if o.officer_id not in notified and o.device_id]
    if supervisor_device and CONFIGURED_PREFIX + supervisor_device not in notified:
        if supervisor_device not in {t.device_id for t in targets}:
            targets.append(Target(CONFIGURED_PREFIX + supervisor_device, supervisor_device))
    if targets:
        return Wave(SUPERVISOR, tuple(targets))
    return Wave(UNREACHABLE)
