"""Scale check of the watchlist search: bulk-import N synthetic subjects
(unit vectors) through the WatchlistService's BulkImport RPC, then time the
matcher's search (services.common.faces_search.search_active: single probe, the
deployment/time filter, dedup by subject) against numpy brute force over the
same vectors, in the same run; then the per-face cost when several faces are
searched in one call (the matcher searches each (deployment, capture second)
group of a Kafka batch in one call), at batch sizes 1, 8 and 32, for Milvus and
numpy in the same run, with probes that match an enrolled subject ("batched")
and with strangers ("batched_strangers", the usual case). The search is made as
the matcher makes it: its top_k (1) and its threshold as ``min_score`` (ids and
scores first, the subject fields of passing rows in one query after). Also times variants on a scratch collection
(index type, unflushed rows, no filter) and the bare Milvus round trip, to show
where the time goes. Prints one JSON object.

    .venv/bin/python bench/watchlist_scale.py                # spawns the service on a bench port
    .venv/bin/python bench/watchlist_scale.py --address 127.0.0.1:50055

Needs `lfr stack up` (Kafka, Redis, Milvus, Triton: the service checks them all).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BENCH_GRPC_PORT, BENCH_METRICS_PORT = 52055, 11105
SCRATCH = "lfr_bench_scratch"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", help="a running watchlist service; default: spawn one on a bench port")
    p.add_argument("--milvus", default="http://127.0.0.1:19530")
    p.add_argument("--subjects", type=int, default=10_000)
    p.add_argument("--probes", type=int, default=300)
    p.add_argument("--limit", type=int, default=1,
                   help="subjects returned per probe (the matcher's top_k, services/matcher/config.py: 1)")
    p.add_argument("--min-score", action=argparse.BooleanOptionalAction, default=True,
                   help="search as the matcher does: ids and scores only, then the fields of the rows at or above "
                        "--threshold in one query (services.common.faces_search.search_active min_score); "
                        "--no-min-score: the fields come with every hit")
    p.add_argument("--threshold", type=float, default=None,
                   help="the matcher's threshold (default: the default embedder's calibration)")
    p.add_argument("--batch-sizes", default="1,8,32",
                   help="faces per search call for the per-face cost comparison (comma separated; empty: skip)")
    p.add_argument("--batch-calls", type=int, default=60, help="timed calls per batch size (probes reused)")
    p.add_argument("--variants", action=argparse.BooleanOptionalAction, default=True,
                   help="also time index/flush/filter variants on a scratch collection")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blas-threads", type=int, default=1,
                   help="OpenBLAS threads for the numpy baseline (re-execs with OPENBLAS_NUM_THREADS); 0: "
                        "OpenBLAS' default. One thread is numpy's best for one probe on a busy 2-core box: "
                        "with 2 threads competing with other load, its p50 swings between 0.7 and 16 ms")
    return p.parse_args()


def percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in samples_s)
    return {"p50_ms": round(statistics.median(ms), 3), "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3),
            "mean_ms": round(statistics.fmean(ms), 3)}


def timed(fn: Callable[[np.ndarray], Any], probes: np.ndarray, warmup: int = 10) -> tuple[list[float], list[Any]]:
    for q in probes[:warmup]:
        fn(q)
    out, results = [], []
    for q in probes:
        t0 = time.perf_counter()
        results.append(fn(q))
        out.append(time.perf_counter() - t0)
    return out, results


def batches(probes: np.ndarray, size: int, calls: int) -> np.ndarray:
    """``calls`` batches of ``size`` probes (cycling through the probes): shape (calls, size, dim)."""
    idx = np.arange(calls * size) % len(probes)
    return probes[idx].reshape(calls, size, probes.shape[1])


def per_face(lat_s: list[float], size: int) -> dict[str, float]:
    """Percentiles of one call, and of the cost per face (call / faces in it)."""
    call = percentiles(lat_s)
    return {"faces_per_call": size, "call_p50_ms": call["p50_ms"], "call_p99_ms": call["p99_ms"],
            "per_face_p50_ms": round(call["p50_ms"] / size, 3), "per_face_p99_ms": round(call["p99_ms"] / size, 3)}


def spawn_service(milvus_uri: str) -> tuple[subprocess.Popen[bytes], str]:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from services.common.grpc_client import dev_server_env, sync_channel

    env = {k: v for k, v in os.environ.items() if not k.startswith("LFR_")}
    env.update({"LFR_GRPC__PORT": str(BENCH_GRPC_PORT), "LFR_METRICS__PORT": str(BENCH_METRICS_PORT),
                "LFR_LOG_LEVEL": "warning", "LFR_MILVUS__URI": milvus_uri,
                **dev_server_env("watchlist")})  # mTLS + roles, as the tests run it
    if milvus_uri == "http://127.0.0.1:19530":  # the local stack's engine: erase the closed bench rows' bytes
        from services.stack.base import StackPaths

        db = StackPaths.default(REPO).data_dir("milvus") / "milvus.db"
        if db.is_file():
            env["LFR_WATCHLIST__LOCAL_ENGINE_FILE"] = str(db)
    proc = subprocess.Popen([sys.executable, "-m", "services.watchlist"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{BENCH_GRPC_PORT}"
    deadline = time.monotonic() + 90
    with sync_channel(address) as ch:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1).status == 1:
                    return proc, address
            except grpc.RpcError:
                pass
            time.sleep(0.25)
    proc.kill()
    raise SystemExit("the watchlist service did not become SERVING (is `lfr stack up` running?)")


def bulk_requests(watchlist_id: str, vecs: np.ndarray, chunk: int = 1000) -> Iterator[Any]:
    from lfr.v1 import common_pb2, watchlist_pb2

    for start in range(0, len(vecs), chunk):
        yield watchlist_pb2.BulkImportRequest(
            watchlist_id=watchlist_id if start == 0 else "",
            subjects=[watchlist_pb2.SyntheticSubject(subject_id=f"syn-{i}", category=common_pb2.SUBJECT_CATEGORY_WANTED,
                                                     embedding=vecs[i].tolist(), source_ref="bench")
                      for i in range(start, min(start + chunk, len(vecs)))])


def recall(results: list[Any], truth: list[tuple[int, set[int]]]) -> dict[str, float]:
    """Recall@k of the Milvus hits against numpy's exact top-k, and top-1 agreement."""
    got = [[int(h["entity"]["subject_id"].removeprefix("syn-")) for h in r[0]] for r in results]
    n = len(truth)
    return {"recall_at_k": round(sum(len(set(g) & t) / len(t) for g, (_, t) in zip(got, truth)) / n, 4),
            "top1_agreement": round(sum(1 for g, (b, _) in zip(got, truth) if g and g[0] == b) / n, 4)}


