"""The generic python-backend model (deploy/triton/python/model.py) with a fake
``triton_python_backend_utils`` and a fake onnxruntime session: how it groups a
dynamic batch into onnxruntime calls and answers errors per request. The real
thing runs in tests/integration/test_triton.py."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

MODEL_PY = Path(__file__).resolve().parents[2] / "deploy" / "triton" / "python" / "model.py"


class Tensor:
    def __init__(self, name: str, arr: np.ndarray) -> None:
        self.name, self.arr = name, arr

    def as_numpy(self) -> np.ndarray:
        return self.arr


class Response:
    def __init__(self, output_tensors: list[Tensor], error: Any = None) -> None:
        self.outputs = {t.name: t.arr for t in output_tensors}
        self.error = error


def fake_pb_utils() -> types.ModuleType:
    m = types.ModuleType("triton_python_backend_utils")
    m.Tensor = Tensor  # type: ignore[attr-defined]
    m.InferenceResponse = Response  # type: ignore[attr-defined]
    m.TritonError = lambda msg: msg  # type: ignore[attr-defined]
    m.TritonModelException = RuntimeError  # type: ignore[attr-defined]
    m.triton_string_to_numpy = {"TYPE_FP32": np.float32, "TYPE_UINT8": np.uint8}.__getitem__  # type: ignore[attr-defined]
    m.get_input_tensor_by_name = lambda req, name: req.get(name)  # type: ignore[attr-defined]
    m.Logger = types.SimpleNamespace(log_info=lambda msg: None)  # type: ignore[attr-defined]
    return m


class FakeSession:
    """Doubles ``x``; fails on NaN; records the batch of each call."""

    calls: list[int] = []

    def __init__(self, path: str, sess_options: Any = None, providers: Any = None) -> None:
        self.threads = sess_options.intra_op_num_threads

    def get_inputs(self) -> list[Any]:
        return [types.SimpleNamespace(name="x")]

    def get_outputs(self) -> list[Any]:
        return [types.SimpleNamespace(name="y")]

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        x = feeds["x"]
        FakeSession.calls.append(x.shape[0])
        if np.isnan(x).any():
            raise ValueError("NaN in input")
        return [x * 2]


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", fake_pb_utils())
    spec = importlib.util.spec_from_file_location("lfr_triton_generic_model", MODEL_PY)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod.ort, "InferenceSession", FakeSession)
    (tmp_path / "1").mkdir()
    (tmp_path / "1" / "model.onnx").write_bytes(b"")
    config = {"max_batch_size": 8, "parameters": {"intra_op_threads": {"string_value": "2"}},
              "input": [{"name": "x", "data_type": "TYPE_FP32"}],
              "output": [{"name": "y", "data_type": "TYPE_FP32"}]}
    m = mod.TritonPythonModel()
    m.initialize({"model_config": json.dumps(config), "model_name": "fake", "model_repository": str(tmp_path),
                  "model_version": "1"})
    FakeSession.calls = []
    return m


def test_same_shape_requests_run_as_one_call(model: Any) -> None:
    assert model.session.threads == 2
    reqs = [{"x": Tensor("x", np.full((k, 3), k, np.float32))} for k in (1, 2, 1)]
    out = model.execute(reqs)
    assert FakeSession.calls == [4]
    for k, r in zip((1, 2, 1), out):
        assert r.error is None
        np.testing.assert_array_equal(r.outputs["y"], np.full((k, 3), 2 * k, np.float32))


def test_different_shapes_are_separate_calls(model: Any) -> None:
    out = model.execute([{"x": Tensor("x", np.ones((1, 3), np.float32))},
                         {"x": Tensor("x", np.ones((1, 5), np.float32))}])
    assert sorted(FakeSession.calls) == [1, 1]
    assert [r.outputs["y"].shape for r in out] == [(1, 3), (1, 5)]


def test_a_bad_request_fails_alone(model: Any) -> None:
    bad = np.ones((1, 3), np.float32)
    bad[0, 0] = np.nan
    reqs = [{"x": Tensor("x", np.ones((1, 3), np.float32))}, {"x": Tensor("x", bad)},
            {"x": Tensor("x", np.ones((2, 3), np.float32))}, {},
            {"x": Tensor("x", np.ones((1, 3), np.uint8))}]
    out = model.execute(reqs)
    assert len(out) == len(reqs)
    assert out[0].error is None and out[0].outputs["y"].shape == (1, 3)
    assert "NaN" in out[1].error
    assert out[2].error is None and out[2].outputs["y"].shape == (2, 3)
    assert "missing input 'x'" in out[3].error
    assert "dtype uint8" in out[4].error
    # one merged try, then each of the three readable requests on its own
    assert FakeSession.calls == [4, 1, 1, 2]


def test_config_tensor_missing_from_graph_fails_to_load(tmp_path: Path, model: Any) -> None:
    config = {"max_batch_size": 8, "input": [{"name": "nope", "data_type": "TYPE_FP32"}],
              "output": [{"name": "y", "data_type": "TYPE_FP32"}]}
    with pytest.raises(RuntimeError, match="not in the ONNX graph"):
        type(model)().initialize({"model_config": json.dumps(config), "model_name": "fake",
                                  "model_repository": str(tmp_path), "model_version": "1"})
