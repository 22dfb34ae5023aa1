"""Every embedder of the model manifest runs the whole platform at its own calibrated threshold, and an open
watchlist moves from one embedder to another only through ReembedWatchlist.

For each embedder other than the default (the session pipeline's), when Triton serves it (an opt-in one is
built only with its licence acknowledgement: CI gives it, see .ci/run), a second real pipeline runs with
``face.embedder`` set to it (LFR_FACE__EMBEDDER for the recognizer, matcher and watchlist services):

1. A watchlist built on the session pipeline (default embedder) for this pipeline's deployment is named with
   its embedder; this pipeline's watchlist service refuses to add faces to it (FAILED_PRECONDITION saying how
   to move it), and the Hamilton clip raises NO alert: its faces are in the other embedder's collection, never
   compared with this embedder's probes.
2. ReembedWatchlist moves it (from the retained aligned enrolment image), audited; the clip again: Lin-Manuel
   Miranda alerts exactly once for the pass, nobody else, at a score at or above this embedder's calibrated
   threshold (the matcher's default, from services/models/calibration/<embedder>.json).
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator

import grpc
import pytest

from lfr.v1 import audit_pb2, watchlist_pb2
from services.cli.demo import Enrolment
from services.face.embedders import DEFAULT_EMBEDDER, calibrated_threshold, embedders
from services.models.manifest import load_manifest

from e2e_support import E2E, FACES_DIR, VIDEO, CamSpec, pipeline_session, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

LMM = Enrolment(name="Lin-Manuel Miranda", subject_id="lin-manuel-miranda",
                image=FACES_DIR / "lin_manuel_miranda_1.png")
HAMILTON = VIDEO / "hamilton_white_house_short_clip.mp4"
PORT_OFFSET = 2000  # the session pipeline runs at 3000, the chaos suite at 5000


def _served(model: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:8000/v2/models/{model}/ready", timeout=3) as r:
            return r.status == 200
    except OSError:
        return False


def _require_served(name: str) -> None:
    token = load_manifest().models[name].requires_acknowledgement
    if _served(name):
        return
    acknowledged = token is not None and token in os.environ.get("LFR_MODELS_ACCEPT_LICENCES", "").split(",")
    if token is None or acknowledged:
        pytest.fail(f"Triton does not serve embedder {name}, though it should be built: run "
                    f"'lfr models build {name}' and 'lfr stack restart triton'")
    pytest.skip(f"{name} is opt-in (its terms forbid operational use): built only with "
                f"LFR_MODELS_ACCEPT_LICENCES={token} (CI sets it)")


@pytest.fixture(scope="module", params=sorted(set(embedders()) - {DEFAULT_EMBEDDER}))
def emb(request: pytest.FixtureRequest) -> Iterator[E2E]:
    """A second whole pipeline whose services run on embedder ``request.param``."""
    _require_served(request.param)
    with pipeline_session("e2e-emb", {"hamilton": CamSpec("hamilton", HAMILTON)}, PORT_OFFSET,
                          embedder=request.param,
                          accept_licence=load_manifest().models[request.param].requires_acknowledgement) as session:
        yield session


async def test_another_embedder_alerts_at_its_own_threshold_after_the_watchlist_moves(e2e: E2E, emb: E2E) -> None:
    name = emb.layout.embedder
    assert name is not None
    threshold = calibrated_threshold(name)
    deployment = emb.cameras["hamilton"].deployment_id
    default_client, client = e2e.watchlists(), emb.watchlists()
    wl = await e2e.new_watchlist(default_client, deployment, f"built with {DEFAULT_EMBEDDER}")
    try:
        await default_client.enrol(wl, LMM)
        got = await client.stub.GetWatchlist(watchlist_pb2.GetWatchlistRequest(watchlist_id=wl), timeout=30)
        assert got.watchlist.embedder == DEFAULT_EMBEDDER and got.watchlist.image_count == 1

        # 1. stranded: no faces added, no alert (never compared across embedders)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await client.enrol(wl, LMM)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"built with embedder {DEFAULT_EMBEDDER}" in (refused.value.details() or "")
        assert "lfr watchlist reembed" in (refused.value.details() or "")
        before = await emb.run("hamilton")
        print(f"\n{name}, watchlist still on {DEFAULT_EMBEDDER}: {before.summary()}")
        assert before.alerts_by_subject() == {} and before.matches == [], before.summary()

        # 2. moved, audited; the clip again
        with pytest.raises(grpc.aio.AioRpcError) as no_reason:
            await client.stub.ReembedWatchlist(watchlist_pb2.ReembedWatchlistRequest(watchlist_id=wl), timeout=60)
        assert no_reason.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        moved = await client.stub.ReembedWatchlist(watchlist_pb2.ReembedWatchlistRequest(
            watchlist_id=wl, reason="e2e: the platform moved to " + name), timeout=120)
        assert (moved.from_embedder, moved.to_embedder, moved.subjects, moved.vectors) == (
            DEFAULT_EMBEDDER, name, 1, 1)
        assert moved.watchlist.embedder == name
        again = await client.stub.ReembedWatchlist(watchlist_pb2.ReembedWatchlistRequest(
            watchlist_id=wl, reason="twice"), timeout=60)
        assert again.vectors == 0 and again.from_embedder == name  # idempotent
        records = [audit_pb2.AuditRecord.FromString(v) for v in await read_topic(emb.layout.topics.audit)]
        reembeds = [r for r in records if r.action == "watchlist.reembed" and wl in r.subject_ids]
        assert len(reembeds) == 1 and dict(reembeds[0].details)["to_embedder"] == name

        after = await emb.run("hamilton")
        print(f"{name}, watchlist moved: {after.summary()} (threshold {threshold})")
        assert after.alerts_by_subject() == {LMM.subject_id: 1}, after.summary()
        assert {m.subject_id for m in after.matches} == {LMM.subject_id}
        assert after.alerts[0].best_score >= threshold
    finally:
        await client.close(wl, "e2e test done")
        await client.close_channel()
        await default_client.close_channel()
