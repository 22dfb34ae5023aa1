"""Run the pipeline's services as child processes (``python -m services.<name>``),
for ``lfr demo``, ``lfr up`` and the e2e tests.

:class:`PipelineLayout` says where everything goes (ports, topics, consumer
groups, camera registries, logs); the default is the platform's own (ports of
the brief, the real topics); the e2e tests shift the ports by 3000 and use their
own topics and groups. :class:`ServiceProcess` is one child: its own process
group, stdout+stderr (JSON log lines) to ``<logs>/<prefix><name>.log``, health
over gRPC, SIGTERM then SIGKILL to stop. :func:`wait_drained` waits until every
consumer group of the pipeline has committed up to the end of its topic (each
service commits only after it has published its output, so that is "everything
streamed so far has gone through")."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from services.common import topics
from services.common.cameras import Camera
from services.common.errors import SetupError
from services.common.paths import REPO_ROOT
from services.common.ports import CONSOLE_HTTP_PORT, CONSOLE_METRICS_PORT, SERVICE_PORTS
from services.stack.base import port_in_use

ServiceName = Literal["ingest", "recognizer", "matcher", "alerts", "watchlist", "officers"]
# gRPC and metrics ports of the brief (before the layout's offset)
BASE_PORTS = SERVICE_PORTS
# start order: the consumers and the watchlist first, ingest (which starts streaming at once) last
PIPELINE_ORDER: tuple[ServiceName, ...] = ("watchlist", "recognizer", "matcher", "alerts")
# the officers service (availability, routing alerts to devices): started by lfr demo / lfr up and by the e2e
# tests that need devices; after ingest, stopped before the pipeline's consumers
OFFICERS: ServiceName = "officers"
# the operator console (lfr up): HTTP and metrics ports (before the layout's offset); stopped first
CONSOLE = "console"
CONSOLE_PORTS: tuple[int, int] = (CONSOLE_HTTP_PORT, CONSOLE_METRICS_PORT)


def state_dir() -> Path:
    return Path(os.environ.get("LFR_STATE", REPO_ROOT / ".lfr"))


class Topics(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    frames: str = Field(topics.FRAMES.name, description="camera frames")
    faces: str = Field(topics.FACES.name, description="sealed face observations")
    matches: str = Field(topics.MATCHES.name, description="match candidates")
    alerts: str = Field(topics.ALERTS.name, description="alerts")
    dlq: str = Field(topics.DLQ.name, description="dead letters")
    audit: str = Field(topics.AUDIT.name, description="audit chain")


class PipelineLayout(BaseModel):
    """Where one run of the pipeline lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    port_offset: int = Field(0, ge=0, le=10_000, description="added to every gRPC and metrics port of the brief")
    topics: Topics = Field(default_factory=Topics, description="topic names")
    group_prefix: str = Field("lfr", min_length=1, description="consumer groups are <prefix>-<service>")
    cameras_file: Path = Field(..., description="camera registry of the recognizer and matcher (absolute)")
    log_dir: Path = Field(..., description="where <log_prefix><service>.log files go")
    log_prefix: str = Field("", description="prefix of the log file names")
    pid_dir: Path | None = Field(None, description="pid files of the children (None: none written)")
    auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest", description="where a NEW consumer group starts; earliest so that nothing streamed while a "
                                "group was still joining is skipped (stale frames are dropped by the recognizer)")
    bootstrap: str = Field("127.0.0.1:9092", min_length=1, description="Kafka")
    tls: bool = Field(True, description="mTLS on every gRPC server with the dev PKI (`lfr certs init`, run at start)")
    embedder: str | None = Field(
        None, description="face.embedder of the services that embed or search faces (recognizer, watchlist, "
                          "matcher); None: LFR_FACE__EMBEDDER as inherited, else the default")
    accept_licence: str | None = Field(
        None, description="face.accept_licence of those services, for an embedder whose terms need it; None: "
                          "LFR_FACE__ACCEPT_LICENCE as inherited")

    def grpc_port(self, service: str) -> int:
        return BASE_PORTS[service][0] + self.port_offset

    def metrics_port(self, service: str) -> int:
        return BASE_PORTS[service][1] + self.port_offset

    def group(self, service: str) -> str:
        return f"{self.group_prefix}-{service}"

    def log_file(self, service: str) -> Path:
        return self.log_dir / f"{self.log_prefix}{service}.log"

    def env(self, service: str, ingest_cameras: Path | None = None) -> dict[str, str]:
        """The LFR_* settings of one service for this layout."""
        t = self.topics
        env = {
            "LFR_GRPC__PORT": str(self.grpc_port(service)),
            "LFR_METRICS__PORT": str(self.metrics_port(service)),
            "LFR_KAFKA__BOOTSTRAP": self.bootstrap,
            "LFR_KAFKA__DLQ_TOPIC": t.dlq,
            "LFR_KAFKA__AUTO_OFFSET_RESET": self.auto_offset_reset,
        }
        if self.tls:
            from services.common.grpc_client import server_env

            env |= server_env(service, audit_topic=t.audit)
        else:
            env["LFR_GRPC__DEV_PKI"] = "false"  # plaintext, even where the dev PKI exists
        if service in ("recognizer", "matcher", "watchlist"):
            if self.embedder is not None:
                env["LFR_FACE__EMBEDDER"] = self.embedder
            if self.accept_licence is not None:
                env["LFR_FACE__ACCEPT_LICENCE"] = self.accept_licence
        if service == "ingest":
            env |= {"LFR_INGEST__FRAMES_TOPIC": t.frames, "LFR_INGEST__AUDIT_TOPIC": t.audit,
                    "LFR_INGEST__CAMERAS_FILE": str(ingest_cameras or self.cameras_file)}
        elif service == "recognizer":
            env |= {"LFR_RECOGNIZER__FRAMES_TOPIC": t.frames, "LFR_RECOGNIZER__FACES_TOPIC": t.faces,
                    "LFR_RECOGNIZER__GROUP_ID": self.group(service),
                    "LFR_RECOGNIZER__CAMERAS_FILE": str(self.cameras_file),
                    # glibc malloc for a process that decodes ~6 MiB frames all day: 2 arenas, and buffers of
                    # >= 1 MiB always mmapped (returned on free, not left to fragment the heap); 10-minute soak:
                    # RSS growth +66 % by default, +16 % with 2 arenas, +6.7 % and flat with both (README)
                    "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),
                    "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "1048576")}
        elif service == "matcher":
            env |= {"LFR_MATCHER__FACES_TOPIC": t.faces, "LFR_MATCHER__MATCHES_TOPIC": t.matches,
                    "LFR_MATCHER__GROUP_ID": self.group(service),
                    "LFR_MATCHER__CAMERAS_FILE": str(self.cameras_file)}
        elif service == "alerts":
            env |= {"LFR_ALERTS__MATCHES_TOPIC": t.matches, "LFR_ALERTS__ALERTS_TOPIC": t.alerts,
                    "LFR_ALERTS__GROUP_ID": self.group(service)}
        elif service == "watchlist":
            # the local stack's milvus-lite engine: VACUUMed after deletes (closed watchlists' bytes erased)
            env |= {"LFR_WATCHLIST__AUDIT_TOPIC": t.audit,
                    "LFR_WATCHLIST__LOCAL_ENGINE_FILE": str(state_dir() / "data" / "milvus" / "milvus.db")}
        elif service == OFFICERS:
            env |= {"LFR_OFFICERS__ALERTS_TOPIC": t.alerts, "LFR_OFFICERS__AUDIT_TOPIC": t.audit,
                    "LFR_OFFICERS__GROUP_ID": self.group(service),
                    "LFR_OFFICERS__CAMERAS_FILE": str(self.cameras_file)}
        return env

    def console_port(self) -> int:
        return CONSOLE_PORTS[0] + self.port_offset

    def console_metrics_port(self) -> int:
        return CONSOLE_PORTS[1] + self.port_offset

    def console_env(self, prometheus_url: str | None = None) -> dict[str, str]:
        """The operator console's LFR_* settings for this layout: on loopback with the DEVELOPMENT users
        (deploy/local/console-users.yaml), the layout's gRPC APIs over mTLS as ``console`` (dev PKI), the
        services' /metrics, or Prometheus when ``prometheus_url`` is given."""
        targets = {name: f"http://127.0.0.1:{self.metrics_port(name)}/metrics" for name in BASE_PORTS}
        env = {
            "LFR_METRICS__PORT": str(self.console_metrics_port()),
            "LFR_CONSOLE__HTTP_HOST": "127.0.0.1",
            "LFR_CONSOLE__HTTP_PORT": str(self.console_port()),
            "LFR_CONSOLE__DEV_USERS": "true",
            "LFR_CONSOLE__CAMERAS_FILE": str(self.cameras_file),
            "LFR_CONSOLE__PLATFORM__ALERTS": f"127.0.0.1:{self.grpc_port('alerts')}",
            "LFR_CONSOLE__PLATFORM__WATCHLIST": f"127.0.0.1:{self.grpc_port('watchlist')}",
            "LFR_CONSOLE__PLATFORM__OFFICERS": f"127.0.0.1:{self.grpc_port(OFFICERS)}",
            "LFR_CONSOLE__METRICS_TARGETS": json.dumps(targets),
        }
        if prometheus_url is not None:
            env["LFR_CONSOLE__PROMETHEUS_URL"] = prometheus_url
        if self.tls:
            from services.common.grpc_client import console_env

            env |= console_env()
        else:
            env["LFR_GRPC__DEV_PKI"] = "false"
        return env

    def consumer_groups(self) -> list[tuple[str, str]]:
        """(group, topic) in pipeline order: what :func:`wait_drained` checks."""
        t = self.topics
        return [(self.group("recognizer"), t.frames), (self.group("matcher"), t.faces),
                (self.group("alerts"), t.matches)]


def write_registry(path: Path, cameras: list[Camera]) -> Path:
    """A camera registry file (the format of deploy/local/cameras.yaml)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"cameras": [c.model_dump(mode="json") for c in cameras]}
    path.write_text("# written by lfr for one run; safe to delete\n" + yaml.safe_dump(data, sort_keys=False))
    return path


class ServiceProcess:
    """One service as a child process in its own process group."""

    def __init__(self, name: str, layout: PipelineLayout, ingest_cameras: Path | None = None) -> None:
        self.name = name
        self.layout = layout
        self.env = layout.env(name, ingest_cameras)
        self.log_file = layout.log_file(name)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def grpc_port(self) -> int:
        return self.layout.grpc_port(self.name)

    @property
    def metrics_port(self) -> int:
        return self.layout.metrics_port(self.name)

    def _pid_file(self) -> Path | None:
        d = self.layout.pid_dir
        return None if d is None else d / f"{self.layout.log_prefix}{self.name}.pid"

    def start(self) -> None:
        for port in (self.grpc_port, self.metrics_port):
            if port_in_use("127.0.0.1", port):
                raise SetupError(f"{self.name}: port 127.0.0.1:{port} is already taken (another `lfr up`/`lfr demo`?)",
                                 f"stop it (ss -ltnp 'sport = :{port}') and retry")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        if self.layout.tls:
            ensure_certs()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LFR_GRPC__", "LFR_METRICS__"))}
        env |= self.env
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.name}"], stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=env, cwd=REPO_ROOT, start_new_session=True)
        pid_file = self._pid_file()
        if pid_file is not None:
            pid_file.parent.mkdir(parents=True, exist_ok=True)
            pid_file.write_text(str(self.proc.pid))

    def exit_code(self) -> int | None:
        """None while running."""
        return None if self.proc is None else self.proc.poll()

    def died(self) -> str | None:
        """A one-line account when the process has exited, else None."""
        code = self.exit_code()
        if self.proc is None or code is None:
            return None
        return f"service {self.name} exited with code {code}; its log is {self.log_file}"

    async def wait_serving(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if (why := self.died()) is not None:
                raise SetupError(why, f"read {self.log_file}")
            if await grpc_health(self.grpc_port, tls=self.layout.tls) == "SERVING":
                return
            if time.monotonic() > deadline:
                raise SetupError(f"service {self.name} not SERVING after {timeout_s:.0f} s on :{self.grpc_port}",
                                 f"read {self.log_file}; check `lfr stack status`")
            await asyncio.sleep(0.5)

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM the group (the service drains and commits), SIGKILL after ``timeout_s``."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(5)
        pid_file = self._pid_file()
        if pid_file is not None:
            pid_file.unlink(missing_ok=True)
        return self.proc.returncode


class ConsoleProcess(ServiceProcess):
    """The operator console as a child (``python -m services.console``): ready when its sign-in page answers."""

    def __init__(self, layout: PipelineLayout, prometheus_url: str | None = None) -> None:
        self.name = CONSOLE
        self.layout = layout
        self.env = layout.console_env(prometheus_url)
        self.log_file = layout.log_file(CONSOLE)
        self.proc = None

    @property
    def grpc_port(self) -> int:  # the console serves HTTP, no gRPC: its one listening port
        return self.layout.console_port()

    @property
    def metrics_port(self) -> int:
        return self.layout.console_metrics_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}/"

    async def wait_serving(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if (why := self.died()) is not None:
                raise SetupError(why, f"read {self.log_file}")
            if await asyncio.to_thread(_http_answers, f"{self.url}login"):
                return
            if time.monotonic() > deadline:
                raise SetupError(f"the console does not answer {self.url}login after {timeout_s:.0f} s",
                                 f"read {self.log_file}")
            await asyncio.sleep(0.5)


def _http_answers(url: str) -> bool:
    """True when an HTTP server answers ``url`` (any status)."""
    try:
        with urllib.request.urlopen(url, timeout=1.0):  # noqa: S310 (loopback)
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def ensure_certs() -> None:
    """The dev PKI (idempotent): what the launcher's servers and clients use for mTLS."""
    from services.common.grpc_client import cert_paths
    from services.common.pki import init

    init(cert_paths())


async def grpc_health(port: int, tls: bool = True) -> str | None:
    """The overall gRPC health status name of the server on ``port`` (None: no answer).
    ``tls``: over mTLS with the dev PKI when it exists, then plaintext (health needs no role)."""
    for secure in ((True, False) if tls else (False,)):
        status = await _health_once(port, secure)
        if status is not None:
            return status
    return None


async def _health_once(port: int, secure: bool) -> str | None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from services.common.grpc_client import aio_channel

    async with aio_channel(f"127.0.0.1:{port}", tls=secure) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                                     timeout=1)
        except grpc.RpcError:
            return None
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def scrape(port: int, timeout_s: float = 2.0) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A /metrics page as {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as r:  # noqa: S310 (loopback)
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def metric(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


async def partitions_of(admin: object, topic: str) -> list[int]:
    """The partition numbers of ``topic`` (from the broker, not a client's metadata cache)."""
    described = await admin.describe_topics([topic])  # type: ignore[attr-defined]
    parts = sorted(p["partition"] for d in described for p in d["partitions"])
    if not parts:
        raise SetupError(f"topic {topic} does not exist", "run `lfr stack up` (it creates the topics)")
    return parts


async def group_lag(admin: object, consumer: object, group: str, topic: str) -> int:
    """Records of ``topic`` that ``group`` has not committed yet (0: drained)."""
    from aiokafka import TopicPartition

    tps = [TopicPartition(topic, p) for p in await partitions_of(admin, topic)]
    ends = await consumer.end_offsets(tps)  # type: ignore[attr-defined]
    begins = await consumer.beginning_offsets(tps)  # type: ignore[attr-defined]
    committed = await admin.list_consumer_group_offsets(group, partitions=tps)  # type: ignore[attr-defined]
    lag = 0
    for tp in tps:
        meta = committed.get(tp)
        done = meta.offset if meta is not None and meta.offset >= 0 else -1
        lag += max(0, ends[tp] - max(done, begins[tp]))
    return lag


async def wait_drained(layout: PipelineLayout, timeout_s: float = 120.0,
                       alive: object = None) -> None:
    """Until the recognizer, matcher and alerts groups have committed everything on
    their input topics, in pipeline order (then once more, all together)."""
    from aiokafka import AIOKafkaConsumer
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=layout.bootstrap, request_timeout_ms=10_000)
    consumer = AIOKafkaConsumer(bootstrap_servers=layout.bootstrap, enable_auto_commit=False, group_id=None)
    await admin.start()
    await consumer.start()
    deadline = time.monotonic() + timeout_s
    try:
        for final in (False, True):
            for group, topic in layout.consumer_groups():
                while (lag := await group_lag(admin, consumer, group, topic)) > 0:
                    if callable(alive):
                        alive()
                    if time.monotonic() > deadline:
                        raise SetupError(f"the pipeline did not drain in {timeout_s:.0f} s: group {group} is "
                                         f"{lag} record(s) behind on {topic}",
                                         f"read {layout.log_dir}/{layout.log_prefix}*.log")
                    await asyncio.sleep(0.5)
            if not final:
                await asyncio.sleep(0.5)
    finally:
        await consumer.stop()
        await admin.close()


class Pipeline:
    """The services of one layout: start in order, wait for SERVING, watch, stop."""

    def __init__(self, layout: PipelineLayout) -> None:
        self.layout = layout
        self.services: dict[str, ServiceProcess] = {}

    async def start(self, names: tuple[str, ...] = PIPELINE_ORDER, timeout_s: float = 120.0,
                    ingest_cameras: Path | None = None, prometheus_url: str | None = None) -> None:
        """Start ``names`` (all at once: they load in parallel) and wait until each is SERVING
        (``console``: the operator console, reading Prometheus at ``prometheus_url`` when given)."""
        started: list[ServiceProcess] = []
        for name in names:
            svc = (ConsoleProcess(self.layout, prometheus_url) if name == CONSOLE else
                   ServiceProcess(name, self.layout, ingest_cameras if name == "ingest" else None))
            self.services[name] = svc
            svc.start()
            started.append(svc)
        await asyncio.gather(*(s.wait_serving(timeout_s) for s in started))

    def check_alive(self) -> None:
        """SetupError naming the first service that died (and its log)."""
        for svc in self.services.values():
            if (why := svc.died()) is not None:
                raise SetupError(why, f"read {svc.log_file}")

    def stop(self, names: tuple[str, ...] | None = None) -> dict[str, int | None]:
        """Stop ``names`` (default: all, ingest first), return their exit codes."""
        order = [CONSOLE, "ingest", OFFICERS, *reversed(PIPELINE_ORDER)]
        codes = {}
        for name in order:
            if name in self.services and (names is None or name in names):
                codes[name] = self.services.pop(name).stop()
        return codes


class DutyOfficer:
    """A demo officer on duty (AVAILABLE) in some zones while the demo runs: cameras
    run only while officers are on duty in their zone (camera gating). Uses the
    officers' own state API (services.officers.state) and heartbeats; off duty at
    ``stop``. A no-op where that module does not exist yet.

    Like a supervisor would (as ``dev``, the local identity with the supervisor and
    operator roles), it first assigns the zones to the officer (renewed with each
    heartbeat) and registers the device ``<officer>-device`` to them
    (services.officers.roster), so the officer's app may subscribe and act on the
    zone's alerts. ``stop`` revokes the assignment; the device stays registered to
    the officer (as a phone does off duty: an alert that arrives late is still
    acknowledged from it)."""

    ASSIGNED_BY = "dev"

    def __init__(self, officer_id: str, zones: list[str], redis_url: str = "redis://127.0.0.1:6379/0",
                 ttl_s: float = 30.0) -> None:
        self.officer_id = officer_id
        self.zones = zones
        self.redis_url = redis_url
        self.ttl_s = ttl_s
        self.device_id = f"{officer_id}-device"
        self.enabled = False
        self._task: asyncio.Task[None] | None = None
        self._redis: object = None

    async def start(self) -> bool:
        try:
            from services.officers import state
        except ModuleNotFoundError:
            return False
        from redis.asyncio import Redis

        from services.officers.roster import Roster, assignments_for

        self._redis = Redis.from_url(self.redis_url)
        store = state.OfficerStore(self._redis, self.ttl_s)
        roster = Roster(self._redis)
        assign_s = max(3600.0, self.ttl_s * 10)

        async def assign() -> None:
            await roster.assign(assignments_for(self.officer_id, self.zones, assign_s, self.ASSIGNED_BY,
                                                state.now_ms()))

        await assign()
        await roster.register(self.device_id, self.officer_id, self.ASSIGNED_BY)
        await store.update(self.officer_id, lambda old, at: state.go_on_duty(
            self.officer_id, self.zones, self.device_id, at_ms=at, ttl_ms=store.ttl_ms))

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.ttl_s / 3)
                await assign()
                await store.update(self.officer_id, lambda old, at: state.heartbeat(old, at_ms=at, ttl_ms=store.ttl_ms)
                                   if old is not None else state.go_on_duty(
                                       self.officer_id, self.zones, self.device_id, at_ms=at,
                                       ttl_ms=store.ttl_ms))

        self._task = asyncio.create_task(beat(), name="duty-heartbeat")
        self.enabled = True
        return True

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.enabled:
            from services.officers import state

            from services.officers.roster import Roster

            store = state.OfficerStore(self._redis, self.ttl_s)
            await store.update(self.officer_id, lambda old, at: None)  # off duty: removed from every set
            await Roster(self._redis).revoke(self.officer_id, self.zones)
        if self._redis is not None:
            await self._redis.aclose()  # type: ignore[attr-defined]
