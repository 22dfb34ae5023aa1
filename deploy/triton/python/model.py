"""The ONE generic Triton python-backend model of the local variant: it runs the
ONNX file next to it (<model>/<version>/model.onnx) with onnxruntime on the CPU.

Triton's dynamic batcher hands ``execute`` a list of requests, each with its own
batch. Requests whose inputs share the per-item shape are concatenated into one
onnxruntime call and the outputs split back. A failure answers only the requests
it concerns (each with ``InferenceResponse(error=...)``): a group that fails is
retried one request at a time, so one bad request never fails the whole batch.

Runs inside the Triton server's own venv (numpy<2, onnxruntime), not the
services' venv. Configured by config.pbtxt parameters:
  onnx_file         file name inside the version dir (default model.onnx)
  intra_op_threads  onnxruntime intra-op threads (default 1; 0 = onnxruntime's default)
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


def _param(config, key, default):
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return default if value in (None, "") else value


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.name = args["model_name"]
        path = os.path.join(args["model_repository"], args["model_version"], _param(config, "onnx_file", "model.onnx"))
        if not os.path.exists(path):
            raise pb_utils.TritonModelException(f"{self.name}: ONNX file missing: {path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(_param(config, "intra_op_threads", "1"))
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        self.inputs = [(t["name"], pb_utils.triton_string_to_numpy(t["data_type"])) for t in config["input"]]
        self.outputs = [(t["name"], pb_utils.triton_string_to_numpy(t["data_type"])) for t in config["output"]]
        onnx_in = {i.name for i in self.session.get_inputs()}
        onnx_out = {o.name for o in self.session.get_outputs()}
        missing = sorted({n for n, _ in self.inputs} - onnx_in) + sorted({n for n, _ in self.outputs} - onnx_out)
        if missing:
            raise pb_utils.TritonModelException(
                f"{self.name}: config tensors {missing} are not in the ONNX graph "
                f"(inputs {sorted(onnx_in)}, outputs {sorted(onnx_out)}): fix deploy/triton/models.yaml")
        self.batched = int(config.get("max_batch_size", 0)) > 0
        self.logger = pb_utils.Logger
        self.logger.log_info(f"{self.name}: loaded {os.path.basename(path)} "
                             f"intra_op_threads={opts.intra_op_num_threads}")

    # -- one onnxruntime call for many requests --------------------------------
    def _read(self, request):
        feeds = {}
        for name, dtype in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                raise ValueError(f"missing input {name!r}")
            arr = tensor.as_numpy()
            if arr.dtype != dtype:
                raise ValueError(f"input {name!r} has dtype {arr.dtype}, expected {np.dtype(dtype)}")
            feeds[name] = arr
        return feeds

    def _run(self, feeds_list):
        """Run a group of requests with equal per-item shapes as one call."""
        if len(feeds_list) == 1 or not self.batched:
            merged, sizes = feeds_list[0], None
        else:
            sizes = [next(iter(f.values())).shape[0] for f in feeds_list]
            merged = {name: np.concatenate([f[name] for f in feeds_list], axis=0) for name, _ in self.inputs}
        results = self.session.run([n for n, _ in self.outputs], merged)
        results = [np.ascontiguousarray(r, dtype=dtype) for r, (_, dtype) in zip(results, self.outputs)]
        if sizes is None:
            return [results]
        total = sum(sizes)
        for (name, _), r in zip(self.outputs, results):
            if r.ndim == 0 or r.shape[0] != total:
                raise ValueError(f"output {name!r} has batch {r.shape[:1]}, expected {total}")
        bounds = np.cumsum([0] + sizes)
        return [[r[a:b] for r in results] for a, b in zip(bounds[:-1], bounds[1:])]

    def _response(self, arrays):
        return pb_utils.InferenceResponse(
            output_tensors=[pb_utils.Tensor(name, arr) for (name, _), arr in zip(self.outputs, arrays)])

    def _error(self, exc):
        return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(f"{self.name}: {exc}"))

    def execute(self, requests):
        responses = [None] * len(requests)
        groups = {}
        for i, request in enumerate(requests):
            try:
                feeds = self._read(request)
            except Exception as exc:  # noqa: BLE001 - answered to this request only
                responses[i] = self._error(exc)
                continue
            key = tuple((n, feeds[n].shape[1:] if self.batched else feeds[n].shape) for n, _ in self.inputs)
            groups.setdefault(key, []).append((i, feeds))
        for members in groups.values():
            try:
                outs = self._run([f for _, f in members])
                for (i, _), arrays in zip(members, outs):
                    responses[i] = self._response(arrays)
                continue
            except Exception as exc:  # noqa: BLE001 - narrowed below, one request at a time
                if len(members) == 1:
                    responses[members[0][0]] = self._error(exc)
                    continue
            for i, feeds in members:
                try:
                    responses[i] = self._response(self._run([feeds])[0])
                except Exception as exc:  # noqa: BLE001 - answered to this request only
                    responses[i] = self._error(exc)
        return responses

    def finalize(self):
        self.session = None
