"""`lfr bench pipeline --cameras N[,N...] --seconds S [--fps F[,F...]] [--json OUT]`.

Streams N looping cameras (the Hamilton clip, one enrolled subject, an officer
on duty in the cameras' zone, a subscribed device) through the REAL services
(ingest -> recognizer -> matcher -> alerts -> officers, as child processes on
the local stack: ports of the brief + 4000, topics ``lfr.bench.<tag>.*.v1``,
groups ``lfr-bench-<tag>-*``) and compares it, in the same run, with a raw
in-process loop of the same models (``services.face.FacePipeline`` over the
in-process ``OnnxRunner``, the same frames, the same cores, while the services
are idle).

Method
- Frames: the clip sampled at the cameras' fps and JPEG-encoded exactly as
  ingest does (``VideoSource`` + ``encode_jpeg`` with the camera's width and
  quality), decoded back to RGB as the recognizer does.
- Raw loop: (a) throughput: ``analyse`` over all frames in chunks of the
  recognizer's ``batch_frames`` (one warm-up chunk first), frames/s;
  (b) model time per frame: ``analyse([frame])`` for every frame (batch 1),
  twice; the faster of the two counts (the box is shared), split at the
  embedder's first call into detection and embedding.
- Pipeline throughput: frames the recognizer analysed (consumed minus the ones
  it dropped as stale) per second, from its /metrics, between the end of a
  warm-up and the end of streaming. Ratio = pipeline fps / raw fps. Below the
  pipeline's capacity the pipeline fps is simply the offered load, so the ratio
  says something about overhead only in a row where the offer exceeds capacity
  (``saturated``).
- Added latency per frame: (broker append time of the frame's face
  observations on the faces topic - the frame's capture time) - the raw batch-1
  model time of the same frame (frame ``seq`` -> sampled index ``(seq-1) mod L``;
  a looping camera re-samples the clip with the same period, so later passes may
  pick a neighbouring source frame: same faces, same model time to within noise).
  A second figure, "added vs served": the same, minus the frame's batch-1 time
  through the SAME Triton server called directly from the bench (FacePipeline
  over the recognizer's runner), measured right after the row with the
  services idle: what Kafka and the services add beyond the models as served.
  On a shared box the in-process reference can be slower than Triton (the
  ONNX Runtime threads compete with other jobs), which makes the first figure
  negative at the median; the second compares like with like.
  Only frames captured inside the measured window and with at least one face
  that passed the quality gate have an observation; p50/p95/p99 over those.
- Sustained: no frame dropped as stale by the recognizer and none by ingest's
  backpressure in the window, >= 95 % of the offered frames analysed, the
  pipeline drained within 5 s of the cameras stopping, and no growing queue:
  the median frame-to-observation latency of the frames captured in the last
  quarter of the window exceeds that of the first quarter by <= 250 ms
  (``backlog_growth_ms``; a row can drain within 5 s and still have fallen
  seconds behind during it).
- Rows: every (cameras, fps) pair of the two comma lists, in order of offered
  load; the raw loop runs once per fps (the sampled frames differ).
- Hop medians (ms): capture -> frame record appended (ingest: sampling wait,
  encode, producer linger, broker ack), frame appended -> detection done
  (recognizer: consumer fetch, queueing behind the previous batch, decode,
  detection), detection -> embedding done, embedding -> faces record appended,
  faces record -> match record (matcher), match -> alert raised, alert -> on the
  device.

Not part of the test suite; needs `lfr stack up` and the models.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import BOOTSTRAP, private_topics, require_healthy_stack

BENCH_PORT_OFFSET = 4000
DEFAULT_VIDEO = Path("../shared/data/video/hamilton_white_house_short_clip.mp4")
DEFAULT_ENROL = "Lin-Manuel Miranda=../shared/data/faces/lin_manuel_miranda_1.png"
WARMUP_S = 4.0
RAW_REPS = 2
DRAIN_SUSTAINED_S = 5.0
# a queue that grows during the row: frames captured in the window's last quarter waited this much longer (median)
# than those of its first quarter. A pipeline that keeps up has the same latency all along.
BACKLOG_GROWTH_MAX_MS = 250.0
TARGET_RATIO = 0.9
TARGET_ADDED_P95_MS = 50.0


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return round(float(np.percentile(np.asarray(values), q)), 1)


def median(values: list[float]) -> float | None:
    return pct(values, 50)


# --- the raw loop --------------------------------------------------------------------------

@dataclasses.dataclass
class RawResult:
    frames: int
    batch: int
    fps: float
    model_ms: list[float]  # batch-1 time of each sampled frame (detection + embedding)
    detect_ms: list[float]  # its detection part (until the embedder's first call)


def sample_frames(video: Path, fps: float, max_width: int, quality: int) -> list[Any]:
    """The clip's frames as ingest samples and encodes them, decoded back to RGB."""
    import cv2

    from services.common.cameras import Camera
    from services.ingest.sources import encode_jpeg, open_source
    from services.recognizer.worker import decode_jpeg

    cam = Camera(id="bench-sample", zone="bench", deployment_id="bench", source=str(video), fps=fps, loop=False,
                 max_width=max_width, jpeg_quality=quality)
    src = open_source(cam)
    src.open()
    out = []
    try:
        while (raw := src.next_sampled()) is not None:
            jpeg, _, _ = encode_jpeg(raw.image, max_width, quality)
            out.append(cv2.cvtColor(decode_jpeg(jpeg), cv2.COLOR_BGR2RGB))
    finally:
        src.close()
    return out


