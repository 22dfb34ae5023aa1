"""The e2e fixtures: one real pipeline for the whole session (see e2e_support.py); the officers service of
that pipeline for a test module that asks for it (``officers``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e_support import E2E, PORT_OFFSET, VIDEO, CamSpec, officers_running, pipeline_session
from services.cli.launch import ServiceProcess

HAMILTON = VIDEO / "hamilton_white_house_short_clip.mp4"


@pytest.fixture(scope="session")
def e2e() -> Iterator[E2E]:
    cams = {
        "hamilton-a": CamSpec("hamilton", HAMILTON),
        "hamilton-b": CamSpec("hamilton", HAMILTON),
        "intel": CamSpec("intel", VIDEO / "intel_head_pose_female_and_male.gif", fps=10.0),
        "crowd": CamSpec("crowd", VIDEO / "crowd_royal_opera_house_1080p.mp4"),
        "dlq": CamSpec("dlq", HAMILTON),
        "device": CamSpec("device", HAMILTON),  # test_demo_device.py
        "metrics": CamSpec("metrics", HAMILTON),  # test_metrics_exported.py
        "prometheus": CamSpec("prometheus", HAMILTON),  # test_prometheus_live.py
        # the operator console's tests: a zone of its own (gated off until the test puts an officer on duty)
        "console": CamSpec("console", HAMILTON, zone="console-zone"),
    }
    with pipeline_session("e2e", cams, PORT_OFFSET) as session:
        yield session


@pytest.fixture(scope="module")
def officers(e2e: E2E) -> Iterator[ServiceProcess]:
    """The officers service of the session's layout for one test module (see officers_running)."""
    with officers_running(e2e) as svc:
        yield svc
