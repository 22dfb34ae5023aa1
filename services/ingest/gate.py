"""Camera gating: a camera runs only while at least
``gating.min_officers`` AVAILABLE officers are on duty in its zone.

:class:`GateMonitor` polls officer availability in Redis every
``gating.poll_interval_s`` (one pipelined ``ZCOUNT`` per zone for all cameras,
see :mod:`services.common.availability`) and keeps an in-memory open/closed flag per
camera; ``CameraStream`` checks ``is_open(camera)`` before every capture and,
while closed, releases the source and reads nothing. Frames therefore flow
within one poll interval (+ opening the source) of an officer going on duty,
and stop within one poll interval of the last officer's availability lapsing
(its heartbeat TTL) or going off duty.

Fail closed: until the first successful poll, and while Redis does not answer,
every camera is gated off. Every transition is audited
(``camera.on``/``camera.off``, hash-chained) and reflected in
``lfr_camera_active{camera}``; an audit that fails is retried on the next poll
(the gate itself never waits for the audit).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

from services.common.availability import GatingOptions, may_run, zone_counts
from services.common.cameras import Camera

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Transition:
    camera: Camera
    on: bool
    reason: str


class GateMonitor:
    def __init__(self, cameras: Sequence[Camera], options: GatingOptions, *, redis: Any = None, audit: Any = None,
                 camera_active: Any = None, actor: str = "ingest") -> None:
        self.cameras = list(cameras)
        self.options = options
        self.redis = redis
        self.audit = audit
        self.camera_active = camera_active
        self.actor = actor
        self._open: dict[str, bool] = {c.id: False for c in self.cameras}
        self._pending: list[Transition] = []
        self.polls = 0

    def is_open(self, camera: Camera) -> bool:
        """The ``Gate`` hook of :class:`services.ingest.camera.CameraStream` (cheap: a dict lookup)."""
        return self._open.get(camera.id, False)

    def decide(self, counts: dict[str, int] | None) -> list[Transition]:
        """Apply one poll's counts (None: Redis did not answer -> all closed); the transitions."""
        out = []
        for cam in self.cameras:
            n = None if counts is None else counts.get(cam.zone, 0)
            want = n is not None and may_run(n, self.options.min_officers)
            if want != self._open[cam.id]:
                self._open[cam.id] = want
                reason = ("availability unknown (redis unreachable)" if n is None
                          else f"{n} available officer(s) in zone {cam.zone}, minimum {self.options.min_officers}")
                out.append(Transition(cam, want, reason))
                if not want and self.camera_active is not None:
                    self.camera_active.labels(cam.id).set(0)
                log.info("camera gated " + ("on" if want else "off"),
                         extra={"camera": cam.id, "zone": cam.zone, "reason": reason})
        return out

    async def poll(self) -> list[Transition]:
        try:
            counts: dict[str, int] | None = await zone_counts(self.redis, {c.zone for c in self.cameras})
        except Exception as e:  # redis-py raises its own ConnectionError/TimeoutError types: fail closed
            log.warning("officer availability unreadable; cameras gated off",
                        extra={"error": f"{type(e).__name__}: {e}"})
            counts = None
        self.polls += 1
        return self.decide(counts)

    async def flush_audit(self) -> None:
        while self._pending and self.audit is not None:
            t = self._pending[0]
            try:
                await self.audit.camera_changed(t.camera.id, on=t.on, actor=self.actor,
                                                deployment_id=t.camera.deployment_id, reason=t.reason)
            except Exception as e:  # broker down: keep the transition, retry on the next poll
                log.warning("camera transition not audited yet; will retry",
                            extra={"camera": t.camera.id, "error": f"{type(e).__name__}: {e}"})
                return
            self._pending.pop(0)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._pending += await self.poll()
            await self.flush_audit()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.options.poll_interval_s)
            except asyncio.TimeoutError:
                pass
        for cam in self.cameras:  # stopping: every camera goes off (audited when the broker is still there)
            if self._open[cam.id]:
                self._open[cam.id] = False
                self._pending.append(Transition(cam, False, "ingest stopping"))
        await self.flush_audit()
