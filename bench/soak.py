"""`lfr bench soak --cameras 20 --minutes 10 [--fps 5] [--sample-s 15] [--json OUT]`.

A long run of the REAL services (watchlist, recognizer, matcher, alerts, officers,
ingest; child processes on the local stack, ports of the brief + 5000, topics
``lfr.soak.<tag>.*.v1``, groups ``lfr-soak-<tag>-*``) with N looping cameras (the
demo clips in turn), Lin-Manuel Miranda enrolled, an officer on duty and a
subscribed device. Every ``--sample-s`` it records:

- each service's RSS (``VmRSS`` of /proc/<pid>/status);
- each consumer group's lag (committed offsets vs the topic's end, Kafka admin)
  and the services' own ``lfr_consumer_lag``;
- error counts: DLQ records (``lfr_dlq_messages_total``), handler errors
  (``lfr_handler_errors_total``), commit failures; frames dropped by ingest
  (backpressure, per reason) and by the recognizer (stale); alerts at the device.

Verdict: RSS growth from the first sample after the warm-up to the last < 10 % per
service; lag bounded (the recognizer's lag in the second half of the run never
exceeds 1.5x the maximum of the first half + one batch). 20 cameras x 5 fps is far
more than one CPU recognizer analyses, so this is also the backpressure check:
ingest sheds (drop-oldest, counted) and the recognizer drops stale frames
(``max_age_s``, counted) instead of letting the lag grow; alerts keep flowing.

Not part of the test suite; needs `lfr stack up` and the models.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import BOOTSTRAP, private_topics, require_healthy_stack

SOAK_PORT_OFFSET = 5000
CLIPS = ("hamilton_white_house_short_clip.mp4", "intel_walking_2_people.gif", "intel_classroom_4_people.gif",
         "intel_walking_and_pause_3_people.gif", "intel_head_pose_female_and_male.gif")
DEFAULT_ENROL = "Lin-Manuel Miranda=../shared/data/faces/lin_manuel_miranda_1.png"
WARMUP_S = 30.0
RSS_GROWTH_LIMIT = 0.10


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB (None: gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _sum(page: dict[Any, float], name: str, **labels: str) -> float:
    from services.cli.launch import metric

    return metric(page, name, **labels)


async def sample(pipeline: Any, groups: list[tuple[str, str]], admin: Any, consumer: Any, started: float,
                 device_alerts: int) -> dict[str, Any]:
    from services.cli.launch import group_lag, scrape

    row: dict[str, Any] = {"t_s": round(time.monotonic() - started, 1), "rss_kib": {}, "lag": {},
                           "consumer_lag_metric": {}, "device_alerts": device_alerts}
    pages: dict[str, dict[Any, float]] = {}
    for name, svc in pipeline.services.items():
        if svc.proc is not None:
            row["rss_kib"][name] = rss_kib(svc.proc.pid)
        try:
            pages[name] = await asyncio.to_thread(scrape, svc.metrics_port)
        except OSError:
            pages[name] = {}
    for group, topic in groups:
        row["lag"][group.rsplit("-", 1)[-1]] = await group_lag(admin, consumer, group, topic)
    for name, page in pages.items():
        lag = _sum(page, "lfr_consumer_lag")
        if any(n == "lfr_consumer_lag" for n, _ in page):
            row["consumer_lag_metric"][name] = lag
    ingest = pages.get("ingest", {})
    rec = pages.get("recognizer", {})
    row["errors"] = {
        "dlq": sum(_sum(p, "lfr_dlq_messages_total") for p in pages.values()),
        "handler_errors": sum(_sum(p, "lfr_handler_errors_total") for p in pages.values()),
        "commit_failures": sum(_sum(p, "lfr_commit_failures_total") for p in pages.values()),
    }
    row["frames"] = {
        "captured": _sum(ingest, "lfr_frames_captured_total"),
        "published": _sum(ingest, "lfr_frames_published_total"),
        "ingest_dropped": {r: _sum(ingest, "lfr_frames_dropped_total", reason=r)
                           for r in ("backpressure", "gated", "oversized", "error")},
        "recognizer_consumed": _sum(rec, "lfr_frames_consumed_total"),
        "recognizer_stale": _sum(rec, "lfr_frames_dropped_total", reason="stale"),
        "faces_embedded": _sum(rec, "lfr_faces_embedded_total"),
    }
    row["alerts_raised"] = _sum(pages.get("alerts", {}), "lfr_alerts_total")
    return row


def verdict(samples: list[dict[str, Any]], batch: int) -> dict[str, Any]:
    after = [s for s in samples if s["t_s"] >= WARMUP_S] or samples
    first, last = after[0], samples[-1]
    rss = {}
    for name, start in first["rss_kib"].items():
        end = last["rss_kib"].get(name)
        if start and end:
            rss[name] = {"start_mib": round(start / 1024, 1), "end_mib": round(end / 1024, 1),
                         "growth_pct": round(100 * (end - start) / start, 1)}
    half = len(after) // 2
    lag_max: dict[str, Any] = {}
    bounded = True
    for group in first["lag"]:
        series = [s["lag"][group] for s in after]
        a, b = (max(series[:half]) if half else 0), max(series[half:]) if series[half:] else 0
        ok = b <= 1.5 * a + batch
        bounded = bounded and ok
        lag_max[group] = {"first_half_max": a, "second_half_max": b, "last": series[-1], "bounded": ok}
    # the trend behind the two end points: each minute's highest RSS (a sawtooth of a batch's working set
    # that stops rising reads differently from a leak that keeps rising)
    per_minute: dict[str, list[float]] = {}
    for name in first["rss_kib"]:
        buckets: dict[int, float] = {}
        for s in samples:
            v = s["rss_kib"].get(name)
            if v:
                m = int(s["t_s"] // 60)
                buckets[m] = max(buckets.get(m, 0.0), round(v / 1024, 1))
        per_minute[name] = [buckets[m] for m in sorted(buckets)]
    return {"rss": rss, "rss_ok": all(v["growth_pct"] < 100 * RSS_GROWTH_LIMIT for v in rss.values()),
            "rss_max_per_minute_mib": per_minute,
            "lag": lag_max, "lag_bounded": bounded, "measured_from_s": first["t_s"]}


async def run_soak(cameras: int, minutes: float, fps: float, sample_s: float, enrol: str, say: Any) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    from services.cli.demo import DeviceListener, Enrolment, WatchlistClient, repo_path
    from services.cli.launch import OFFICERS, PIPELINE_ORDER, DutyOfficer, Pipeline, PipelineLayout, Topics, \
        state_dir, write_registry
    from services.common.cameras import Camera
    from services.common.topics import delete_topics
    from services.recognizer.config import RecognizerOptions

    await require_healthy_stack()
    enrolment = Enrolment.parse(enrol)
    tag, names = await private_topics("soak")
    bootstrap = BOOTSTRAP
    work = state_dir() / "soak" / tag
    zone, deployment = f"soak-{tag}-zone", f"soak-{tag}"
    video_dir = repo_path("../shared/data/video")
    cams = [Camera(id=f"soak-{tag}-c{i}", zone=zone, deployment_id=deployment,
                   source=str(video_dir / CLIPS[i % len(CLIPS)]), fps=fps, loop=True) for i in range(cameras)]
    layout = PipelineLayout(port_offset=SOAK_PORT_OFFSET, topics=Topics(**names), group_prefix=f"lfr-soak-{tag}",
                            cameras_file=work / "cameras.yaml", log_dir=state_dir() / "logs", log_prefix="soak-",
                            pid_dir=state_dir() / "pids" / "services")
    write_registry(layout.cameras_file, cams)
    groups = [*layout.consumer_groups(), (layout.group(OFFICERS), layout.topics.alerts)]
    pipeline = Pipeline(layout)
    client: WatchlistClient | None = None
    officer = DutyOfficer(f"soak-{tag}-officer", [zone])
    device: DeviceListener | None = None
    wl = ""
    samples: list[dict[str, Any]] = []
    result: dict[str, Any] = {"tag": tag, "cameras": cameras, "fps_per_camera": fps, "minutes": minutes,
                              "offered_fps": cameras * fps, "sample_s": sample_s}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    try:
        say(f"services: starting (ports +{SOAK_PORT_OFFSET}, logs {layout.log_dir}/soak-*.log)")
        await pipeline.start((*PIPELINE_ORDER, OFFICERS))
        client = WatchlistClient(layout.grpc_port("watchlist"))
        wl = await client.create(deployment, name="lfr soak", authorisation_ref=f"SOAK-{tag}",
                                 officer="soak officer", purpose="demo", criteria="lfr bench soak",
                                 valid_s=minutes * 60 + 3600)
        await client.enrol(wl, enrolment)
        await officer.start()
        device = DeviceListener(layout.grpc_port(OFFICERS), officer.officer_id, f"{officer.officer_id}-device",
                                {enrolment.subject_id: enrolment.name}, since_ns=time.time_ns())
        await device.start()
        await admin.start()
        await consumer.start()
        say(f"streaming {cameras} looping camera(s) x {fps:g} fps for {minutes:g} min ...")
        await pipeline.start(("ingest",))
        pids = {n: s.proc.pid for n, s in pipeline.services.items() if s.proc is not None}
        started = time.monotonic()
        end = started + minutes * 60
        while True:
            pipeline.check_alive()
            row = await sample(pipeline, groups, admin, consumer, started, len(device.views))
            samples.append(row)
            say(f"  t={row['t_s']:6.0f}s lag={row['lag']} rss_mib="
                f"{ {k: round((v or 0) / 1024) for k, v in row['rss_kib'].items()} } "
                f"stale={row['frames']['recognizer_stale']:.0f} "
                f"shed={row['frames']['ingest_dropped']['backpressure']:.0f}"
                f" alerts@device={row['device_alerts']} dlq={row['errors']['dlq']:.0f}")
            if time.monotonic() >= end:
                break
            await asyncio.sleep(min(sample_s, max(0.0, end - time.monotonic())))
        result["pids_unchanged"] = pids == {n: s.proc.pid for n, s in pipeline.services.items()
                                            if s.proc is not None}
    finally:
        if device is not None:
            await device.stop()
        await officer.stop()
        if client is not None:
            if wl:
                await client.close(wl, "soak done")
            await client.close_channel()
        await asyncio.to_thread(pipeline.stop)
        try:
            await consumer.stop()
            await admin.close()
        except Exception as e:  # not started
            say(f"(kafka admin close: {e})")
        await delete_topics(bootstrap, list(names.values()))
    result["samples"] = samples
    result |= verdict(samples, RecognizerOptions().batch_frames)
    last = samples[-1]
    result["totals"] = {"frames": last["frames"], "errors": last["errors"], "alerts_raised": last["alerts_raised"],
                        "device_alerts": last["device_alerts"]}
    return result


def summary(r: dict[str, Any]) -> str:
    lines = [f"soak {r['cameras']} cameras x {r['fps_per_camera']:g} fps ({r['offered_fps']:g} frames/s offered), "
             f"{r['minutes']:g} min; measured from t={r['measured_from_s']} s",
             "| service | RSS start MiB | RSS end MiB | growth % |", "|---|---|---|---|"]
    for name, v in r["rss"].items():
        lines.append(f"| {name} | {v['start_mib']} | {v['end_mib']} | {v['growth_pct']} |")
    for name, series in r.get("rss_max_per_minute_mib", {}).items():
        lines.append(f"RSS max per minute, {name}: {series}")
    lines += ["| group | lag max 1st half | lag max 2nd half | last | bounded |", "|---|---|---|---|---|"]
    for g, v in r["lag"].items():
        lines.append(f"| {g} | {v['first_half_max']} | {v['second_half_max']} | {v['last']} | {v['bounded']} |")
    t = r["totals"]
    lines.append(f"frames: {json.dumps(t['frames'])}; errors: {json.dumps(t['errors'])}; alerts raised "
                 f"{t['alerts_raised']:.0f}, at the device {t['device_alerts']}; RSS ok: {r['rss_ok']}, "
                 f"lag bounded: {r['lag_bounded']}, PIDs unchanged: {r.get('pids_unchanged')}")
    return "\n".join(lines)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("soak", help="long run: RSS per service, consumer lag over time, error counts")
    p.add_argument("--cameras", type=int, default=20, help="looping cameras (default 20)")
    p.add_argument("--minutes", type=float, default=10.0, help="how long to stream (default 10)")
    p.add_argument("--fps", type=float, default=5.0, help="frames per second per camera (default 5)")
    p.add_argument("--sample-s", type=float, default=15.0, help="seconds between samples (default 15)")
    p.add_argument("--enrol", default=DEFAULT_ENROL, help="NAME=IMAGE enrolled in the soak watchlist")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write the full result as JSON to OUT")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from services.common.errors import SetupError

    if not 1 <= args.cameras <= 64:
        raise SetupError(f"--cameras {args.cameras} is out of range", "give 1..64")
    if not 0.5 <= args.minutes <= 24 * 60:
        raise SetupError(f"--minutes {args.minutes:g} is out of range", "give 0.5..1440")
    if not 1 <= args.sample_s <= 600:
        raise SetupError(f"--sample-s {args.sample_s:g} is out of range", "give 1..600")

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = asyncio.run(run_soak(args.cameras, args.minutes, args.fps, args.sample_s, args.enrol, say))
    print(summary(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    ok = result["rss_ok"] and result["lag_bounded"] and result.get("pids_unchanged", False)
    return 0 if ok else 1
