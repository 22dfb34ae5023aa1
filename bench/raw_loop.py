"""The raw model loop (FacePipeline in-process over the cached ONNX files) on a chosen
execution engine, to size the nodes that serve the models: onnxruntime on the CPU with
N threads, onnxruntime's CUDA provider, or (where the onnxruntime build has no CUDA
provider) the same ONNX graphs converted to PyTorch by onnx2torch and run on the GPU.
Prints JSON. Not a test; no Kafka, Triton or Milvus involved.

It samples the clips with cv2 itself and times FacePipeline itself rather than reuse
bench/pipeline.py's sample_frames / raw_loop: those import the ingest and recognizer
packages (settings, tritonclient), which a bare GPU node need not have; this needs only
numpy, cv2, pydantic and the chosen engine.

Each engine gets the same frames: the clip sampled at --fps, downscaled to --max-width
and JPEG-encoded at quality 90 then decoded, as ingest and the recognizer do. Reported
per engine and clip: frames/s at --batch frames per analyse call (the recognizer's
batch_frames), the batch-1 time of each frame (best of --reps), faces found, and per
model the time of one call at batch 1 / 8 / 32 on synthetic inputs.

    .venv/bin/python -m bench.raw_loop --engine cpu:1 --engine cpu:0 [--engine cuda] [--engine torch-cuda]
        [--video PATH ...] [--model-dir DIR] [--json OUT]

engines: cpu:N (onnxruntime CPUExecutionProvider, intra_op_num_threads N, 0 = all cores),
cuda (onnxruntime CUDAExecutionProvider), torch-cuda (onnx2torch on torch.cuda, fp32).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

log = logging.getLogger("bench.raw_loop")

# synthetic inputs for the per-model timing: (input name, per-item shape, dtype)
MODEL_INPUTS: dict[str, tuple[str, tuple[int, ...], str]] = {
    "faceboxes": ("input", (480, 640, 3), "uint8"),
    "onet": ("input", (48, 48, 3), "float32"),
    "facemesh": ("input", (192, 192, 3), "float32"),
    "mobilefacenet512": ("input", (112, 112, 3), "float32"),
}


def sample_clip(video: Path, fps: float, max_width: int, limit: int) -> list[np.ndarray]:
    """RGB frames of ``video`` at ``fps`` (by the clip's own timestamps), as ingest encodes them."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"cannot open {video}")
    src_fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    step = max(1.0, src_fps / fps)
    frames: list[np.ndarray] = []
    k, nxt = 0, 0.0
    while len(frames) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        if k >= nxt:
            nxt += step
            h, w = bgr.shape[:2]
            if w > max_width:
                bgr = cv2.resize(bgr, (max_width, round(h * max_width / w)), interpolation=cv2.INTER_AREA)
            ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
            frames.append(cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB))
        k += 1
    cap.release()
    return frames


