"""The Kafka ACL table and the Milvus role table (services/common/acls.py): they match
what the services' code produces, consumes and calls, are least-privilege, and their production
renderings (Strimzi KafkaUsers, kafka-acls.sh, deploy/milvus/users.py) are in sync."""

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


# --- Milvus users and roles (deploy/milvus/users.py) ------------------------------------------------

# the MilvusClient calls of the services' code -> the privilege each needs
CALL_PRIVILEGE = {
    "search": "Search", "query": "Query", "query_iterator": "Query", "insert": "Insert", "upsert": "Upsert",
    "delete": "Delete", "flush": "Flush", "load_collection": "Load", "has_collection": "DescribeCollection",
    "describe_collection": "DescribeCollection",
    "create_collection": "CreateCollection", "list_collections": "ShowCollections",
    "compact": "Compaction", "get_compaction_state": "Compaction",
}
LOCAL = {"create_schema", "prepare_index_params", "close"}  # client-side only


def _calls(paths: list) -> set[str]:
    import re

    out = set()
    for path in paths:
        out |= set(re.findall(r"client\.(\w+)\(", path.read_text(encoding="utf-8")))
    return out - LOCAL


def _load_users_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("milvus_users", ROOT / "deploy" / "milvus" / "users.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_milvus_roles_cover_the_code_and_nothing_more() -> None:
    from services.common.acls import milvus_roles
    from services.common.faces_schema import COLLECTION
    from services.common.milvus_collections import WATCHLISTS_COLLECTION

    matcher, watchlist = milvus_roles()
    assert (matcher.user, watchlist.user) == ("lfr-matcher", "lfr-watchlist")
    every = matcher.privileges("*") | matcher.privileges(COLLECTION)
    # the matcher's code: its worker, the faces search helpers, ensure_collection, the health check
    matcher_calls = _calls([*(ROOT / "services" / "matcher").glob("*.py"),
                            ROOT / "services" / "common" / "faces_search.py"])
    matcher_calls |= {"has_collection", "load_collection", "list_collections"}
    for call in matcher_calls:
        assert CALL_PRIVILEGE[call] in every, call
    # read only: no write, no create, no drop, no user management, nothing on the metadata collection
    assert not every & {"Insert", "Upsert", "Delete", "CreateCollection", "DropCollection", "CreateIndex", "Flush",
                        "Compaction"}
    assert matcher.privileges(WATCHLISTS_COLLECTION) == set()
    # the watchlist service's code: its package and the faces collections' schema (ensure_collection)
    wl_calls = _calls([*(ROOT / "services" / "watchlist").glob("*.py"),
                       ROOT / "services" / "common" / "faces_schema.py"]) | {"list_collections"}
    for call in wl_calls:
        privilege = CALL_PRIVILEGE[call]
        targets = ("*",) if privilege in ("CreateCollection", "DescribeCollection", "ShowCollections") \
            else (COLLECTION,) if privilege == "Compaction" else (COLLECTION, WATCHLISTS_COLLECTION)
        for name in targets:
            assert privilege in watchlist.privileges(name), (call, name)
    assert not any(g.privilege.startswith(("Drop", "Create" + "User", "Operate", "Update")) for g in watchlist.grants)


def test_milvus_users_script_applies_the_table(tmp_path) -> None:
    from services.common.acls import milvus_roles

    script = _load_users_script()
    for s in ("matcher", "watchlist"):
        (tmp_path / s).mkdir()
        (tmp_path / s / "milvus-token").write_text(f"lfr-{s}:pw-{s}-secret\n")

    class FakeClient:  # records calls (unit test; the real server path needs Milvus with auth)
        def __init__(self) -> None:
            self.users: dict[str, str] = {"root": "x"}
            self.roles: set[str] = set()
            self.grants: set[tuple] = set()
            self.bound: set[tuple] = set()

        def list_users(self):
            return list(self.users)

        def list_roles(self):
            return list(self.roles)

        def create_user(self, user_name, password):
            assert user_name not in self.users
            self.users[user_name] = password

        def create_role(self, role_name):
            assert role_name not in self.roles
            self.roles.add(role_name)

        def grant_privilege(self, role_name, object_type, privilege, object_name):
            self.grants.add((role_name, object_type, object_name, privilege))

        def grant_role(self, user_name, role_name):
            self.bound.add((user_name, role_name))

    client = FakeClient()
    script.apply(client, milvus_roles(), tmp_path)
    script.apply(client, milvus_roles(), tmp_path)  # idempotent
    assert client.users["lfr-matcher"] == "pw-matcher-secret"
    assert client.bound == {("lfr-matcher", "lfr_matcher_read"), ("lfr-watchlist", "lfr_watchlist_write")}
    assert len(client.grants) == sum(len(r.grants) for r in milvus_roles())
    assert not any("secret" in line for line in script.plan(milvus_roles()))
    (tmp_path / "matcher" / "milvus-token").write_text("lfr-watchlist:stolen\n")
    with pytest.raises(ValueError, match="expected 'lfr-matcher'"):
        script.apply(FakeClient(), milvus_roles(), tmp_path)


def test_local_broker_enforces_the_table(tmp_path) -> None:
    from services.stack import kafka_acls
    from services.stack.base import StackPaths
    from services.stack.kafka import KafkaComponent

    props = dict(line.split("=", 1)
                 for line in KafkaComponent(StackPaths(cache=tmp_path, state=tmp_path)).server_properties().splitlines()
                 if "=" in line)
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["super.users"] == "User:ANONYMOUS"  # the open dev listener 9092 and the controller only
    items = kafka_acls.creations()
    assert len(items) == sum(len(r.operations) for a in ACLS for r in a.rules())
    assert (2, "lfr.frames.v1", 3, "User:lfr-recognizer", "*", 3, 3) in items  # topic, literal, Read, Allow
    assert not any(i[3] == "User:lfr-recognizer" and i[1] == "lfr.faces.v1" and i[5] == 3 for i in items)
