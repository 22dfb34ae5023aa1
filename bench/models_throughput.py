"""Throughput of each face model through Triton (gRPC, the local stack) against
the same ONNX file run in-process with onnxruntime, at batch 1 and batch 8,
measured in the same run. Prints JSON (not a test).

Both sides run sequential requests (one in flight), so the ratio is the cost of
serving: gRPC + protobuf copy + Triton scheduling + the python backend's shared
memory hop. The in-process session uses intra_op_num_threads=1, as the local
Triton models do (deploy/triton/models.yaml: intra_op_threads: 1).

    .venv/bin/python -m bench.models_throughput [--seconds 3] [--models faceboxes,onet,facemesh,mobilefacenet512]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable

import numpy as np

INPUTS: dict[str, tuple[str, tuple[int, ...], str]] = {
    "faceboxes": ("input", (480, 640, 3), "uint8"),
    "onet": ("input", (48, 48, 3), "float32"),
    "facemesh": ("input", (192, 192, 3), "float32"),
    "mobilefacenet512": ("input", (112, 112, 3), "float32"),
}
TRITON_DTYPES = {"uint8": "UINT8", "float32": "FP32"}


def rate(fn: Callable[[], object], items: int, seconds: float) -> dict[str, float]:
    fn()  # warm up
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        dt = time.perf_counter() - t0
        if dt >= seconds and n >= 3:
            break
    return {"items_per_s": round(n * items / dt, 1), "ms_per_request": round(1000 * dt / n, 2), "requests": n}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    ap.add_argument("--models", default=",".join(INPUTS))
    ap.add_argument("--url", default="127.0.0.1:8001", help="Triton gRPC")
    args = ap.parse_args(argv)

    import onnxruntime as ort
    import tritonclient.grpc as grpcclient

    from services.models.paths import model_path

    client = grpcclient.InferenceServerClient(args.url)
    rng = np.random.default_rng(0)
    out: dict[str, object] = {"batches": [1, 8], "seconds_per_measurement": args.seconds,
                              "inprocess_intra_op_threads": 1, "results": {}}
    for name in args.models.split(","):
        tensor, shape, dtype = INPUTS[name]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(model_path(name)), opts, providers=["CPUExecutionProvider"])
        outputs = [o.name for o in sess.get_outputs()]
        res: dict[str, object] = {}
        for batch in (1, 8):
            x = (rng.integers(0, 255, (batch, *shape)) if dtype == "uint8"
                 else rng.standard_normal((batch, *shape))).astype(dtype)
            inp = grpcclient.InferInput(tensor, list(x.shape), TRITON_DTYPES[dtype])
            inp.set_data_from_numpy(x)
            req_out = [grpcclient.InferRequestedOutput(o) for o in outputs]
            local = rate(lambda: sess.run(outputs, {tensor: x}), batch, args.seconds)
            triton = rate(lambda: client.infer(name, [inp], outputs=req_out), batch, args.seconds)
            res[f"batch_{batch}"] = {"inprocess": local, "triton": triton,
                                     "triton_over_inprocess": round(triton["items_per_s"] / local["items_per_s"], 3)}
            print(f"{name} batch {batch}: in-process {local['items_per_s']}/s, Triton {triton['items_per_s']}/s",
                  file=sys.stderr, flush=True)
        out["results"][name] = res  # type: ignore[index]
    client.close()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
