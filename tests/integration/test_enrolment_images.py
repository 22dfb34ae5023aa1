"""Enrolment images on the real watchlist service: a manager's credential sends the
decompression bombs an insider would (a 9000x9000 TIFF, PNGs within every per-image limit that together
decode to 360 MB, JPEG and WebP headers declaring 30000x30000) and a PNG cut short; each is refused with
INVALID_ARGUMENT naming what to fix and counted, the service's peak resident memory (VmHWM, /proc) does not
move, and it goes on enrolling real faces on Triton."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import grpc
import pytest

from lfr.v1 import common_pb2, watchlist_pb2, watchlist_pb2_grpc

from watchlist_support import watchlist_process

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FACES = REPO / ".." / "shared" / "data" / "faces"
GRPC_PORT, METRICS_PORT = 51255, 10255  # test_watchlist.py: 51055, test_watchlist_erasure.py: 51155
MiB = 1024 * 1024
# what refusing the bombs may add to the service's peak RSS: decoding any one of them would add >= 243 MB
PEAK_GROWTH_LIMIT = 48 * MiB


def _bombs() -> ModuleType:
    """tests/unit/image_bombs.py, the unit tests' real files and bombs, loaded by path (the suites' folders
    share no import path)."""
    spec = importlib.util.spec_from_file_location("image_bombs", REPO / "tests" / "unit" / "image_bombs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[watchlist_pb2_grpc.WatchlistServiceStub, subprocess.Popen[bytes]]]:
    log = tmp_path_factory.mktemp("enrolment-images") / "watchlist.log"
    with watchlist_process(GRPC_PORT, METRICS_PORT, log, {}, no_tracebacks=True) as (stub, proc):
        yield stub, proc


def _peak_rss(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.M)
    assert match, status
    return int(match.group(1)) * 1024


def _enrol(stub: watchlist_pb2_grpc.WatchlistServiceStub, wl: str, *images: bytes
           ) -> watchlist_pb2.EnrolSubjectResponse:
    return stub.EnrolSubject(watchlist_pb2.EnrolSubjectRequest(
        watchlist_id=wl, subject_id="subject-1", category=common_pb2.SUBJECT_CATEGORY_WANTED,
        images=[watchlist_pb2.EnrolImage(image=im, source_ref=f"custody/{i}") for i, im in enumerate(images)]),
        timeout=60)


def _refusal(stub: watchlist_pb2_grpc.WatchlistServiceStub, wl: str, *images: bytes) -> str:
    with pytest.raises(grpc.RpcError) as e:
        _enrol(stub, wl, *images)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    return str(e.value.details())


def _refused_counts() -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=5).read().decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r'^lfr_enrolment_images_refused_total\{reason="(\w+)"\} (\S+)$', text, re.M)}


def test_bombs_are_refused_before_decoding_and_memory_stays_bounded(
        service: tuple[watchlist_pb2_grpc.WatchlistServiceStub, subprocess.Popen[bytes]]) -> None:
    stub, proc = service
    bombs = _bombs()
    now = time.time_ns()
    wl = stub.CreateWatchlist(watchlist_pb2.CreateWatchlistRequest(
        name="bombs", deployment_id=f"op-test-{uuid.uuid4().hex[:8]}", authorisation_ref="AUTH-T-1",
        authorising_officer="Supt Test", purpose="integration test", criteria="test subjects",
        valid_from_unix_ns=now - 10**9, valid_until_unix_ns=now + 3600 * 10**9), timeout=10).watchlist.watchlist_id
    # warm: one real enrolment (decoder, Triton, Milvus, audit) before the peak is read
    assert _enrol(stub, wl, (FACES / "obama_1.jpg").read_bytes()).results[0].accepted
    before = _peak_rss(proc.pid)

    tiff = bombs.tiff_bomb(9000, 9000)  # 243 MB decoded
    assert len(tiff) < 2 * MiB
    assert _refusal(stub, wl, tiff) == "image 1 is TIFF: send JPEG, PNG or WebP"
    png = bombs.png_bomb(8000, 5000)  # each within max_image_side/max_image_pixels; three: 360 MB decoded
    assert len(png) < MiB
    assert _refusal(stub, wl, png, png, png) == (
        "images: the 3 images decode to 360000000 bytes in all (width x height x 3 each); at most 268435456 per "
        "request: send fewer or smaller images")
    assert _refusal(stub, wl, bombs.png_bomb(10_000, 10_000)).startswith("image 1 is 10000x10000 px; at most")
    assert _refusal(stub, wl, bombs.jpeg_bomb(30_000, 30_000)).startswith("image 1 is 30000x30000 px; at most")
    assert _refusal(stub, wl, bombs.webp_bomb("VP8X", 30_000, 30_000)).startswith("image 1 is 30000x30000 px")
    assert _refusal(stub, wl, bombs.png_bomb(600, 400)[:-40]) == (
        "enrolment refused, nothing stored: image 1 is truncated or corrupt (its PNG data does not decode)")

    growth = _peak_rss(proc.pid) - before
    assert growth < PEAK_GROWTH_LIMIT, f"peak RSS grew by {growth / MiB:.0f} MiB while refusing the bombs"
    counts = _refused_counts()
    assert (counts.get("format"), counts.get("decoded_bytes"), counts.get("dimensions"), counts.get("corrupt")) == \
        (1.0, 1.0, 3.0, 1.0), counts
    # and it keeps serving: the next real photo is enrolled
    resp = _enrol(stub, wl, (FACES / "obama_2.jpg").read_bytes())
    assert resp.results[0].accepted and resp.subject.image_count == 2
    stub.CloseWatchlist(watchlist_pb2.CloseWatchlistRequest(watchlist_id=wl, reason="test over"), timeout=30)
