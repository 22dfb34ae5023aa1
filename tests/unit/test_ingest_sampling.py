"""Ingest sampling and pacing arithmetic (services/ingest/sampling.py)."""

from __future__ import annotations

import pytest

from services.ingest.sampling import LoopClock, Pacer, Sampler, media_time


def kept(source_fps: float, target_fps: float, frames: int) -> list[int]:
    s = Sampler(target_fps, source_fps)
    return [i for i in range(frames) if s.keep(media_time(i, source_fps, None))]


def test_30fps_file_at_10fps_keeps_every_third_frame() -> None:
    assert kept(30.0, 10.0, 30) == [0, 3, 6, 9, 12, 15, 18, 21, 24, 27]


def test_ntsc_rate_keeps_target_rate_over_a_minute() -> None:
    idx = kept(29.97, 10.0, int(29.97 * 60))
    assert abs(len(idx) - 600) <= 1
    steps = {b - a for a, b in zip(idx, idx[1:])}
    assert steps <= {2, 3, 4}
    assert sum(1 for a, b in zip(idx, idx[1:]) if b - a == 3) > 0.9 * (len(idx) - 1)


def test_target_at_or_above_source_rate_keeps_every_frame() -> None:
    assert kept(10.0, 10.0, 20) == list(range(20))
    assert kept(12.5, 30.0, 20) == list(range(20))


def test_25fps_at_5fps_and_odd_ratios() -> None:
    assert kept(25.0, 5.0, 25) == [0, 5, 10, 15, 20]
    assert len(kept(30.0, 7.0, 300)) == 70


def test_live_timestamps_gap_restarts_the_grid() -> None:
    s = Sampler(5.0)  # period 0.2 s, wall-clock timestamps
    assert s.keep(100.0)
    assert not s.keep(100.1)
    assert s.keep(100.2)
    assert s.keep(105.0)  # a 5 s stall: keep the next frame, don't burst
    assert not s.keep(105.1)
    assert s.keep(105.2)


def test_media_time_falls_back_to_the_container_clock() -> None:
    assert media_time(30, 30.0, 999.0) == pytest.approx(1.0)
    assert media_time(30, None, 1500.0) == pytest.approx(1.5)
    with pytest.raises(ValueError):
        media_time(3, None, None)


def test_pacer_plays_media_time_in_real_time() -> None:
    p = Pacer(max_lag_s=1.0)
    assert p.delay(0.0, now=50.0) == 0.0  # anchors
    assert p.delay(0.1, now=50.0) == pytest.approx(0.1)
    assert p.delay(0.3, now=50.25) == pytest.approx(0.05)
    assert p.delay(0.4, now=50.5) == 0.0  # a bit late: emit at once, no catching up beyond that


def test_pacer_reanchors_when_far_behind_instead_of_bursting() -> None:
    p = Pacer(max_lag_s=0.5)
    p.delay(0.0, now=0.0)
    assert p.delay(1.0, now=3.0) == 0.0  # 2 s late: re-anchor here
    assert p.delay(1.1, now=3.0) == pytest.approx(0.1)  # the schedule continues from the new anchor


def test_loop_clock_keeps_time_increasing_across_loops() -> None:
    c = LoopClock(frame_period=0.1)
    assert [c.at(t) for t in (0.0, 0.1, 0.2)] == pytest.approx([0.0, 0.1, 0.2])
    c.wrap()
    assert [c.at(t) for t in (0.0, 0.1)] == pytest.approx([0.3, 0.4])
    s = Sampler(5.0, 10.0)
    c = LoopClock(frame_period=0.1)
    ts = []
    for _ in range(3):  # a 0.5 s file looped 3 times at 5 fps: every other frame, evenly
        for i in range(5):
            ts.append(c.at(i * 0.1))
        c.wrap()
    assert sum(s.keep(t) for t in ts) == 8  # 1.5 s at 5 fps, first frame included


def test_sampler_rejects_a_zero_rate() -> None:
    with pytest.raises(ValueError):
        Sampler(0.0)