def variants(client: Any, vecs: np.ndarray, probes: np.ndarray, deployment: str, at_s: int, topk: int) -> dict:
    """The same rows in a scratch collection with other indexes / unflushed / without filter."""
    from pymilvus.exceptions import MilvusException

    from services.common import faces_schema as schema

    out: dict[str, Any] = {}
    rows = [{"watchlist_id": "bench", "deployment_id": deployment, "subject_id": f"syn-{i}", "category": "wanted",
             "valid_from": at_s - 60, "valid_until": at_s + 3600, "image_ref": "bench", "image_jpeg_b64": "",
             "embedding": v.tolist()} for i, v in enumerate(vecs)]
    flt = schema.active_filter(deployment, at_s)
    fields = ["watchlist_id", "subject_id", "category", "image_ref"]
    # exact top-k by numpy (all rows are active here), to score each index's recall
    scores = probes @ vecs.T
    truth = [(int(np.argmax(row)), set(np.argpartition(-row, topk)[:topk].tolist())) for row in scores]
    configs = [("FLAT", {}, {}), ("HNSW", {"M": 16, "efConstruction": 200}, {"ef": 64}),
               ("IVF_FLAT", {"nlist": 128}, {"nprobe": 16})]
    for name, build, search in configs:
        if client.has_collection(SCRATCH):
            client.drop_collection(SCRATCH)
        idx = client.prepare_index_params()
        idx.add_index(field_name="embedding", index_type=name, metric_type=schema.METRIC, params=build)
        try:
            client.create_collection(SCRATCH, schema=schema.build_schema(client), index_params=idx)
        except MilvusException as e:  # e.g. milvus-lite's native engine: FLAT, IVF_FLAT, AUTOINDEX only
            out[f"{name}_flushed"] = {"error": e.message[:200]}
            continue
        client.load_collection(SCRATCH)
        for s in range(0, len(rows), 2000):
            client.insert(SCRATCH, rows[s:s + 2000])
        sp = {"metric_type": schema.METRIC, "params": search}

        def q(p: np.ndarray, f: str = flt) -> Any:
            return client.search(SCRATCH, data=[p.tolist()], filter=f, limit=topk, output_fields=fields,
                                 search_params=sp)

        if name == "FLAT":
            lat, _ = timed(q, probes[:40], warmup=2)  # ~1 s each: 40 probes are enough to see it
            out["FLAT_unflushed"] = percentiles(lat)
        client.flush(SCRATCH)
        time.sleep(1)
        lat, res = timed(q, probes)
        out[f"{name}_flushed"] = {**percentiles(lat), **recall(res, truth)}
        if name == "FLAT":
            lat, _ = timed(lambda p: q(p, ""), probes)
            out["FLAT_flushed_no_filter"] = percentiles(lat)
            lat, _ = timed(lambda p: client.search(SCRATCH, data=[p.tolist()], filter=flt, limit=topk,
                                                   search_params=sp), probes)
            out["FLAT_flushed_no_output_fields"] = percentiles(lat)
        client.drop_collection(SCRATCH)
    if client.has_collection(SCRATCH):
        client.drop_collection(SCRATCH)
    return out


