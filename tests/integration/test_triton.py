"""Inference on the real Triton of the local stack (`lfr stack up --only triton`)
over gRPC: tritonclient directly and through services.common.triton_client."""

from __future__ import annotations

import asyncio
import time
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc.aio as grpcclient

from services.common.triton_client import TritonClient, TritonClientSettings, TritonInferenceError
from services.stack.base import StackPaths
from services.stack.manager import REPO_ROOT
from services.triton_repo.assemble import onnx_path
from services.triton_repo.spec import ModelSpec, load_spec

pytestmark = pytest.mark.integration

URL = "127.0.0.1:8001"


@pytest.fixture(scope="module", autouse=True)
def triton_up() -> None:
    try:
        with urllib.request.urlopen("http://127.0.0.1:8000/v2/health/ready", timeout=3) as r:
            assert r.status == 200
    except OSError as e:
        pytest.fail(f"Triton is not ready on 127.0.0.1:8000 ({e}): run '.venv/bin/lfr stack up --only triton'")


async def stats(client: grpcclient.InferenceServerClient, model: str) -> tuple[int, int]:
    """(rows inferred, requests succeeded) for ``model`` since the server started."""
    s = (await client.get_inference_statistics(model, as_json=True))["model_stats"][0]
    return int(s.get("inference_count", 0)), int(s["inference_stats"]["success"].get("count", 0))


async def test_identity_round_trip_with_tritonclient() -> None:
    client = grpcclient.InferenceServerClient(URL)
    try:
        assert await client.is_model_ready("identity")
        x = np.random.default_rng(0).standard_normal((3, 17)).astype(np.float32)
        inp = grpcclient.InferInput("INPUT0", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        result = await client.infer("identity", [inp], outputs=[grpcclient.InferRequestedOutput("OUTPUT0")])
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), x)
    finally:
        await client.close()


async def test_client_round_trip_and_latency() -> None:
    async with TritonClient(TritonClientSettings(url=URL)) as client:
        assert await client.server_ready()
        await client.wait_ready(["identity"], timeout_s=10)
        x = np.linspace(-1, 1, 64, dtype=np.float32)[None]
        out = await client.infer("identity", {"INPUT0": x})
        assert set(out) == {"OUTPUT0"}
        np.testing.assert_array_equal(out["OUTPUT0"], x)
        times = []
        for _ in range(100):
            t = time.perf_counter()
            await client.infer_unbatched("identity", {"INPUT0": x})
            times.append(time.perf_counter() - t)
        p50_ms = float(np.median(times)) * 1e3
        # the server alone answers in ~2-3 ms on this machine; 50 ms means something is badly wrong
        assert p50_ms < 50, p50_ms


async def test_micro_batcher_merges_concurrent_calls() -> None:
    n = 48
    raw = grpcclient.InferenceServerClient(URL)
    settings = TritonClientSettings(url=URL, max_batch=16, max_delay_ms=20)
    try:
        rows0, requests0 = await stats(raw, "identity")
        async with TritonClient(settings) as client:
            await client.infer("identity", {"INPUT0": np.zeros((1, 8), np.float32)})  # warm: metadata cached
            rows0, requests0 = await stats(raw, "identity")
            inputs = [np.full((1, 8), i, np.float32) for i in range(n)]
            outs = await asyncio.gather(*(client.infer("identity", {"INPUT0": x}) for x in inputs))
            counters = client.counters["identity"]
        for x, out in zip(inputs, outs):
            np.testing.assert_array_equal(out["OUTPUT0"], x)  # each caller gets its own row back
        rows1, requests1 = await stats(raw, "identity")
        assert rows1 - rows0 == n
        assert requests1 - requests0 <= n // settings.max_batch + 1, (requests1 - requests0)
        assert counters.calls == n + 1 and counters.requests == requests1 - requests0 + 1
    finally:
        await raw.close()


async def test_missing_model_and_bad_input_are_typed_errors() -> None:
    async with TritonClient(TritonClientSettings(url=URL, retries=0)) as client:
        with pytest.raises(TritonInferenceError) as e:
            await client.infer("no_such_model", {"INPUT0": np.ones((1, 4), np.float32)})
        assert e.value.model == "no_such_model" and "unknown model" in e.value.reason
        assert not await client.model_ready("no_such_model")
        with pytest.raises(TritonInferenceError) as e:
            await client.infer("identity", {"INPUT0": np.ones((1, 4), np.int32)})
        assert e.value.model == "identity"
        with pytest.raises(TritonInferenceError):
            await client.infer("identity", {"WRONG": np.ones((1, 4), np.float32)})
        # the server and the client are still fine afterwards
        out = await client.infer("identity", {"INPUT0": np.ones((2, 4), np.float32)})
        assert out["OUTPUT0"].shape == (2, 4)


def _sample(m: ModelSpec, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    feeds = {}
    for t in m.inputs:
        dims = [batch] + [240 if d == -1 and i == 0 else 320 if d == -1 else d for i, d in enumerate(t.dims)]
        if np.dtype(t.dtype).kind == "u":
            feeds[t.name] = rng.integers(0, 256, dims, dtype=t.dtype)
        else:
            feeds[t.name] = rng.uniform(-1, 1, dims).astype(t.dtype)
    return feeds


FACE_MODELS = [m for m in load_spec().models if m.kind == "onnx"]


@pytest.mark.parametrize("model", FACE_MODELS, ids=lambda m: m.name)
async def test_face_model_matches_in_process_onnxruntime(model: ModelSpec) -> None:
    path = onnx_path(model, StackPaths.default(REPO_ROOT))
    if not path.is_file():
        pytest.skip(f"{path} is not built (lfr models build)")
    import onnxruntime as ort

    async with TritonClient(TritonClientSettings(url=URL, max_batch=8)) as client:
        if not await client.model_ready(model.name):
            pytest.fail(f"{model.name} is built but not served: restart Triton (lfr stack down/up --only triton)")
        feeds = _sample(model, 3, np.random.default_rng(1))
        got = await client.infer(model.name, feeds)
        singles = await asyncio.gather(*(client.infer(model.name, {k: v[i:i + 1] for k, v in feeds.items()})
                                         for i in range(3)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = dict(zip([o.name for o in model.outputs], session.run([o.name for o in model.outputs], feeds)))
    for name, ref in want.items():
        assert got[name].shape == ref.shape and got[name].dtype == ref.dtype
        np.testing.assert_allclose(got[name], ref, atol=1e-4, rtol=1e-3)
        np.testing.assert_allclose(np.concatenate([s[name] for s in singles]), ref, atol=1e-4, rtol=1e-3)


PHOTO = REPO_ROOT.parent / "shared" / "data" / "faces" / "group_friends_cast_6_faces.jpg"


async def test_faceboxes_on_a_real_photo_matches_in_process() -> None:
    model = load_spec().get("faceboxes")
    path = onnx_path(model, StackPaths.default(REPO_ROOT))
    if not path.is_file() or not PHOTO.is_file():
        pytest.skip(f"needs {path} (lfr models build) and {PHOTO}")
    import cv2
    import onnxruntime as ort

    frame = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)[None]
    async with TritonClient(TritonClientSettings(url=URL)) as client:
        got = await client.infer("faceboxes", {"input": frame})
    scores, boxes = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        ["scores", "boxes"], {"input": frame})
    np.testing.assert_allclose(got["scores"], scores, atol=1e-5)
    np.testing.assert_allclose(got["boxes"], boxes, atol=1e-5)
    assert (got["scores"] > 0.5).sum() == (scores > 0.5).sum() >= 1