async def raw_loop(frames: list[Any], batch: int, reps: int = RAW_REPS) -> RawResult:
    """Throughput at ``batch``, then each frame alone ``reps`` times: its model time is the
    fastest of the repetitions (the box is shared: the slower ones measure other jobs)."""
    from services.face.pipeline import FacePipeline
    from services.face.runner import OnnxRunner
    from services.recognizer.config import RecognizerSettings
    from services.recognizer.runners import StageClock

    runner = OnnxRunner()
    config = RecognizerSettings().face
    pipeline = FacePipeline(runner, config)
    await pipeline.analyse(frames[:batch])  # sessions created, caches warm
    started = time.perf_counter()
    for i in range(0, len(frames), batch):
        await pipeline.analyse(frames[i:i + batch])
    fps = len(frames) / (time.perf_counter() - started)
    model_ms = [float("inf")] * len(frames)
    detect_ms = [float("inf")] * len(frames)
    for _ in range(reps):
        for k, f in enumerate(frames):
            clock = StageClock(runner, config.embedder)
            t = time.perf_counter()
            await FacePipeline(clock, config).analyse([f])
            end = time.perf_counter()
            if (end - t) * 1000 < model_ms[k]:
                model_ms[k] = (end - t) * 1000
                detect_ms[k] = ((clock.embed_start or end) - t) * 1000
    return RawResult(frames=len(frames), batch=batch, fps=round(fps, 2), model_ms=model_ms, detect_ms=detect_ms)


async def triton_batch1(frames: list[Any]) -> tuple[list[float], list[float]]:
    """Each frame alone through ``FacePipeline`` over the SAME Triton server the recognizer
    uses (the recognizer's runner: two TritonClients behind a CappedRunner), from this
    process: the model time as served, without Kafka or the services. Returns per frame
    (total ms, detection ms)."""
    from services.common.triton_client import TritonClient, TritonClientSettings
    from services.face.pipeline import FacePipeline
    from services.recognizer.config import RecognizerOptions, RecognizerSettings
    from services.recognizer.runners import CappedRunner, StageClock

    opts = RecognizerOptions()
    face = RecognizerSettings().face
    base = TritonClientSettings(max_delay_ms=opts.batch_delay_ms)
    runner = CappedRunner(TritonClient(base.model_copy(update={"max_batch": opts.detector_max_batch})),
                          TritonClient(base.model_copy(update={"max_batch": opts.model_max_batch})))
    total, detect = [], []
    try:
        await FacePipeline(runner, face).analyse(frames[:1])  # channel up, output names known
        for f in frames:
            clock = StageClock(runner, face.embedder)
            t = time.perf_counter()
            await FacePipeline(clock, face).analyse([f])
            end = time.perf_counter()
            total.append((end - t) * 1000)
            detect.append(((clock.embed_start or end) - t) * 1000)
    finally:
        await runner.close()
    return total, detect


