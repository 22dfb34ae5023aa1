"""The chaos suite's fixture: per test module, one real pipeline (+5000 ports, own topics, groups,
cameras) with the officers service, Lin-Manuel Miranda enrolled for the suite's deployment.
Devices and duty officers live on each test's own event loop (see chaos_support.py)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import pytest

from chaos_support import CHAOS_FPS, HAMILTON, LMM_ID, LMM_IMAGE, PORT_OFFSET, RESULTS_FILE, Rig, table
from topics_support import KafkaTopics, random_tag, run_private
from services.cli.demo import Enrolment, WatchlistClient
from services.cli.launch import PipelineLayout, Topics, state_dir, write_registry
from services.common.cameras import Camera

# one camera per scenario: its own pass state, its own alerts at the device
SCENARIOS = ("kill-ingest", "kill-recognizer", "kill-matcher", "kill-alerts", "kill-officers", "kill-watchlist",
             "redelivery", "dep-kafka", "dep-redis", "dep-triton", "dep-milvus", "fuzz")


async def _enrol(rig: Rig) -> str:
    client = WatchlistClient(rig.layout.grpc_port("watchlist"))
    try:
        deployment = next(iter(rig.cameras.values())).deployment_id
        wl = await client.create(deployment, name="chaos hamilton", authorisation_ref=f"CHAOS-{rig.tag}",
                                 officer="chaos officer", purpose="demo", criteria="chaos suite")
        await client.enrol(wl, Enrolment(name="Lin-Manuel Miranda", subject_id=LMM_ID, image=LMM_IMAGE))
        return wl
    finally:
        await client.close_channel()


async def _close(rig: Rig) -> None:
    client = WatchlistClient(rig.layout.grpc_port("watchlist"))
    try:
        await client.close(rig.watchlist_id, "chaos suite done")
    finally:
        await client.close_channel()


@pytest.fixture(scope="module")  # each module its own pipeline: nothing idles through the rest of make test
def rig() -> Iterator[Rig]:
    from services.stack import manager

    down = [f"{h.name}: {h.detail}" for h in manager.status(manager.load_components()) if not h.healthy]
    if down:
        pytest.fail("the local stack is not healthy (" + "; ".join(down) + ") — fix: .venv/bin/lfr stack up")
    tag = random_tag()
    topics = KafkaTopics()
    names = run_private(topics.copies("chaos", tag, max_partitions=2))
    work = state_dir() / "chaos" / tag
    cameras = {key: Camera(id=f"chaos-{tag}-{key}", zone=f"chaos-{tag}-zone", deployment_id=f"chaos-{tag}-hamilton",
                           source=str(HAMILTON), fps=CHAOS_FPS, loop=False) for key in SCENARIOS}
    layout = PipelineLayout(port_offset=PORT_OFFSET, topics=Topics(**names), group_prefix=f"lfr-chaos-{tag}",
                            cameras_file=work / "cameras.yaml", log_dir=state_dir() / "logs", log_prefix="chaos-",
                            pid_dir=state_dir() / "pids" / "services")
    write_registry(layout.cameras_file, list(cameras.values()))
    rig = Rig(tag, layout, cameras)
    started = time.monotonic()
    try:
        rig.officers.start()
        run_private(rig.pipeline.start())
        run_private(rig.officers.wait_serving(120))
        rig.watchlist_id = str(run_private(_enrol(rig)))
        print(f"\nchaos pipeline {tag} SERVING in {time.monotonic() - started:.1f} s "
              f"(logs {layout.log_dir}/chaos-*.log)")
        yield rig
    finally:
        if rig.results:
            print("\n" + table(rig.results) + f"\n(written to {RESULTS_FILE})")
        if rig.watchlist_id:
            try:
                run_private(_close(rig))
            except Exception as e:  # keep tearing down
                print(f"chaos: could not close the watchlist: {e}")
        rig.pipeline.stop()
        rig.officers.stop()
        run_private(topics.delete())
        shutil.rmtree(work, ignore_errors=True)
