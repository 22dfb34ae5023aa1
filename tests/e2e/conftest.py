"""The e2e session fixture: one real pipeline for the whole session (see e2e_support.py)."""

from __future__ import annotations

import asyncio
import random
import shutil
import string
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from e2e_support import BOOTSTRAP, E2E, E2E_FPS, PORT_OFFSET, VIDEO, _specs, _stack_healthy
from services.cli.launch import Pipeline, PipelineLayout, Topics, state_dir, write_registry
from services.common.cameras import Camera
from services.common.topics import delete_topics, ensure_topics


def _run(coro: object) -> object:
    """Run a coroutine on a private loop (asyncio.run would unset the thread's current loop,
    which other tests' fixtures may still ask for)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)  # type: ignore[arg-type]
    finally:
        loop.close()


@pytest.fixture(scope="session")
def e2e() -> Iterator[E2E]:
    down = _stack_healthy()
    if down:
        pytest.fail("the local stack is not healthy (" + "; ".join(down) + ") — fix: .venv/bin/lfr stack up")
    tag = "".join(random.choices(string.ascii_lowercase, k=8))
    specs = _specs(tag)
    _run(ensure_topics(BOOTSTRAP, tuple(specs)))
    names = {s.name.split(".")[3]: s.name for s in specs}
    work = state_dir() / "e2e" / tag
    cams: dict[str, Camera] = {}

    def cam(key: str, deployment: str, source: Path, fps: float = E2E_FPS) -> None:
        cams[key] = Camera(id=f"e2e-{tag}-{key}", zone=f"e2e-{tag}-zone", deployment_id=f"e2e-{tag}-{deployment}",
                           source=str(source), fps=fps, loop=False)

    cam("hamilton-a", "hamilton", VIDEO / "hamilton_white_house_short_clip.mp4")
    cam("hamilton-b", "hamilton", VIDEO / "hamilton_white_house_short_clip.mp4")
    cam("intel", "intel", VIDEO / "intel_head_pose_female_and_male.gif", fps=10.0)
    cam("crowd", "crowd", VIDEO / "crowd_royal_opera_house_1080p.mp4")
    cam("dlq", "dlq", VIDEO / "hamilton_white_house_short_clip.mp4")
    cam("device", "device", VIDEO / "hamilton_white_house_short_clip.mp4")  # test_demo_device.py
    cam("metrics", "metrics", VIDEO / "hamilton_white_house_short_clip.mp4")  # test_metrics_exported.py
    cam("prometheus", "prometheus", VIDEO / "hamilton_white_house_short_clip.mp4")  # test_prometheus_live.py
    # the operator console's tests: a zone of its own (gated off until the test puts an officer on duty)
    cams["console"] = cams["dlq"].model_copy(update={"id": f"e2e-{tag}-console", "zone": f"e2e-{tag}-console-zone",
                                                     "deployment_id": f"e2e-{tag}-console"})
    layout = PipelineLayout(port_offset=PORT_OFFSET, topics=Topics(**names), group_prefix=f"lfr-e2e-{tag}",
                            cameras_file=work / "cameras.yaml", log_dir=state_dir() / "logs", log_prefix="e2e-",
                            pid_dir=state_dir() / "pids" / "services")
    write_registry(layout.cameras_file, list(cams.values()))
    pipeline = Pipeline(layout)
    started = time.monotonic()
    try:
        _run(pipeline.start())
        print(f"\ne2e pipeline {tag} SERVING in {time.monotonic() - started:.1f} s (logs {layout.log_dir}/e2e-*.log)")
        yield E2E(tag, layout, pipeline, cams)
    finally:
        codes = pipeline.stop()
        _run(delete_topics(BOOTSTRAP, list(names.values())))
        shutil.rmtree(work, ignore_errors=True)
    assert all(c == 0 for c in codes.values()), f"services did not stop cleanly: {codes}"