# --- watching the pipeline's topics -----------------------------------------------------------

class TopicWatch:
    """Reads the faces, matches and alerts topics from their end while a row runs."""

    def __init__(self, bootstrap: str, topics: Any) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.obs: dict[tuple[str, int], dict[str, int]] = {}  # (camera, seq) -> times (ns)
        self.frames: dict[tuple[str, int], int] = {}  # (camera, seq) -> frame record appended (ns)
        self.matches: list[dict[str, int]] = []
        self.alerts: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._consumer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer

        self._consumer = AIOKafkaConsumer(self.topics.frames, self.topics.faces, self.topics.matches,
                                          self.topics.alerts,
                                          bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                          auto_offset_reset="latest", max_partition_fetch_bytes=8 * 1024 * 1024,
                                          fetch_max_wait_ms=100)
        await self._consumer.start()
        await self._consumer.seek_to_end()
        for tp in self._consumer.assignment():
            await self._consumer.position(tp)  # resolve "end" now, before the row streams
        self._task = asyncio.create_task(self._read(), name="bench-topics")

    async def _read(self) -> None:
        from lfr.v1 import alerts_pb2, faces_pb2, frames_pb2, matches_pb2

        while True:
            for tp, recs in (await self._consumer.getmany(timeout_ms=200)).items():
                for r in recs:
                    ts_ns = int(r.timestamp) * 1_000_000
                    if tp.topic == self.topics.frames:
                        f = frames_pb2.Frame.FromString(r.value)
                        self.frames[(f.camera_id, int(f.seq))] = ts_ns
                    elif tp.topic == self.topics.faces:
                        o = faces_pb2.FaceObservation.FromString(r.value)
                        key = (o.frame.camera_id, int(o.frame.seq))
                        prev = self.obs.get(key)
                        if prev is None or ts_ns > prev["faces_ns"]:
                            self.obs[key] = {"capture_ns": o.frame.capture_unix_ns, "detect_ns": o.detect_unix_ns,
                                             "embed_ns": o.embed_unix_ns, "faces_ns": ts_ns}
                    elif tp.topic == self.topics.matches:
                        m = matches_pb2.MatchCandidate.FromString(r.value)
                        self.matches.append({"camera": m.frame.camera_id, "seq": int(m.frame.seq),
                                             "capture_ns": m.frame.capture_unix_ns, "match_ns": ts_ns})
                    else:
                        a = alerts_pb2.Alert.FromString(r.value)
                        self.alerts.append({"alert_id": a.alert_id, "camera": a.camera_id,
                                            "capture_ns": a.capture_unix_ns, "alert_ns": a.alert_unix_ns,
                                            "subject": a.subject_id})

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()


# --- one row of the sweep -------------------------------------------------------------------

def _recognizer_counts(samples: dict[Any, float]) -> tuple[float, float]:
    from services.cli.launch import metric

    consumed = metric(samples, "lfr_frames_consumed_total")
    dropped = metric(samples, "lfr_frames_dropped_total")  # stale / error in the recognizer
    return consumed, dropped


