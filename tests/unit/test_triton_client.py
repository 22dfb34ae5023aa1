"""The Triton client without a server: the micro-batcher (with a fake send) and
the error mapping when nothing listens."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from services.common.runner import ModelRunner
from services.common.triton_client import (
    MicroBatcher,
    TritonClient,
    TritonClientSettings,
    TritonInferenceError,
    TritonUnavailable,
)


class FakeModel:
    """Doubles its input; records each batch it was sent."""

    def __init__(self, fail_on: float | None = None) -> None:
        self.batches: list[int] = []
        self.fail_on = fail_on

    async def __call__(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = inputs["x"]
        self.batches.append(x.shape[0])
        await asyncio.sleep(0)
        if self.fail_on is not None and (x == self.fail_on).any():
            raise TritonInferenceError(model, "poisoned batch")
        return {"y": x * 2, "n": np.full((x.shape[0],), x.shape[0])}


async def test_concurrent_calls_are_merged_and_each_gets_its_rows() -> None:
    fake = FakeModel()
    b = MicroBatcher(fake, max_batch=8, max_delay_s=0.05)
    outs = await asyncio.gather(*(b.submit("m", {"x": np.full((1, 3), i, np.float32)}) for i in range(20)))
    for i, out in enumerate(outs):
        np.testing.assert_array_equal(out["y"], np.full((1, 3), 2 * i, np.float32))
    assert sum(fake.batches) == 20
    assert fake.batches == [8, 8, 4]


async def test_different_shapes_are_not_merged() -> None:
    fake = FakeModel()
    b = MicroBatcher(fake, max_batch=8, max_delay_s=0.02)
    a, c = await asyncio.gather(b.submit("m", {"x": np.ones((1, 3), np.float32)}),
                                b.submit("m", {"x": np.ones((2, 4), np.float32)}))
    assert a["y"].shape == (1, 3) and c["y"].shape == (2, 4)
    assert sorted(fake.batches) == [1, 2]


async def test_big_input_is_split_into_max_batch_chunks() -> None:
    fake = FakeModel()
    b = MicroBatcher(fake, max_batch=4, max_delay_s=0.01)
    x = np.arange(10, dtype=np.float32)[:, None]
    out = await b.submit("m", {"x": x})
    np.testing.assert_array_equal(out["y"], x * 2)
    assert sorted(fake.batches) == [2, 4, 4]


async def test_a_failed_batch_fails_its_callers_only() -> None:
    fake = FakeModel(fail_on=3.0)
    b = MicroBatcher(fake, max_batch=4, max_delay_s=0.02)
    results = await asyncio.gather(*(b.submit("m", {"x": np.full((1, 1), i, np.float32)}) for i in range(8)),
                                   return_exceptions=True)
    failed = [i for i, r in enumerate(results) if isinstance(r, TritonInferenceError)]
    assert failed == [0, 1, 2, 3]
    assert all(isinstance(r, dict) for r in results[4:])


async def test_inconsistent_inputs_are_refused() -> None:
    b = MicroBatcher(FakeModel(), max_batch=4, max_delay_s=0.01)
    with pytest.raises(TritonInferenceError, match="batch size"):
        await b.submit("m", {"x": np.ones((2, 1)), "z": np.ones((3, 1))})
    with pytest.raises(TritonInferenceError, match="numeric numpy array"):
        await b.submit("m", {"x": np.array(["a"], dtype=object)})


async def test_unreachable_server_is_a_typed_error() -> None:
    s = TritonClientSettings(url="127.0.0.1:1", timeout_s=2, retries=1, retry_backoff_s=0.01)
    async with TritonClient(s) as client:
        assert isinstance(client, ModelRunner)
        assert not await client.server_ready()
        with pytest.raises(TritonUnavailable, match="127.0.0.1:1"):
            await client.infer("identity", {"INPUT0": np.ones((1, 4), np.float32)})
        assert client.counters["identity"].calls == 1


def test_settings_forbid_unknown_keys() -> None:
    with pytest.raises(ValueError):
        TritonClientSettings.model_validate({"url": "x:1", "max_batchs": 3})
    with pytest.raises(ValueError):
        TritonClientSettings(max_batch=0)


async def test_a_lone_call_does_not_wait_for_company() -> None:
    fake = FakeModel()
    b = MicroBatcher(fake, max_batch=8, max_delay_s=5.0)
    t = asyncio.get_running_loop().time()
    await b.submit("m", {"x": np.ones((1, 2), np.float32)})
    assert asyncio.get_running_loop().time() - t < 1.0


async def test_calls_arriving_while_a_batch_is_in_flight_are_merged() -> None:
    gate = asyncio.Event()
    batches: list[int] = []

    async def slow(model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        batches.append(inputs["x"].shape[0])
        if len(batches) == 1:
            await gate.wait()
        return {"y": inputs["x"] + 1}

    b = MicroBatcher(slow, max_batch=4, max_delay_s=5.0)
    first = asyncio.ensure_future(b.submit("m", {"x": np.zeros((1, 1))}))
    await asyncio.sleep(0.01)  # the first request is now in flight
    later = [asyncio.ensure_future(b.submit("m", {"x": np.full((1, 1), i)})) for i in range(1, 5)]
    await asyncio.sleep(0.01)
    gate.set()
    outs = await asyncio.gather(first, *later)
    assert batches == [1, 4]  # the four later calls filled one batch without waiting the 5 s
    assert [float(o["y"][0, 0]) for o in outs] == [1, 2, 3, 4, 5]


def test_settings_from_the_service_section() -> None:
    from services.common.settings import TritonSettings

    s = TritonClientSettings.from_section(TritonSettings(url="10.0.0.1:8001", timeout_s=3), max_batch=8)
    assert (s.url, s.timeout_s, s.max_batch) == ("10.0.0.1:8001", 3, 8)
