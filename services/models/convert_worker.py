"""Runs INSIDE the throwaway convert venv (tensorflow-cpu, tf2onnx, onnx), as a
script: ``python convert_worker.py JOB.json RESULT.json``. Imports nothing from
the services package. One job converts one model:

1. tfjs only: patch model.json so that every fused op has a ``TArgs`` attribute
   (TF 2.21 refuses ``_FusedConv2D`` nodes without it; the tfjs converter of
   2020 did not write it);
2. tf2onnx (``np.product`` shimmed to ``np.prod``: tf2onnx 1.17 still calls it,
   numpy 2 removed it); an ONNX source is taken as it is;
3. graph edits: rename tensors, drop outputs, make the batch (and other -1 dims)
   dynamic, replace the batch baked into Reshape shape constants by -1; for an
   NCHW source, a Transpose in front (NHWC in, like the other models); for a
   source trained on BGR, the first Conv's input channels reversed (RGB in);
4. ``onnx.checker``, then a deterministic content hash (see content_hash).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path


def patch_tfjs(model_json: Path, companions: list[Path], workdir: Path) -> Path:
    data = json.loads(model_json.read_text())
    patched = 0
    for node in data["modelTopology"]["node"]:
        if node["op"].startswith("_Fused") and "TArgs" not in node.get("attr", {}):
            n_args = int(node["attr"].get("num_args", {}).get("i", 1))
            node["attr"]["TArgs"] = {"list": {"type": ["DT_FLOAT"] * max(n_args, 1)}}
            patched += 1
    out = workdir / model_json.name
    out.write_text(json.dumps(data))
    for c in companions:  # weights are referenced relative to model.json
        shutil.copyfile(c, workdir / c.name)
    print(f"patched TArgs on {patched} fused ops", file=sys.stderr)
    return out


def run_tf2onnx(fmt: str, src: Path, out: Path, opset: int) -> None:
    import numpy as np

    if not hasattr(np, "product"):
        np.product = np.prod  # tf2onnx 1.17 + numpy 2
    from tf2onnx import convert

    sys.argv = ["tf2onnx.convert", f"--{fmt}", str(src), "--output", str(out), "--opset", str(opset)]
    convert.main()


def rename_tensor(graph, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new


def nhwc_input(graph, name: str) -> str:
    """Make graph input ``name`` NHWC: its consumers read ``name``_nchw, which a
    Transpose (perm 0,3,1,2) in front of the graph computes. Returns that name."""
    from onnx import helper

    inner = f"{name}_nchw"
    for node in graph.node:
        for i, x in enumerate(node.input):
            if x == name:
                node.input[i] = inner
    graph.node.insert(0, helper.make_node("Transpose", [name], [inner], name=f"{name}_to_nchw", perm=[0, 3, 1, 2]))
    for vi in graph.input:
        if vi.name == name:
            del vi.type.tensor_type.shape.dim[:]  # set from the manifest's (NHWC) shape below
            for _ in range(4):
                vi.type.tensor_type.shape.dim.add()
    return inner


def reverse_channels(graph, tensor: str) -> None:
    """Reverse the input-channel axis of every Conv reading ``tensor`` (NCHW):
    the graph then computes on RGB what it computed on BGR."""
    from onnx import numpy_helper

    inits = {i.name: i for i in graph.initializer}
    readers = [n for n in graph.node if tensor in n.input]
    if not readers or any(n.op_type != "Conv" or n.input[1] not in inits for n in readers):
        raise SystemExit(f"reverse_input_channels: {tensor} must feed only Convs with constant weights")
    for node in readers:
        if any(a.name == "group" and a.i != 1 for a in node.attribute):
            raise SystemExit(f"reverse_input_channels: {node.name} is a grouped Conv")
        init = inits[node.input[1]]
        w = numpy_helper.to_array(init)[:, ::-1].copy()
        init.CopyFrom(numpy_helper.from_array(w, init.name))


def edit_graph(model, job: dict) -> None:
    from onnx import numpy_helper

    g = model.graph
    for old, new in job["rename"].items():
        rename_tensor(g, old, new)
    first = job["inputs"][0]["name"]
    inner = nhwc_input(g, first) if job.get("nchw_input") else first
    if job.get("reverse_input_channels"):
        reverse_channels(g, inner)
    for name in job["drop_outputs"]:
        keep = [o for o in g.output if o.name != name]
        del g.output[:]
        g.output.extend(keep)
    specs = {t["name"]: t for t in job["inputs"] + job["outputs"]}
    for vi in list(g.input) + list(g.output):
        if vi.name not in specs:
            raise SystemExit(f"graph tensor {vi.name!r} is not in the manifest ({sorted(specs)})")
        shape = specs[vi.name]["shape"]
        dims = vi.type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise SystemExit(f"{vi.name}: rank {len(dims)} != manifest {shape}")
        for i, (d, want) in enumerate(zip(dims, shape)):
            if want == -1:
                d.Clear()
                d.dim_param = "batch" if i == 0 else f"{vi.name}_d{i}"
            elif d.HasField("dim_value") and d.dim_value not in (0, want):
                if i == 0 and job["fix_reshape_batch"] is not None:
                    d.dim_value = want
                else:
                    raise SystemExit(f"{vi.name}: dim {i} is {d.dim_value}, manifest says {want}")
            else:
                d.Clear()
                d.dim_value = want
    batch = job["fix_reshape_batch"]
    if batch is not None:
        inits = {i.name: i for i in g.initializer}
        for node in g.node:
            if node.op_type != "Reshape" or node.input[1] not in inits:
                continue
            init = inits[node.input[1]]
            shape = numpy_helper.to_array(init).copy()
            if shape.size and shape[0] == batch:
                # [batch, a, b] -> [-1, a, b]; [batch, -1] -> [0, -1] (0 copies the input's batch dim)
                shape[0] = 0 if -1 in shape else -1
                init.CopyFrom(numpy_helper.from_array(shape, init.name))
    del g.value_info[:]  # stale static shapes from the fixed-batch conversion
    model.doc_string = ""
    g.doc_string = ""


def content_hash(model) -> str:
    """sha256 over what the model computes with, independent of the names and
    node order tf2onnx picks at random: the multiset of initializer/constant
    tensors (bytes + dtype + dims), the multiset of op types, and the I/O
    signature (names, dtypes, dims)."""
    from onnx import numpy_helper

    g = model.graph

    def tensor_digest(t) -> str:
        arr = numpy_helper.to_array(t)
        return hashlib.sha256(arr.tobytes() + repr((t.data_type, tuple(t.dims))).encode()).hexdigest()

    tensors = sorted(tensor_digest(t) for t in g.initializer)
    consts = sorted(tensor_digest(a.t) for n in g.node if n.op_type == "Constant"
                    for a in n.attribute if a.name == "value")
    ops = sorted(Counter(n.op_type for n in g.node).items())

    def sig(vi) -> tuple:
        dims = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in vi.type.tensor_type.shape.dim)
        return vi.name, vi.type.tensor_type.elem_type, dims

    io = [sig(v) for v in g.input] + [sig(v) for v in g.output]
    return hashlib.sha256(repr((tensors, consts, ops, io)).encode()).hexdigest()


def main(job_path: str, result_path: str) -> int:
    import onnx

    job = json.loads(Path(job_path).read_text())
    src = Path(job["source_path"])
    out = Path(job["output_path"])
    with tempfile.TemporaryDirectory(prefix="lfr-convert-") as tmp:
        work = Path(tmp)
        if job["format"] == "tfjs":
            src = patch_tfjs(src, [Path(c) for c in job["companion_paths"]], work)
        raw = work / "raw.onnx"
        if job["format"] == "onnx":
            shutil.copyfile(src, raw)
        else:
            run_tf2onnx(job["format"], src, raw, job["opset"])
        model = onnx.load(str(raw))
        edit_graph(model, job)
        onnx.checker.check_model(model, full_check=True)
        tmp_out = out.with_suffix(".onnx.tmp")
        onnx.save(model, str(tmp_out))
        tmp_out.replace(out)
    Path(result_path).write_text(json.dumps({"content_sha256": content_hash(model)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
