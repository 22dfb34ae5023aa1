"""Stack components and topic declarations, without servers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.errors import SetupError
from services.common.topics import TOPICS, TopicSpec
from services.stack import manager
from services.stack.base import StackPaths
from services.stack.kafka import KafkaComponent, KafkaSettings, _maven_reason, java_major, new_cluster_id
from services.stack import milvus
from services.stack.milvus import MilvusComponent
from services.stack.redis import RedisComponent


@pytest.fixture
def paths(tmp_path: Path) -> StackPaths:
    return StackPaths(cache=tmp_path / "cache", state=tmp_path / "state")


@pytest.mark.parametrize("out,major", [
    ('openjdk version "17.0.15" 2025-04-15', 17),
    ('java version "1.8.0_392"', 8),
    ('openjdk version "21" 2023-09-19', 21),
    ("garbage", None),
])
def test_java_major(out: str, major: int | None) -> None:
    assert java_major(out) == major


def test_cluster_id_shape() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(len(i) == 22 and not i.startswith("-") and "=" not in i for i in ids)


def test_kafka_server_properties_single_node_kraft(paths: StackPaths) -> None:
    k = KafkaComponent(paths, KafkaSettings(java="java"))
    props = dict(line.split("=", 1) for line in k.server_properties().splitlines() if "=" in line)
    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == ("PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,"
                                  "SASL_PLAINTEXT://127.0.0.1:9094")
    assert props["listener.name.sasl_plaintext.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "password" not in k.server_properties()  # SCRAM users live in the metadata, not in the file
    assert props["log.dirs"].startswith(str(paths.state))
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["auto.create.topics.enable"] == "false"
    assert int(props["log.retention.check.interval.ms"]) <= 5000
    assert k.libs.is_relative_to(paths.cache) and k.version in str(k.libs)


def test_java_missing_is_a_setup_error(paths: StackPaths) -> None:
    with pytest.raises(SetupError, match="Java missing") as e:
        KafkaComponent(paths, KafkaSettings(java="/nonexistent/java")).install()
    assert "LFR_JAVA" in e.value.fix


def test_maven_reason_names_the_url() -> None:
    out = ("\x1b[0m[ERROR] Plugin x could not be resolved: Could not transfer artifact a:b:pom:1 from/to m "
           "(http://127.0.0.1:9/): transfer failed for http://127.0.0.1:9/a.pom: Connect to 127.0.0.1:9 "
           "[/127.0.0.1] failed: Connection refused -> [Help 1]")
    assert _maven_reason(out) == "cannot reach http://127.0.0.1:9/: Connection refused"


def test_redis_never_persists(paths: StackPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    r = RedisComponent(paths)
    monkeypatch.setattr(r, "binary", lambda: "/usr/bin/redis-server")
    argv, _ = r.command()
    assert argv[argv.index("--save") + 1] == ""
    assert argv[argv.index("--appendonly") + 1] == "no"
    assert argv[argv.index("--bind") + 1] == "127.0.0.1"


def _fake_milvus_install(m: MilvusComponent) -> Path:
    lib = m.venv / "lib" / "python3.11" / "site-packages" / "milvus_lite" / "lib"
    lib.mkdir(parents=True)
    (lib / "milvus").write_bytes(b"")
    (m.home / ".complete").write_text("ok\n")
    return lib


def test_milvus_command_runs_the_native_engine_on_tcp(paths: StackPaths) -> None:
    m = MilvusComponent(paths)
    lib = _fake_milvus_install(m)
    argv, env = m.command()
    assert argv == [str(lib / "milvus"), str(paths.state / "data" / "milvus" / "milvus.db"), "127.0.0.1:19530",
                    "ERROR"]
    assert env == {"LD_LIBRARY_PATH": str(lib)}
    assert m.home == paths.cache / "milvus" / milvus.VERSION and m.uri == "http://127.0.0.1:19530"
    assert m.ports == (19530,)


def test_milvus_install_is_idempotent(paths: StackPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    m = MilvusComponent(paths)
    _fake_milvus_install(m)
    monkeypatch.setattr(milvus.subprocess, "run", lambda *a, **k: pytest.fail("installed twice"))
    m.install()


def test_milvus_wheel_not_installable_is_a_setup_error(paths: StackPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        if "venv" in argv:
            Path(argv[-1], "bin").mkdir(parents=True)
            return subprocess.CompletedProcess(argv, 0, "", "")
        return subprocess.CompletedProcess(argv, 1, "", "Looking in indexes: x\nERROR: Could not find a version "
                                           "that satisfies the requirement milvus-lite==2.5.1\n")

    monkeypatch.setattr(milvus.subprocess, "run", fake_run)
    monkeypatch.setattr(milvus.platform, "machine", lambda: "x86_64")
    m = MilvusComponent(paths)
    with pytest.raises(SetupError, match="could not install milvus-lite==2.5.1 from PyPI: ERROR: Could not find") as e:
        m.install()
    assert "PyPI" in e.value.fix
    pip = calls[-1]
    assert "--require-hashes" in pip and "--no-deps" in pip
    assert not m.home.exists()  # no half-installed entry left behind


def test_milvus_unsupported_machine(paths: StackPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(milvus.platform, "machine", lambda: "riscv64")
    with pytest.raises(SetupError, match="no engine for riscv64"):
        MilvusComponent(paths).install()


def test_milvus_prepare_removes_only_legacy_3x_data(paths: StackPaths) -> None:
    m = MilvusComponent(paths)
    data = paths.data_dir("milvus")
    (data / "collections" / "c1").mkdir(parents=True)
    (data / "databases").mkdir()
    (data / "LOCK").write_text("")
    m.db_file().write_bytes(b"SQLite format 3\x00")
    m.prepare()
    assert sorted(p.name for p in data.iterdir()) == ["milvus.db"]


def test_topics_declared_once_with_privacy_bounds() -> None:
    names = [t.name for t in TOPICS]
    assert len(names) == len(set(names))
    by = {t.name: t for t in TOPICS}
    for name in ("lfr.frames.v1", "lfr.faces.v1"):
        assert 0 < by[name].retention_ms <= 60_000 and by[name].segment_ms <= 10_000
        assert by[name].configs()["message.timestamp.type"] == "LogAppendTime"
    assert by["lfr.matches.v1"].retention_ms == by["lfr.alerts.v1"].retention_ms == 24 * 3600 * 1000
    assert by["lfr.dlq.v1"].retention_ms == 7 * 24 * 3600 * 1000
    audit = by["lfr.audit.v1"].configs()
    assert audit["retention.ms"] == "-1" and audit["cleanup.policy"] == "delete"
    assert all(isinstance(v, str) for t in TOPICS for v in t.configs().values())


def test_topic_spec_is_strict() -> None:
    with pytest.raises(ValidationError):
        TopicSpec(name="frames", partitions=1, retention_ms=1000, segment_ms=1000)
    with pytest.raises(ValidationError):
        TopicSpec(name="lfr.x.v1", partitions=0, retention_ms=1000, segment_ms=1000)
    with pytest.raises(ValidationError):
        TopicSpec(name="lfr.x.v1", partitions=1, retention_ms=1000, segment_ms=1000, colour="red")


def test_manager_unknown_and_missing_components(paths: StackPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SetupError, match="unknown stack component"):
        manager.load_components(paths, only=["nosuch"])
    monkeypatch.setattr(manager, "COMPONENTS", manager.COMPONENTS + ("services.stack.nosuch:NoSuch",))
    comps = manager.load_components(paths, only=["nosuch"])
    assert len(comps) == 1
    h = comps[0].status()
    assert not h.healthy and "not installed" in h.detail
    with pytest.raises(SetupError, match="component not installed"):
        comps[0].start()


def test_prometheus_runs_on_loopback_with_short_retention(paths: StackPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.stack.prometheus import PrometheusComponent, PrometheusSettings

    monkeypatch.setattr("services.stack.prometheus.shutil.which", lambda name: f"/usr/bin/{name}")
    comp = PrometheusComponent(paths)
    comp.prepare()
    argv, _ = comp.command()
    assert argv[0] == "/usr/bin/prometheus"
    assert "--web.listen-address=127.0.0.1:9090" in argv and "--storage.tsdb.retention.time=1d" in argv
    assert f"--storage.tsdb.path={paths.data_dir('prometheus') / 'tsdb'}" in argv
    assert comp.config_file.is_relative_to(paths.state) and comp.ports == (9090,)
    assert manager.component_names()[-1] == "prometheus"  # started after what it scrapes, stopped first
    with pytest.raises(ValidationError):
        PrometheusSettings(retention="forever")
    with pytest.raises(ValidationError):
        PrometheusSettings(surprise=1)  # type: ignore[call-arg]