async def run_row(pipeline: Any, cams: list[Any], registry: Path, seconds: float, raw: RawResult,
                  watch: TopicWatch, device: Any, frames: list[Any]) -> dict[str, Any]:
    from services.cli.launch import metric, scrape, wait_drained, write_registry

    layout = pipeline.layout
    rec_port = layout.metrics_port("recognizer")
    write_registry(registry, cams)
    ids = {c.id for c in cams}
    n_dev = len(device.views)
    await watch.start()
    await pipeline.start(("ingest",), ingest_cameras=registry)
    ing_port = pipeline.services["ingest"].metrics_port
    await asyncio.sleep(WARMUP_S)
    r0, i0, t0_ns, t0 = scrape(rec_port), scrape(ing_port), time.time_ns(), time.monotonic()
    while time.monotonic() - t0 < seconds:
        pipeline.check_alive()
        await asyncio.sleep(0.5)
    r1, i1, t1_ns, t1 = scrape(rec_port), scrape(ing_port), time.time_ns(), time.monotonic()
    await asyncio.to_thread(pipeline.stop, ("ingest",))
    stopped = time.monotonic()
    await wait_drained(layout, timeout_s=180, alive=pipeline.check_alive)
    drain_s = time.monotonic() - stopped
    await asyncio.sleep(1.0)  # the last alerts' routing and delivery
    await watch.stop()
    window = t1 - t0
    served_ms, served_detect_ms = await triton_batch1(frames)  # right after the row, services idle

    def delta(a: dict[Any, float], b: dict[Any, float], name: str, **labels: str) -> float:
        return metric(b, name, **labels) - metric(a, name, **labels)

    published = sum(delta(i0, i1, "lfr_frames_published_total", camera=c) for c in ids)
    ingest_dropped = sum(delta(i0, i1, "lfr_frames_dropped_total", camera=c) for c in ids)
    (c0, d0), (c1, d1) = _recognizer_counts(r0), _recognizer_counts(r1)
    analysed = (c1 - c0) - (d1 - d0)
    stale = d1 - d0
    offered_fps = published / window
    pipeline_fps = analysed / window
    # latency per frame captured in the window
    L = raw.frames
    e2e, added, added_served, hop_detect, hop_embed, hop_publish = [], [], [], [], [], []
    hop_append, hop_fetch_detect, pre_detect = [], [], []
    by_quarter: list[list[float]] = [[], [], [], []]  # frame-to-observation latency by quarter of the window
    for (cam, seq), t in watch.obs.items():
        if cam not in ids or not t0_ns <= t["capture_ns"] <= t1_ns:
            continue
        lat_ms = (t["faces_ns"] - t["capture_ns"]) / 1e6
        e2e.append(lat_ms)
        quarter = min(3, int(4 * (t["capture_ns"] - t0_ns) / max(t1_ns - t0_ns, 1)))
        by_quarter[quarter].append(lat_ms)
        added.append(lat_ms - raw.model_ms[(seq - 1) % L])
        added_served.append(lat_ms - served_ms[(seq - 1) % L])
        hop_detect.append((t["detect_ns"] - t["capture_ns"]) / 1e6)
        appended = watch.frames.get((cam, seq))
        if appended is not None:
            hop_append.append((appended - t["capture_ns"]) / 1e6)
            hop_fetch_detect.append((t["detect_ns"] - appended) / 1e6)
            pre_detect.append((t["detect_ns"] - appended) / 1e6 - served_detect_ms[(seq - 1) % L])
        hop_embed.append((t["embed_ns"] - t["detect_ns"]) / 1e6)
        hop_publish.append((t["faces_ns"] - t["embed_ns"]) / 1e6)
    hop_match = [(m["match_ns"] - watch.obs[(m["camera"], m["seq"])]["faces_ns"]) / 1e6
                 for m in watch.matches if m["camera"] in ids and (m["camera"], m["seq"]) in watch.obs]
    best_match: dict[tuple[str, int], int] = {}
    for m in watch.matches:
        best_match[(m["camera"], m["capture_ns"])] = m["match_ns"]
    alerts = [a for a in watch.alerts if a["camera"] in ids]
    hop_alert = [(a["alert_ns"] - best_match[(a["camera"], a["capture_ns"])]) / 1e6
                 for a in alerts if (a["camera"], a["capture_ns"]) in best_match]
    f2a = [(a["alert_ns"] - a["capture_ns"]) / 1e6 for a in alerts]
    dev = [v for v in device.views[n_dev:] if v.camera in ids]
    hop_device = [v.frame_to_device_ms - v.frame_to_alert_ms for v in dev]
    first, last = median(by_quarter[0]), median(by_quarter[3])
    backlog_growth_ms = round(last - first, 1) if first is not None and last is not None else None
    sustained = (stale == 0 and ingest_dropped == 0 and published > 0 and analysed >= 0.95 * published
                 and drain_s <= DRAIN_SUSTAINED_S
                 and (backlog_growth_ms is None or backlog_growth_ms <= BACKLOG_GROWTH_MAX_MS))
    return {
        "cameras": len(cams), "fps_per_camera": cams[0].fps, "window_s": round(window, 1),
        "offered_fps": round(offered_fps, 2), "pipeline_fps": round(pipeline_fps, 2),
        "raw_fps": raw.fps, "ratio": round(pipeline_fps / raw.fps, 3) if raw.fps else None,
        "saturated": analysed < 0.95 * published or stale > 0, "sustained": sustained,
        "published": int(published), "analysed": int(analysed), "stale_dropped": int(stale),
        "ingest_dropped": int(ingest_dropped), "drain_s": round(drain_s, 1),
        "backlog_growth_ms": backlog_growth_ms,
        "frames_with_faces": len(e2e),
        "frame_to_observation_ms": {"p50": pct(e2e, 50), "p95": pct(e2e, 95), "p99": pct(e2e, 99)},
        "added_ms": {"p50": pct(added, 50), "p95": pct(added, 95), "p99": pct(added, 99)},
        "added_vs_served_ms": {"p50": pct(added_served, 50), "p95": pct(added_served, 95),
                               "p99": pct(added_served, 99)},
        "model_ms_served_batch1": {"p50": pct(served_ms, 50), "p95": pct(served_ms, 95),
                                   "detect_p50": pct(served_detect_ms, 50)},
        "model_ms_batch1": {"p50": pct(raw.model_ms, 50), "p95": pct(raw.model_ms, 95),
                            "detect_p50": pct(raw.detect_ms, 50)},
        "hops_median_ms": {"capture_to_frame_record": median(hop_append),
                           "frame_record_to_detected": median(hop_fetch_detect),
                           "frame_record_to_detected_minus_served_detect": median(pre_detect),
                           "capture_to_detected": median(hop_detect), "detected_to_embedded": median(hop_embed),
                           "embedded_to_faces_record": median(hop_publish), "faces_to_match": median(hop_match),
                           "match_to_alert": median(hop_alert), "alert_to_device": median(hop_device)},
        "alerts": len(alerts), "device_alerts": len(dev),
        "frame_to_alert_ms": sorted(round(x) for x in f2a),
        "frame_to_device_ms": sorted(round(v.frame_to_device_ms) for v in dev),
    }


