"""Which frames to keep, and when to emit them: pure arithmetic, no I/O.

- :class:`Sampler` keeps frames at a target rate from a stream of media
  timestamps (seconds). A 30 fps file sampled at 10 fps keeps every 3rd frame;
  a tolerance of half a source frame keeps the spacing regular when the rates
  do not divide (29.97 -> 10 keeps mostly every 3rd, sometimes the 2nd).
- :class:`Pacer` maps media time to wall time so a file plays in real time;
  when the reader falls behind by more than ``max_lag_s`` it re-anchors (no
  burst to catch up: live video must not queue).
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Sampler:
    target_fps: float
    source_fps: float | None = None  # None/0: unknown (live source, wall-clock timestamps)
    _next_due: float | None = None

    def __post_init__(self) -> None:
        if self.target_fps <= 0:
            raise ValueError("target_fps must be > 0")

    @property
    def period(self) -> float:
        return 1.0 / self.target_fps

    @property
    def tolerance(self) -> float:
        if self.source_fps and self.source_fps > 0:
            return 0.5 / self.source_fps
        return 0.0

    def keep(self, t: float) -> bool:
        """True when the frame at media time ``t`` (non-decreasing) is to be published."""
        if self._next_due is None:
            self._next_due = t + self.period
            return True
        if t + self.tolerance < self._next_due:
            return False
        self._next_due += self.period
        if self._next_due <= t:  # a gap in the source (or a slow reader): restart the grid here
            self._next_due = t + self.period
        return True

    def reset(self) -> None:
        self._next_due = None


def media_time(index: int, source_fps: float | None, pos_msec: float | None) -> float:
    """A frame's media time (s): from its index when the rate is known, else from the container's clock."""
    if source_fps and source_fps > 0:
        return index / source_fps
    if pos_msec is not None and pos_msec >= 0:
        return pos_msec / 1000.0
    raise ValueError("neither the frame rate nor the position of the frame is known")


@dataclasses.dataclass
class Pacer:
    """Wall-clock schedule for media time: ``delay(t, now)`` is how long to wait before emitting ``t``."""

    max_lag_s: float = 1.0
    _anchor_wall: float | None = None
    _anchor_media: float = 0.0

    def delay(self, t: float, now: float) -> float:
        if self._anchor_wall is None:
            self._anchor(t, now)
            return 0.0
        due = self._anchor_wall + (t - self._anchor_media)
        wait = due - now
        if wait < -self.max_lag_s or wait > self.max_lag_s + 60.0:  # far behind, or media time jumped
            self._anchor(t, now)
            return 0.0
        return max(wait, 0.0)

    def _anchor(self, t: float, now: float) -> None:
        self._anchor_wall = now
        self._anchor_media = t

    def reset(self) -> None:
        self._anchor_wall = None


@dataclasses.dataclass
class LoopClock:
    """Media time that keeps increasing across the loops of a looping file."""

    offset: float = 0.0
    last: float = 0.0
    frame_period: float = 0.0

    def at(self, t: float) -> float:
        self.last = t
        return self.offset + t

    def wrap(self) -> None:
        """The source restarted from its beginning."""
        self.offset += self.last + self.frame_period
        self.last = 0.0