def batched_comparison(client: Any, vecs: np.ndarray, probes: np.ndarray, deployment: str, at_s: int,
                       args: argparse.Namespace, sizes: list[int], rows: tuple[np.ndarray, ...],
                       min_score: float | None) -> dict[str, Any]:
    """Per-face cost of ``search_active`` with B faces in one call vs numpy brute force over a (B, N) score
    matrix, interleaved size by size in the same run. Milvus answers a B-probe search in one round trip."""
    from services.common.faces_search import OVERSAMPLE, search_active

    deployments, valid_from, valid_until = rows
    k = args.limit * OVERSAMPLE

    def brute_many(qs: np.ndarray) -> np.ndarray:
        t = int(time.time())
        inactive = (deployments != deployment) | (valid_from > t) | (valid_until <= t)
        scores = qs @ vecs.T
        scores[:, inactive] = -np.inf
        top = np.argpartition(-scores, k, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        return np.take_along_axis(top, order, axis=1)[:, : args.limit]

    out: dict[str, Any] = {}
    for size in sizes:
        groups = batches(probes, size, args.batch_calls)
        lat_m, res_m = timed(lambda qs: search_active(client, qs, deployment, at_s, args.limit, min_score=min_score),
                             groups, warmup=3)
        lat_n, res_n = timed(brute_many, groups, warmup=3)
        agree = sum(1 for rm, rn in zip(res_m, res_n) for m, n in zip(rm, rn) if m and m[0].subject_id == f"syn-{n[0]}")
        m, n = per_face(lat_m, size), per_face(lat_n, size)
        out[str(size)] = {"milvus": m, "numpy": n,
                          "ratio_per_face_p50": round(m["per_face_p50_ms"] / n["per_face_p50_ms"], 1),
                          "ratio_per_face_p99": round(m["per_face_p99_ms"] / n["per_face_p99_ms"], 1),
                          "top1_agreement": round(agree / (size * args.batch_calls), 4),
                          "faces_with_a_hit": sum(1 for rm in res_m for m in rm if m)}
        out[str(size)]["target_met"] = out[str(size)]["ratio_per_face_p50"] <= 2.0
    return out


def main() -> int:
    args = parse_args()
    want = str(args.blas_threads) if args.blas_threads > 0 else None
    if want is not None and os.environ.get("OPENBLAS_NUM_THREADS") != want:
        # OpenBLAS reads its thread count once, when numpy is first imported: start again with it set
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "OPENBLAS_NUM_THREADS": want})
    import grpc
    from lfr.v1 import watchlist_pb2, watchlist_pb2_grpc

    from services.common.clients import milvus_client
    from services.common.faces_search import OVERSAMPLE, search_active
    from services.common.grpc_client import sync_channel
    from services.face.embedder import EMBEDDING_DIM
    from services.face.embedders import DEFAULT_EMBEDDER, calibrated_threshold

    min_score = ((calibrated_threshold(DEFAULT_EMBEDDER) if args.threshold is None else args.threshold)
                 if args.min_score else None)
    rng = np.random.default_rng(args.seed)
    vecs = rng.normal(size=(args.subjects, EMBEDDING_DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    # probes: noisy copies of enrolled subjects (cosine ~0.7 to their source), so each has a true best match
    src = rng.integers(0, args.subjects, size=args.probes)
    noise = 1.1 / np.sqrt(EMBEDDING_DIM)  # a noise vector of norm ~1.1 whatever the dimension
    probes = vecs[src] + rng.normal(scale=noise, size=(args.probes, EMBEDDING_DIM)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    # strangers: random unit vectors, nobody's face (best cosine ~0.3 at 10k): the crowd, the usual case
    strangers = rng.normal(size=(args.probes, EMBEDDING_DIM)).astype(np.float32)
    strangers /= np.linalg.norm(strangers, axis=1, keepdims=True)

    proc = None
    if args.address is None:
        proc, address = spawn_service(args.milvus)
    else:
        address = args.address
    channel = sync_channel(address)  # the dev PKI's client identity (services.common.grpc_client)
    stub = watchlist_pb2_grpc.WatchlistServiceStub(channel)
    deployment = f"bench-{uuid.uuid4().hex[:8]}"
    now = time.time_ns()
    create = watchlist_pb2.CreateWatchlistRequest(
        name="scale bench", deployment_id=deployment, authorisation_ref="BENCH", authorising_officer="bench",
        purpose="scale check", criteria="synthetic unit vectors", valid_from_unix_ns=now - 10**9,
        valid_until_unix_ns=now + 3600 * 10**9)
    try:
        deadline = time.monotonic() + 120
        while True:  # SERVING comes before the service's first Milvus connection (a server loads its collection)
            try:
                wl = stub.CreateWatchlist(create, timeout=30).watchlist
                break
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                time.sleep(1)
    except BaseException:  # never leave the spawned service behind
        channel.close()
        if proc is not None:
            proc.kill()
            proc.wait()
        raise
    client = milvus_client(args.milvus)
    report: dict[str, Any] = {"subjects": args.subjects, "probes": args.probes, "limit": args.limit,
                              "dim": EMBEDDING_DIM,
                              "min_score": min_score,
                              "cpus": os.cpu_count(), "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
                              "numpy_blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default")}
    try:
        t0 = time.perf_counter()
        resp = stub.BulkImport(bulk_requests(wl.watchlist_id, vecs), timeout=600)
        report["bulk_import_s"] = round(time.perf_counter() - t0, 2)
        report["imported"] = resp.imported
        at_s = int(time.time())

        lat, milvus_hits = timed(lambda q: search_active(client, q, deployment, at_s, args.limit, min_score=min_score),
                                 probes)
        report["milvus_search_active"] = percentiles(lat)

        # the active filter as numpy applies it: a row mask from the rows' deployment and window
        deployments = np.array([deployment] * len(vecs))
        valid_from = np.full(len(vecs), at_s - 60)
        valid_until = np.full(len(vecs), at_s + 3600)

        def brute(q: np.ndarray) -> np.ndarray:
            t = int(time.time())
            inactive = (deployments != deployment) | (valid_from > t) | (valid_until <= t)
            scores = vecs @ q
            scores[inactive] = -np.inf
            k = args.limit * OVERSAMPLE
            top = np.argpartition(-scores, k)[:k]
            return top[np.argsort(-scores[top])][: args.limit]

        lat, numpy_hits = timed(brute, probes)
        report["numpy_brute_force"] = percentiles(lat)
        report["ratio_p50"] = round(report["milvus_search_active"]["p50_ms"] / report["numpy_brute_force"]["p50_ms"], 1)
        report["ratio_p99"] = round(report["milvus_search_active"]["p99_ms"] / report["numpy_brute_force"]["p99_ms"], 1)
        agree = sum(1 for m, n in zip(milvus_hits, numpy_hits) if m[0] and m[0][0].subject_id == f"syn-{n[0]}")
        report["top1_agreement"] = round(agree / len(probes), 4)
        report["top1_is_source"] = round(sum(1 for m, s in zip(milvus_hits, src)
                                             if m[0] and m[0][0].subject_id == f"syn-{s}") / len(probes), 4)
        sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
        if sizes:
            rows = (deployments, valid_from, valid_until)
            report["batched"] = batched_comparison(client, vecs, probes, deployment, at_s, args, sizes, rows,
                                                   min_score)
            report["batched_strangers"] = batched_comparison(client, vecs, strangers, deployment, at_s, args, sizes,
                                                             rows, min_score)
        lat, _ = timed(lambda q: client.has_collection("lfr_watchlist_faces"), probes)
        report["milvus_round_trip_floor"] = percentiles(lat)
        report["target_met"] = report["ratio_p50"] <= 2.0
        if args.variants:
            report["variants"] = variants(client, vecs, probes, deployment, at_s, args.limit * OVERSAMPLE)
    finally:
        stub.CloseWatchlist(watchlist_pb2.CloseWatchlistRequest(watchlist_id=wl.watchlist_id, reason="bench done"),
                            timeout=60)
        channel.close()
        client.close()
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    report["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
