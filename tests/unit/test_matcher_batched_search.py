"""The matcher searches a Kafka batch's faces in as few Milvus calls as the
deployment/time filter allows: one ``search_active`` call per (deployment,
capture second) group, every face of the group in that one call, each face's
hits given back to that face."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lfr.v1 import common_pb2, faces_pb2

from services.common.faces_schema import EMBEDDING_DIM
from services.common.faces_search import Hit
from services.common.grpc_server import GrpcServer
from services.common.metrics import MetricsFactory
from services.common.service import ServiceContext
from services.matcher.config import MatcherSettings
from services.matcher.worker import Matcher, Pending

S = 1_000_000_000


class RecordingSearch:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, list[float]]] = []

    def __call__(self, client: Any, embeddings: Any, deployment_id: str, at_unix_s: int, limit: int,
                 timeout_s: float | None = None, min_score: float | None = None,
                 collection: str = "") -> list[list[Hit]]:
        self.calls.append((deployment_id, at_unix_s, [e[0] for e in embeddings]))
        # one hit per probe naming the probe (its first component) and where it was searched
        return [[Hit(f"{deployment_id}@{at_unix_s}#{e[0]:g}", "wl", "wanted", 0.9, "ref", 1)] for e in embeddings]


def _matcher(tmp_path: Path, search: RecordingSearch) -> Matcher:
    cams = tmp_path / "cameras.yaml"
    cams.write_text("cameras:\n"
                    "  - {id: cam-a1, zone: z, deployment_id: op-a, source: /dev/null}\n"
                    "  - {id: cam-a2, zone: z, deployment_id: op-a, source: /dev/null}\n"
                    "  - {id: cam-b, zone: z, deployment_id: op-b, source: /dev/null}\n")
    settings = MatcherSettings(matcher={"cameras_file": cams})
    ctx = ServiceContext(name="matcher", settings=settings, metrics=MetricsFactory("matcher"),
                         grpc=GrpcServer(settings.grpc), stop=asyncio.Event())
    m = Matcher(ctx, settings, search=search)
    m.milvus = object()
    return m


def _pending(m: Matcher, camera: str, capture_ns: int, first: float) -> Pending:
    obs = faces_pb2.FaceObservation(observation_id=f"o{first:g}",
                                    frame=common_pb2.FrameRef(camera_id=camera, capture_unix_ns=capture_ns))
    cam = m.cameras.get(camera)
    assert cam is not None
    return Pending(record=None, obs=obs, camera=cam,  # type: ignore[arg-type]
                   secret=faces_pb2.FaceSecret(embedding=[first] + [0.0] * (EMBEDDING_DIM - 1)))


async def test_one_search_call_per_deployment_and_capture_second(tmp_path: Path) -> None:
    search = RecordingSearch()
    m = _matcher(tmp_path, search)
    t = 1_750_000_000
    pending = [
        _pending(m, "cam-a1", t * S + 100, 1),          # op-a, second t
        _pending(m, "cam-b", t * S + 200, 2),           # op-b, second t: another deployment, another call
        _pending(m, "cam-a2", t * S + 900_000_000, 3),  # op-a, second t (another camera of the same operation)
        _pending(m, "cam-a1", (t + 1) * S + 5, 4),      # op-a, second t+1: another time, another call
        _pending(m, "cam-a1", t * S + 999_999_999, 5),  # op-a, second t
    ]
    await m._search(pending)

    assert sorted(search.calls) == [("op-a", t, [1.0, 3.0, 5.0]), ("op-a", t + 1, [4.0]), ("op-b", t, [2.0])]
    # each face got its own probe's hits, searched with its own deployment and second
    assert [p.hits[0].subject_id for p in pending] == [
        f"op-a@{t}#1", f"op-b@{t}#2", f"op-a@{t}#3", f"op-a@{t + 1}#4", f"op-a@{t}#5"]


async def test_a_batch_of_one_deployment_and_second_is_one_call(tmp_path: Path) -> None:
    search = RecordingSearch()
    m = _matcher(tmp_path, search)
    pending = [_pending(m, "cam-a1", 1_750_000_000 * S + i, float(i + 1)) for i in range(32)]
    await m._search(pending)
    assert len(search.calls) == 1 and len(search.calls[0][2]) == 32