# --- the whole run ----------------------------------------------------------------------------

async def run_bench(counts: list[int], seconds: float, fps_list: list[float], video: Path, enrol: str,
                    say: Any) -> dict[str, Any]:
    from services.cli.demo import DeviceListener, Enrolment, WatchlistClient
    from services.cli.launch import (
        OFFICERS,
        PIPELINE_ORDER,
        DutyOfficer,
        Pipeline,
        PipelineLayout,
        Topics,
        state_dir,
        write_registry,
    )
    from services.common.cameras import Camera
    from services.common.topics import delete_topics
    from services.recognizer.config import RecognizerOptions

    await require_healthy_stack()
    enrolment = Enrolment.parse(enrol)
    tag, names = await private_topics("bench")
    bootstrap = BOOTSTRAP
    work = state_dir() / "bench" / tag
    zone, deployment = f"bench-{tag}-zone", f"bench-{tag}"
    plan = sorted(((n, f) for n in counts for f in fps_list), key=lambda nf: (nf[0] * nf[1], nf[0]))
    rows_cams = {(n, f): [Camera(id=f"bench-{tag}-n{n}-f{f:g}-c{i}".replace(".", "_"), zone=zone,
                                 deployment_id=deployment, source=str(video), fps=f, loop=True) for i in range(n)]
                 for n, f in plan}
    layout = PipelineLayout(port_offset=BENCH_PORT_OFFSET, topics=Topics(**names), group_prefix=f"lfr-bench-{tag}",
                            cameras_file=work / "cameras.yaml", log_dir=state_dir() / "logs", log_prefix="bench-",
                            pid_dir=state_dir() / "pids" / "services")
    write_registry(layout.cameras_file, [c for cams in rows_cams.values() for c in cams])
    cam0 = rows_cams[plan[0]][0]
    batch = RecognizerOptions().batch_frames
    frames: dict[float, list[Any]] = {}
    for f in fps_list:
        say(f"sampling {video.name} at {f:g} fps as ingest does ...")
        frames[f] = await asyncio.to_thread(sample_frames, video, f, cam0.max_width, cam0.jpeg_quality)
    pipeline = Pipeline(layout)
    client: WatchlistClient | None = None
    officer = DutyOfficer(f"bench-{tag}-officer", [zone])
    device: DeviceListener | None = None
    wl = ""
    result: dict[str, Any] = {"tag": tag, "video": video.name, "batch_frames": batch, "seconds": seconds,
                              "fps_per_camera": fps_list, "raw": {}, "rows": []}
    try:
        say(f"services: starting (ports +{BENCH_PORT_OFFSET}, logs {layout.log_dir}/bench-*.log)")
        await pipeline.start((*PIPELINE_ORDER, OFFICERS))
        client = WatchlistClient(layout.grpc_port("watchlist"))
        wl = await client.create(deployment, name="lfr bench", authorisation_ref=f"BENCH-{tag}",
                                 officer="bench officer", purpose="demo", criteria="lfr bench pipeline")
        await client.enrol(wl, enrolment)
        await officer.start()
        device = DeviceListener(layout.grpc_port(OFFICERS), officer.officer_id, f"{officer.officer_id}-device",
                                {enrolment.subject_id: enrolment.name}, since_ns=time.time_ns())
        await device.start()
        raws: dict[float, RawResult] = {}
        for f in fps_list:
            say(f"raw loop: FacePipeline + OnnxRunner in-process over {len(frames[f])} frames sampled at {f:g} fps "
                f"(batch {batch}, then 1) ...")
            raw = raws[f] = await raw_loop(frames[f], batch)
            result["raw"][f"{f:g}"] = {"fps": raw.fps, "batch": raw.batch, "frames": raw.frames,
                                       "model_ms_batch1_p50": pct(raw.model_ms, 50),
                                       "model_ms_batch1_p95": pct(raw.model_ms, 95)}
            say(f"raw loop: {raw.fps:.2f} frames/s at batch {batch}; batch-1 model time p50 "
                f"{pct(raw.model_ms, 50)} ms")
        watch = TopicWatch(bootstrap, layout.topics)
        for n, f in plan:
            say(f"row: {n} camera(s) x {f:g} fps for {seconds:g} s (+{WARMUP_S:g} s warm-up) ...")
            row = await run_row(pipeline, rows_cams[(n, f)], work / f"ingest-{n}-{f:g}.yaml", seconds, raws[f],
                                watch, device, frames[f])
            result["rows"].append(row)
            say("  " + json.dumps(row))
            watch = TopicWatch(bootstrap, layout.topics)
    finally:
        if device is not None:
            await device.stop()
        await officer.stop()
        if client is not None:
            if wl:
                await client.close(wl, "bench done")
            await client.close_channel()
        await asyncio.to_thread(pipeline.stop)
        await delete_topics(bootstrap, list(names.values()))
    sustained = [r for r in result["rows"] if r["sustained"]]
    best = max(sustained, key=lambda r: r["offered_fps"]) if sustained else None
    top = max(result["rows"], key=lambda r: r["pipeline_fps"]) if result["rows"] else None
    result["highest_sustained"] = f"{best['cameras']} x {best['fps_per_camera']:g} fps" if best else None
    result["capacity_ratio"] = top["ratio"] if top else None
    result["targets"] = {
        "ratio_at_highest_sustained": best["ratio"] if best else None,
        "added_p95_at_highest_sustained_ms": best["added_ms"]["p95"] if best else None,
        "ratio_met": bool(best and best["ratio"] is not None and best["ratio"] >= TARGET_RATIO),
        "added_p95_met": bool(best and best["added_ms"]["p95"] is not None
                              and best["added_ms"]["p95"] <= TARGET_ADDED_P95_MS),
        "added_vs_served_p95_at_highest_sustained_ms": best["added_vs_served_ms"]["p95"] if best else None,
    }
    return result


