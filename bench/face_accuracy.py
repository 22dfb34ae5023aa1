"""Quick identification accuracy of the in-process face pipeline (OnnxRunner)
on a folder-per-identity set such as ../shared/data/lfw_dev.

An identity with >= 2 images is a watchlist subject: its first image by name is
enrolled, the rest are mated probes; an identity with 1 image is a passer-by
(non-mated probe). One face per image: the detected face nearest the image
centre (LFW is centred on the subject). A probe whose face is missing or
rejected by the quality gate raises no alert.

    .venv/bin/python -m bench.face_accuracy ../shared/data/lfw_dev [--json out.json]

(`lfr eval` will do this through Triton and Milvus; this is the in-process check.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from services.face.config import FaceConfig
from services.face.embedder import EMBEDDING_DIM
from services.face.pipeline import Face, FacePipeline
from services.face.runner import OnnxRunner

EXTS = {".jpg", ".jpeg", ".png", ".bmp"}


def central_face(faces: list[Face], shape: tuple[int, ...]) -> Face | None:
    if not faces:
        return None
    c = np.array([shape[1] / 2, shape[0] / 2])
    return min(faces, key=lambda f: float(np.hypot(*((f.box[:2] + f.box[2:]) / 2 - c))))


async def embed_all(files: list[Path], cfg: FaceConfig, batch: int) -> tuple[np.ndarray, list[str]]:
    pipe = FacePipeline(OnnxRunner(), cfg)
    emb = np.full((len(files), EMBEDDING_DIM), np.nan, np.float32)
    status: list[str] = []
    for i in range(0, len(files), batch):
        chunk = files[i:i + batch]
        imgs = [cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB) for f in chunk]
        res = await pipe.analyse(imgs)
        for j, (img, faces) in enumerate(zip(imgs, res)):
            f = central_face(faces, img.shape)
            if f is None:
                status.append("NO_FACE")
            elif f.embedding is None:
                status.append(str(f.quality.reason.value if f.quality.reason else "REJECTED"))
            else:
                status.append("OK")
                emb[i + j] = f.embedding
        print(f"\r{min(i + batch, len(files))}/{len(files)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return emb, status


def metrics(emb: np.ndarray, ids: list[str], files: list[Path]) -> dict:
    by_id: dict[str, list[int]] = {}
    for k, ident in enumerate(ids):
        by_id.setdefault(ident, []).append(k)
    gallery_idx = [v[0] for v in by_id.values() if len(v) >= 2]
    gallery_ids = [ids[k] for k in gallery_idx]
    mated = [k for v in by_id.values() if len(v) >= 2 for k in v[1:]]
    nonmated = [v[0] for v in by_id.values() if len(v) == 1]
    g = np.nan_to_num(emb[gallery_idx])  # an enrolment with no face matches nothing (zeros)

    def top(k: int) -> tuple[float, str | None]:
        if np.isnan(emb[k]).any():
            return -np.inf, None
        s = g @ emb[k]
        j = int(np.argmax(s))
        return float(s[j]), gallery_ids[j]

    mated_top = [top(k) for k in mated]
    mated_scores = np.array([s if who == ids[k] else -np.inf for k, (s, who) in zip(mated, mated_top)])
    non_scores = np.sort(np.array([top(k)[0] for k in nonmated]))[::-1]
    rank1 = float(np.mean([who == ids[k] for k, (_, who) in zip(mated, mated_top)]))

    def tpir_at(allowed: int) -> tuple[float, float]:
        t = float(np.nextafter(non_scores[allowed], np.inf)) if allowed < len(non_scores) else -1.0
        return float(np.mean(mated_scores >= t)), t

    tz, t0 = tpir_at(0)
    t2, t2t = tpir_at(int(0.01 * len(nonmated)))
    return {"subjects": len(gallery_idx), "mated_probes": len(mated), "nonmated_probes": len(nonmated),
            "rank1": rank1, "tpir_at_zero_false_alerts": tz, "threshold_zero_false_alerts": t0,
            "tpir_at_fpir_0.01": t2, "threshold_fpir_0.01": t2t}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--config", type=str, default="{}", help="FaceConfig overrides as JSON")
    ap.add_argument("--save-embeddings", type=Path, help="npz for offline threshold studies (stays local)")
    args = ap.parse_args(argv)
    cfg = FaceConfig.model_validate(json.loads(args.config))
    files = sorted(f for d in sorted(args.dir.iterdir()) if d.is_dir() for f in sorted(d.iterdir())
                   if f.suffix.lower() in EXTS)
    ids = [f.parent.name for f in files]
    t0 = time.monotonic()
    emb, status = asyncio.run(embed_all(files, cfg, args.batch))
    dt = time.monotonic() - t0
    out = metrics(emb, ids, files)
    out.update({"images": len(files), "seconds": round(dt, 1), "ms_per_image": round(1000 * dt / len(files), 1),
                "status_counts": {s: status.count(s) for s in sorted(set(status))},
                "not_ok": [str(f.relative_to(args.dir)) + ":" + s for f, s in zip(files, status) if s != "OK"],
                "config": cfg.model_dump(mode="json")})
    if args.save_embeddings:
        np.savez(args.save_embeddings, emb=emb, ids=np.array(ids), status=np.array(status))
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
