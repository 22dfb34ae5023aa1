"""Stack components and topic declarations, without servers."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.common.errors import SetupError
from services.common.topics import TOPICS, TopicSpec
from services.stack import manager
from services.stack.base import StackPaths
from services.stack.kafka import KafkaComponent, KafkaSettings, _maven_reason, java_major, new_cluster_id
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
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
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


def test_milvus_command(paths: StackPaths) -> None:
    argv, _ = MilvusComponent(paths).command()
    assert argv[1:3] == ["server", "--data-dir"]
    assert argv[argv.index("--port") + 1] == "19530" and argv[argv.index("--host") + 1] == "127.0.0.1"


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