def table(result: dict[str, Any]) -> str:
    lines = ["| cameras x fps | offered fps | pipeline fps | raw fps | ratio | sustained | added p50/p95/p99 ms "
             "| added vs served p50/p95/p99 ms | frame-to-obs p50/p95 ms | stale / ingest drops | drain s "
             "| backlog growth ms |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        a, e, v = r["added_ms"], r["frame_to_observation_ms"], r["added_vs_served_ms"]
        lines.append(f"| {r['cameras']} x {r['fps_per_camera']:g} | {r['offered_fps']} | {r['pipeline_fps']} | "
                     f"{r['raw_fps']} | {r['ratio']} | {'yes' if r['sustained'] else 'no'} | "
                     f"{a['p50']} / {a['p95']} / {a['p99']} | {v['p50']} / {v['p95']} / {v['p99']} | "
                     f"{e['p50']} / {e['p95']} | "
                     f"{r['stale_dropped']} / {r['ingest_dropped']} | {r['drain_s']} | {r['backlog_growth_ms']} |")
    lines += ["", "| cameras x fps | capture -> frame record | frame record -> detected (- served detect) "
              "| detected -> embedded | embedded -> faces record | faces -> match | match -> alert | alert -> device "
              "| batch-1 model p50 (detect): raw / served |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        h = r["hops_median_ms"]
        lines.append(f"| {r['cameras']} x {r['fps_per_camera']:g} | {h['capture_to_frame_record']} | "
                     f"{h['frame_record_to_detected']} ({h['frame_record_to_detected_minus_served_detect']}) | "
                     f"{h['detected_to_embedded']} | {h['embedded_to_faces_record']} "
                     f"| {h['faces_to_match']} | {h['match_to_alert']} | {h['alert_to_device']} | "
                     f"{r['model_ms_batch1']['p50']} ({r['model_ms_batch1']['detect_p50']}) / "
                     f"{r['model_ms_served_batch1']['p50']} ({r['model_ms_served_batch1']['detect_p50']}) |")
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("pipeline", help="whole-pipeline throughput vs the raw model loop, and the latency it adds")
    p.add_argument("--cameras", default="1,2,4",
                   help="cameras streamed at once; a comma list sweeps (default 1,2,4)")
    p.add_argument("--seconds", type=float, default=30.0, help="measured seconds per row (after a warm-up)")
    p.add_argument("--fps", default="5", help="frames per second per camera; a comma list sweeps (default 5)")
    p.add_argument("--video", type=Path, default=None, help="looping video (default: the Hamilton clip)")
    p.add_argument("--enrol", default=DEFAULT_ENROL, help="NAME=IMAGE enrolled in the bench watchlist")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the full result as JSON to OUT")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from services.cli.demo import repo_path
    from services.common.errors import SetupError

    try:
        counts = sorted({int(x) for x in str(args.cameras).split(",") if x.strip()})
    except ValueError:
        raise SetupError(f"--cameras {args.cameras!r} is not a number or a comma list", "e.g. --cameras 1,2,4")
    if not counts or min(counts) < 1 or max(counts) > 32:
        raise SetupError(f"--cameras {args.cameras!r} is out of range", "give 1..32 cameras")
    try:
        fps_list = sorted({float(x) for x in str(args.fps).split(",") if x.strip()})
    except ValueError:
        raise SetupError(f"--fps {args.fps!r} is not a number or a comma list", "e.g. --fps 1,2,3")
    if not fps_list or min(fps_list) <= 0 or max(fps_list) > 30:
        raise SetupError(f"--fps {args.fps!r} is out of range", "give 0 < F <= 30")
    if not 5 <= args.seconds <= 3600:
        raise SetupError(f"--seconds {args.seconds:g} is out of range", "give 5 <= S <= 3600")
    video = repo_path(args.video or DEFAULT_VIDEO)
    if not video.is_file():
        raise SetupError(f"video {video} does not exist", "pass --video PATH")

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = asyncio.run(run_bench(counts, args.seconds, fps_list, video, args.enrol, say))
    print(table(result))
    t = result["targets"]
    print(f"highest sustained: {result['highest_sustained']}; ratio there {t['ratio_at_highest_sustained']} "
          f"(target >= {TARGET_RATIO}: {'met' if t['ratio_met'] else 'NOT met'}), added p95 "
          f"{t['added_p95_at_highest_sustained_ms']} ms (target <= {TARGET_ADDED_P95_MS:g}: "
          f"{'met' if t['added_p95_met'] else 'NOT met'}); ratio at capacity {result['capacity_ratio']}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0