class EngineRunner:
    """The ModelRunner protocol over one engine; sessions/modules built on first use."""

    def __init__(self, engine: str, model_dir: Path) -> None:
        self.engine = engine
        self.model_dir = model_dir
        self._calls: dict[str, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]] = {}
        self.used: dict[str, str] = {}  # model -> the engine that actually runs it

    def _build(self, model: str) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
        path = self.model_dir / f"{model}.onnx"
        engine = self.engine
        if engine == "torch-cuda":
            try:
                call = self._build_torch(path)
                self.used[model] = engine
                return call
            except (NotImplementedError, KeyError, RuntimeError) as exc:
                # onnx2torch lacks some ops (FaceBoxes' in-graph NMS uses Loop and Size): that model runs
                # on onnxruntime on all CPU cores, and the JSON says so
                log.warning("%s: onnx2torch cannot convert it (%s); onnxruntime on the CPU instead", model, exc)
                engine = "cpu:0"
        import onnxruntime as ort

        self.used[model] = engine
        opts = ort.SessionOptions()
        if engine.startswith("cpu:"):
            opts.intra_op_num_threads = int(engine.split(":", 1)[1])
            providers: list[Any] = ["CPUExecutionProvider"]
        elif engine == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise RuntimeError(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider")
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        else:
            raise ValueError(f"unknown engine {engine!r}")
        sess = ort.InferenceSession(str(path), opts, providers=providers)
        names = [o.name for o in sess.get_outputs()]
        return lambda inputs: dict(zip(names, sess.run(names, inputs)))

    @staticmethod
    def _build_torch(path: Path) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
        import onnx
        import torch
        from onnx2torch import convert

        graph = onnx.load(str(path))
        in_names = [i.name for i in graph.graph.input if i.name not in {t.name for t in graph.graph.initializer}]
        out_names = [o.name for o in graph.graph.output]
        module = convert(graph).cuda().eval()

        def call(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            # pad the batch to a power of two, as a serving engine's fixed optimisation profiles do:
            # every new shape costs cuDNN a plan build (hundreds of ms), which is not serving time
            n = len(inputs[in_names[0]])
            bucket = 1 << max(0, (n - 1).bit_length())
            with torch.inference_mode():
                args = []
                for name in in_names:
                    x = np.ascontiguousarray(inputs[name])
                    if bucket > n:
                        x = np.concatenate([x, np.zeros((bucket - n, *x.shape[1:]), x.dtype)])
                    args.append(torch.from_numpy(x).cuda())
                out = module(*args)
                outs = out if isinstance(out, (tuple, list)) else (out,)
                return {name: o.detach().cpu().numpy()[:n] for name, o in zip(out_names, outs)}
        return call

    def infer_sync(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        call = self._calls.get(model)
        if call is None:
            call = self._calls[model] = self._build(model)
        return call(inputs)

    async def infer(self, model: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.infer_sync(model, inputs)


def pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2) if values else float("nan")


async def loop_clip(runner: EngineRunner, frames: list[np.ndarray], batch: int, reps: int) -> dict[str, Any]:
    from services.face.config import FaceConfig
    from services.face.pipeline import FacePipeline

    pipe = FacePipeline(runner, FaceConfig())
    for i in range(0, len(frames), batch):  # one untimed pass: sessions built, every batch shape seen once
        await pipe.analyse(frames[i:i + batch])
    t0 = time.perf_counter()
    faces = 0
    for i in range(0, len(frames), batch):
        faces += sum(len(f) for f in await pipe.analyse(frames[i:i + batch]))
    fps = len(frames) / (time.perf_counter() - t0)
    one = [float("inf")] * len(frames)
    for _ in range(reps):
        for k, f in enumerate(frames):
            t = time.perf_counter()
            await pipe.analyse([f])
            one[k] = min(one[k], (time.perf_counter() - t) * 1000)
    return {"frames": len(frames), "faces": faces, "batch": batch, "fps": round(fps, 2),
            "batch1_ms": {"p50": pct(one, 50), "p95": pct(one, 95), "max": pct(one, 100)}}


def time_models(runner: EngineRunner, batches: tuple[int, ...], seconds: float) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {}
    for model, (name, shape, dtype) in MODEL_INPUTS.items():
        row: dict[str, Any] = {}
        for b in batches:
            if model == "faceboxes" and b > 8:
                continue  # its max_batch_size
            x = (rng.integers(0, 255, (b, *shape)) if dtype == "uint8" else rng.random((b, *shape))).astype(dtype)
            runner.infer_sync(model, {name: x})
            n, t0 = 0, time.perf_counter()
            while (dt := time.perf_counter() - t0) < seconds or n < 3:
                runner.infer_sync(model, {name: x})
                n += 1
            row[str(b)] = {"ms_per_call": round(1000 * dt / n, 3), "items_per_s": round(n * b / dt, 1)}
        out[model] = row
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", action="append", default=None, help="cpu:N, cuda or torch-cuda (repeatable)")
    ap.add_argument("--video", action="append", type=Path, default=None,
                    help="clip (repeatable; default: the Hamilton clip and the 1080p crowd)")
    ap.add_argument("--fps", type=float, default=5.0, help="sampling rate of the clips")
    ap.add_argument("--max-frames", type=int, default=60, help="most frames per clip")
    ap.add_argument("--max-width", type=int, default=1920, help="ingest's max_width")
    ap.add_argument("--batch", type=int, default=8, help="frames per analyse call (recognizer batch_frames)")
    ap.add_argument("--reps", type=int, default=2, help="batch-1 repetitions per frame (best kept)")
    ap.add_argument("--model-seconds", type=float, default=1.0, help="time per model x batch measurement")
    ap.add_argument("--model-dir", type=Path, default=None, help="ONNX files (default: the model cache)")
    ap.add_argument("--json", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from services.models.paths import model_dir

    mdir = args.model_dir or model_dir()
    videos = args.video or [Path("../shared/data/video/hamilton_white_house_short_clip.mp4"),
                            Path("../shared/data/video/crowd_royal_opera_house_1080p.mp4")]
    clips = {v.name: sample_clip(v, args.fps, args.max_width, args.max_frames) for v in videos}
    result: dict[str, Any] = {"fps_sampled": args.fps, "batch": args.batch, "model_dir": str(mdir),
                              "clips": {k: len(v) for k, v in clips.items()}, "engines": {}}
    for engine in args.engine or ["cpu:1", "cpu:0"]:
        runner = EngineRunner(engine, mdir)
        entry: dict[str, Any] = {}
        try:
            t = time.perf_counter()
            entry["models"] = time_models(runner, (1, 8, 32), args.model_seconds)
            for name, frames in clips.items():
                entry[name] = asyncio.run(loop_clip(runner, frames, args.batch, args.reps))
                log.info("%s %s: %s", engine, name, entry[name])
            entry["wall_s"] = round(time.perf_counter() - t, 1)
            entry["engine_per_model"] = runner.used
        except Exception as exc:  # noqa: BLE001 - one engine failing must not lose the others' results
            log.exception("engine %s failed", engine)
            entry["error"] = f"{type(exc).__name__}: {exc}"
        result["engines"][engine] = entry
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
