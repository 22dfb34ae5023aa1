"""The Kafka ACL table (services/common/acls.py, issue 8): matches what the services' code
produces and consumes, is least-privilege, and its production renderings are in sync."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest
import yaml

from deploy_support import ROOT
from services.common.acls import ACLS, acl_for, render_kafka_acls_script, render_strimzi_users
from services.common.settings import KafkaSettings
from services.common.topics import ALERTS, AUDIT, DLQ, FACES, FRAMES, MATCHES, TOPICS
from services.stack import kafka_scram

# service -> (options class, fields read, fields written, group field)
FLOW = {
    "ingest": ("IngestOptions", (), ("frames_topic",), None),
    "recognizer": ("RecognizerOptions", ("frames_topic",), ("faces_topic",), "group_id"),
    "matcher": ("MatcherOptions", ("faces_topic",), ("matches_topic",), "group_id"),
    "alerts": ("AlertsOptions", ("matches_topic",), ("alerts_topic",), "group_id"),
    "officers": ("OfficersOptions", ("alerts_topic",), (), "group_id"),
    "watchlist": ("WatchlistOptions", (), (), None),
}
CONSUMERS = ("recognizer", "matcher", "alerts", "officers")


def _default(service: str, cls_name: str, field: str) -> str:
    cls = getattr(importlib.import_module(f"services.{service}.config"), cls_name)
    return cls.model_fields[field].default


@pytest.mark.parametrize("service", sorted(FLOW))
def test_table_covers_the_services_own_topics_and_groups(service: str) -> None:
    cls, reads, writes, group = FLOW[service]
    acl = acl_for(service)
    for field in reads:
        assert acl.allows("topic", _default(service, cls, field), "Read"), field
    for field in writes:
        assert acl.allows("topic", _default(service, cls, field), "Write"), field
    if group:
        assert acl.allows("group", _default(service, cls, group), "Read")
    else:
        assert acl.groups == ()
    # every service audits (refused gRPC calls) and chains onto the last record, so reads it too
    assert acl.allows("topic", AUDIT.name, "Write") and acl.allows("topic", AUDIT.name, "Read")
    if service in CONSUMERS or service == "ingest":  # dead letters
        assert acl.allows("topic", KafkaSettings().dlq_topic, "Write")


def test_least_privilege() -> None:
    topics = {t.name for t in TOPICS}
    for acl in ACLS:
        assert set(acl.reads) | set(acl.writes) <= topics, acl.service
        for rule in acl.rules():
            assert set(rule.operations) <= {"Describe", "Read", "Write"}
    readers = {t.name: {a.service for a in ACLS if a.allows("topic", t.name, "Read")} for t in TOPICS}
    writers = {t.name: {a.service for a in ACLS if a.allows("topic", t.name, "Write")} for t in TOPICS}
    # the data flow, one hop at a time: biometric topics have exactly one writer and one reader
    assert (writers[FRAMES.name], readers[FRAMES.name]) == ({"ingest"}, {"recognizer"})
    assert (writers[FACES.name], readers[FACES.name]) == ({"recognizer"}, {"matcher"})
    assert (writers[MATCHES.name], readers[MATCHES.name]) == ({"matcher"}, {"alerts"})
    assert (writers[ALERTS.name], readers[ALERTS.name]) == ({"alerts"}, {"officers"})
    assert readers[DLQ.name] == set()  # dead letters are read by operators' tools, not services
    assert "audit" not in writers[AUDIT.name]  # the auditors' user only reads
    assert not acl_for("watchlist").allows("topic", FRAMES.name, "Read")
    assert not acl_for("officers").allows("group", "lfr-alerts", "Read")


def test_users_are_the_local_scram_users() -> None:
    assert {a.service for a in ACLS} == set(kafka_scram.SERVICES)
    assert {a.user for a in ACLS} == {kafka_scram.user_name(s) for s in kafka_scram.SERVICES}


def test_rendered_files_are_in_sync() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "deploy" / "kafka" / "render.py"), "--check"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    users = list(yaml.safe_load_all(render_strimzi_users()))
    assert [u["metadata"]["name"] for u in users] == [a.user for a in ACLS]
    matcher = next(u for u in users if u["metadata"]["name"] == "lfr-matcher")["spec"]["authorization"]["acls"]
    assert {"resource": {"type": "group", "name": "lfr-matcher", "patternType": "literal"},
            "operations": ["Describe", "Read"]} in matcher
    script = render_kafka_acls_script()
    assert "--allow-principal User:lfr-recognizer --operation Describe --operation Read --topic lfr.frames.v1" in script
    assert sum(len(a.rules()) for a in ACLS) == script.count("\nacl --allow-principal")
    bash = subprocess.run(["bash", "-n", str(ROOT / "deploy" / "kafka" / "acls.sh")], capture_output=True, text=True,
                          check=False)
    assert bash.returncode == 0, bash.stderr
