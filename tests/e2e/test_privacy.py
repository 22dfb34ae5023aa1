"""The privacy rule, proven: a face that matches no one is wiped.

1. Stream crowd_royal_opera_house_1080p.mp4 (everyone unknown; nobody is enrolled
   for that camera's deployment) for its length through the real pipeline.
2. Right after the pipeline drained: no data key of any observation is left in
   Redis (the matcher DELs a non-match's key at once: the sealed bytes still in
   Kafka are unreadable from then on).
3. Wait out PRIVACY_BOUND_S after the last frame/face record was appended, then
   scan every store:
   - Kafka's log directories (every file of the broker): none of those frames'
     bytes (a 48-byte run from the middle of each JPEG) nor of the sealed face
     payloads (a 48-byte run of each ciphertext) remain; the frames and faces
     partitions of this run hold no record bytes any more (and no JPEG marker);
   - Redis: no key (name or value) holds an observation id, a key id or those
     bytes, no ``lfr:obs:*`` key of them; and Redis's own files (the local
     stack's data dir, every file under it): no AOF/RDB at all, and none of
     those bytes, ids, nor the crowd camera's frame keys (read while they were
     live) -- Redis never persists;
   - Milvus: no vector of the crowd's deployment; every row of
     lfr_watchlist_faces belongs to an open watchlist that was enrolled through
     the watchlist service (the matcher never writes vectors);
   - the services' logs (.lfr/logs/*.log): no embedding (no run of 16+ floats),
     no base64 run, no JPEG bytes, no observation's sealed bytes.

The bound (docs/design.md states it): retention.ms of lfr.frames.v1/lfr.faces.v1 (60 s)
+ their segment.ms (10 s: a record can sit in a segment whose newest record is
up to 10 s younger; Kafka deletes whole segments by their newest timestamp)
+ the broker's log.retention.check.interval.ms (5 s, services/stack/kafka.py)
+ file.delete.delay.ms (1 s) = 76 s after the record was appended.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from e2e_support import E2E, read_records
from services.cli.launch import state_dir
from services.common.topics import FACES, FRAMES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


def _check_interval_s() -> float:
    from services.stack.base import StackPaths
    from services.stack.kafka import KafkaComponent
    from services.stack.manager import REPO_ROOT

    props = KafkaComponent(StackPaths.default(REPO_ROOT)).server_properties()
    return int(re.search(r"^log\.retention\.check\.interval\.ms=(\d+)$", props, re.M).group(1)) / 1000


def privacy_bound_s() -> float:
    worst = max((FRAMES, FACES), key=lambda s: s.retention_ms + s.segment_ms)
    return ((worst.retention_ms + worst.segment_ms) / 1000 + _check_interval_s()
            + int(worst.extra.get("file.delete.delay.ms", "60000")) / 1000)


# THE stated bound (docs/design.md): seconds from a non-matching face's arrival in Kafka until
# no byte of its frame or sealed payload is left anywhere.
PRIVACY_BOUND_S = 76.0
NEEDLE = 48
FLOAT_RUN = re.compile(rb"(?:-?\d+\.\d+(?:e-?\d+)?\s*,\s*){15,}-?\d+\.\d+")
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{200,}={0,2}")


def test_the_bound_is_the_config() -> None:
    assert privacy_bound_s() == PRIVACY_BOUND_S, ("the topic/broker config changed: update PRIVACY_BOUND_S, "
                                                  "docs/design.md and the README")


def _middle(data: bytes) -> bytes:
    mid = len(data) // 2
    return data[mid:mid + NEEDLE]


def _scan_files(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            data = f.read_bytes()
        except FileNotFoundError:  # deleted meanwhile (retention, or another run's topic deletion)
            continue
        hits += [f"{f} holds a needle" for n in needles if n in data][:1]
    return hits


async def test_non_matching_faces_are_wiped_within_the_bound(e2e: E2E) -> None:
    from lfr.v1 import faces_pb2, frames_pb2
    from redis.asyncio import Redis

    from services.common.kafka import record_key
    from services.common.sealing import redis_key

    camera = e2e.cameras["crowd"]
    run = await e2e.run("crowd")
    assert not run.alerts and not run.matches, "nobody is enrolled for the crowd's deployment"

    mine = record_key(camera.id)  # frames and faces are keyed by camera id (other tests' bad input is not decoded)
    frames = [r for r in await read_records(e2e.layout.topics.frames, timeout_s=60) if r.key == mine]
    faces = [(r, faces_pb2.FaceObservation.FromString(r.value))
             for r in await read_records(e2e.layout.topics.faces, timeout_s=60) if r.key == mine]
    assert len(frames) == run.stats.published and faces, "the crowd's frames and faces went through Kafka"
    jpegs = [frames_pb2.Frame.FromString(r.value).image for r in frames]
    needles = [_middle(j) for j in jpegs] + [_middle(o.secret.ciphertext) for _, o in faces]
    ids = [o.observation_id.encode() for _, o in faces] + [o.secret.key_id.encode() for _, o in faces]
    last_append_s = max(r.timestamp for r in frames + [r for r, _ in faces]) / 1000

    redis = Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        # the crowd camera's frame keys still live now (ingest's FrameSealer): their bytes must never reach a disk
        frame_keys = [v async for k in redis.scan_iter(match=f"lfr:framekey:{camera.id}.*")
                      if (v := await redis.get(k))]
        left = [k for _, o in faces if await redis.exists(k := redis_key(o.secret.key_id))]
        assert not left, f"{len(left)} data key(s) of non-matches still in Redis after the matcher decided"

        wait = last_append_s + PRIVACY_BOUND_S - time.time()
        print(f"\nprivacy: {len(frames)} frames, {len(faces)} faces of the crowd, all non-matches; "
              f"waiting {max(wait, 0):.0f} s (bound {PRIVACY_BOUND_S:.0f} s after the last append)")
        await asyncio.sleep(max(wait, 0))

        # Kafka: every file of the broker
        kafka_dir = state_dir() / "data" / "kafka"
        hits = _scan_files(kafka_dir, needles)
        assert not hits, hits[:5]
        for topic in (e2e.layout.topics.frames, e2e.layout.topics.faces):
            for part in kafka_dir.rglob(f"{topic}-*"):
                logs = list(part.glob("*.log"))
                size = sum(f.stat().st_size for f in logs)
                assert size == 0, f"{part}: {size} record bytes still on disk after the bound"
                assert not any(b"\xff\xd8\xff" in f.read_bytes() for f in part.glob("*")), f"{part}: a JPEG"

        # Redis: every key, names and (string/hash) values
        big: list[tuple[str, int]] = []
        async for key in redis.scan_iter(count=1000):
            assert not any(i in key for i in ids), f"Redis key {key!r} names an observation"
            kind = (await redis.type(key)).decode()
            if kind == "string":
                values = [await redis.get(key) or b""]
            elif kind == "hash":
                values = list((await redis.hgetall(key)).values())
            else:
                continue
            for v in values:
                assert not any(n in v for n in needles), f"Redis key {key!r} holds crowd bytes"
                if len(v) > 64 * 1024:
                    big.append((key.decode(errors="replace"), len(v)))
        assert not [k for k in big if k[0].startswith("lfr:obs:")], big
    finally:
        await redis.aclose()

    # Redis's files: the local stack's data dir (services/stack/redis.py runs redis-server there)
    from services.stack.base import StackPaths
    from services.stack.manager import REPO_ROOT

    redis_dir = StackPaths.default(REPO_ROOT).data_dir("redis")
    assert redis_dir.is_dir(), f"{redis_dir}: the local stack's Redis data dir is missing"
    persisted = [p for p in redis_dir.rglob("*")
                 if p.is_file() and (p.suffix in (".rdb", ".aof") or "appendonly" in p.name)]
    assert not persisted, f"Redis wrote persistence files: {persisted}"
    hits = _scan_files(redis_dir, needles + ids + frame_keys)
    assert not hits, hits[:5]

    # Milvus: no vector but the enrolled ones (the services' own client settings)
    from services.common import clients
    from services.common.faces_schema import COLLECTION
    from services.common.milvus_collections import WATCHLISTS_COLLECTION
    from services.common.settings import MilvusSettings

    client = await clients.connect_milvus(MilvusSettings())
    try:
        rows = await asyncio.to_thread(client.query, COLLECTION, filter="id >= 0",
                                       output_fields=["watchlist_id", "deployment_id"], limit=16_000)
        lists = await asyncio.to_thread(client.query, WATCHLISTS_COLLECTION, filter='watchlist_id != ""',
                                        output_fields=["watchlist_id", "state"], limit=16_000)
    finally:
        client.close()
    assert not [r for r in rows if r["deployment_id"] == camera.deployment_id], "a vector of the crowd's deployment"
    known = {w["watchlist_id"] for w in lists if w["state"] == 2}  # open (WATCHLIST_STATE_ACTIVE)
    strays = [r for r in rows if r["watchlist_id"] not in known]
    assert not strays, f"{len(strays)} vector(s) outside any open watchlist"

    # the services' logs
    for log in sorted((state_dir() / "logs").glob("*.log")):
        data = log.read_bytes()
        assert not FLOAT_RUN.search(data), f"{log}: a run of 16+ floats (an embedding?)"
        assert not BASE64_RUN.search(data), f"{log}: a base64 run (a crop?)"
        assert b"\xff\xd8\xff" not in data, f"{log}: JPEG bytes"
        assert not any(n in data for n in needles), f"{log}: crowd bytes"
    print(f"privacy: after {PRIVACY_BOUND_S:.0f} s nothing of the crowd's {len(faces)} faces is left in Kafka "
          f"({kafka_dir}), Redis (keys and {redis_dir}), Milvus ({len(rows)} enrolled vectors, all in open "
          "watchlists) or the logs")
