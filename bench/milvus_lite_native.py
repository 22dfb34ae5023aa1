"""Companion of watchlist_scale.py: the same search on milvus-lite 2.x's embedded
native engine (a local .db file, no server), to compare with the milvus-lite 3.x
server the stack runs. Standalone (pymilvus + numpy only), meant for a throwaway
venv because the services' lock pins milvus-lite 3.x:

    python3.11 -m venv /tmp/ml2 && /tmp/ml2/bin/pip install pymilvus==2.5.14 milvus-lite==2.4.12 numpy
    /tmp/ml2/bin/python bench/milvus_lite_native.py

Same shape as the service's collection (services/watchlist/schema.py: FLAT, COSINE,
dim 192, the active filter); prints JSON with p50/p99 and the numpy brute-force ratio.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np


def pct(samples: list[float]) -> dict[str, float]:
    ms = sorted(x * 1000 for x in samples)
    return {"p50_ms": round(statistics.median(ms), 3), "p99_ms": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 3)}


def timed(fn, probes):  # type: ignore[no-untyped-def]
    for q in probes[:10]:
        fn(q)
    out = []
    for q in probes:
        t0 = time.perf_counter()
        fn(q)
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    import pymilvus
    from pymilvus import DataType, MilvusClient

    n, n_probes, topk = 10_000, 300, 20
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(n, 192)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    probes = vecs[rng.integers(0, n, n_probes)] + rng.normal(scale=0.08, size=(n_probes, 192)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    at = int(time.time())
    report: dict = {"pymilvus": pymilvus.__version__, "subjects": n, "probes": n_probes,
                    "loadavg_1m": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory() as d:
        client = MilvusClient(os.path.join(d, "bench.db"))
        s = client.create_schema(auto_id=True, enable_dynamic_field=False)
        s.add_field("id", DataType.INT64, is_primary=True)
        for f in ("watchlist_id", "deployment_id", "subject_id", "category", "image_ref"):
            s.add_field(f, DataType.VARCHAR, max_length=128)
        s.add_field("valid_from", DataType.INT64)
        s.add_field("valid_until", DataType.INT64)
        s.add_field("embedding", DataType.FLOAT_VECTOR, dim=192)
        idx = client.prepare_index_params()
        idx.add_index(field_name="embedding", index_type="FLAT", metric_type="COSINE")
        client.create_collection("faces", schema=s, index_params=idx)
        rows = [{"watchlist_id": "w", "deployment_id": "bench", "subject_id": f"syn-{i}", "category": "wanted",
                 "image_ref": "bench", "valid_from": at - 60, "valid_until": at + 3600, "embedding": v.tolist()}
                for i, v in enumerate(vecs)]
        for i in range(0, n, 2000):
            client.insert("faces", rows[i:i + 2000])
        flt = f'deployment_id == "bench" and valid_from <= {at} and valid_until > {at}'
        fields = ["watchlist_id", "subject_id", "category", "image_ref"]

        def q(p: np.ndarray) -> object:
            return client.search("faces", data=[p.tolist()], filter=flt, limit=topk, output_fields=fields,
                                 search_params={"metric_type": "COSINE"})

        report["unflushed"] = pct(timed(q, probes))
        client.flush("faces")
        report["flushed"] = pct(timed(q, probes))
        client.close()

    def brute(p: np.ndarray) -> object:
        sc = vecs @ p
        top = np.argpartition(-sc, topk)[:topk]
        return top[np.argsort(-sc[top])]

    report["numpy_brute_force"] = pct(timed(brute, probes))
    report["ratio_p50_flushed"] = round(report["flushed"]["p50_ms"] / report["numpy_brute_force"]["p50_ms"], 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
