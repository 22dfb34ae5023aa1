"""Poison input to the running services.

1. Every Kafka consumer (recognizer on frames, matcher on faces, alerts on matches,
   officers on alerts) gets POISON_PER_TOPIC records through the real broker:
   random bytes and mutated protobufs (hypothesis, derandomized), each kept only
   if it is bad input by the consumer's own contract (does not parse, unknown
   camera, required field missing, ...). Every one must land in the DLQ topic with
   a reason, matched by (topic, partition, offset, key); no service may crash
   (PIDs unchanged) and all must be SERVING afterwards.
2. Every gRPC method gets CASES_PER_METHOD requests built by hypothesis from the
   request message's descriptor (strings/bytes of every size up to the limits and
   beyond, extreme integers, unknown enum values, nested messages): only clean
   status codes, never UNKNOWN or INTERNAL, no crash.
The counts go into .lfr/chaos-results.json (``fuzz``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from google.protobuf.message import DecodeError, Message
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chaos_support import Rig, health_of

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(300)]

POISON_PER_TOPIC = 200
CASES_PER_METHOD = 50
CLEAN_CODES = {"OK", "INVALID_ARGUMENT", "NOT_FOUND", "FAILED_PRECONDITION", "PERMISSION_DENIED", "UNAUTHENTICATED",
               "RESOURCE_EXHAUSTED", "OUT_OF_RANGE", "ALREADY_EXISTS", "DEADLINE_EXCEEDED"}


def collect(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """``n`` examples of ``strategy``, the same ones on every run (derandomized)."""
    out: list[Any] = []

    @settings(max_examples=n, derandomize=True, database=None, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def take(example: Any) -> None:
        out.append(example)

    take()
    return out[:n]


# --- Kafka poison -----------------------------------------------------------------------


def _bases(rig: Rig) -> dict[str, Message]:
    """A well-formed message per topic, from a camera nobody registered (so any mutation of it is still bad)."""
    from lfr.v1 import alerts_pb2, common_pb2, faces_pb2, frames_pb2, matches_pb2

    frame = frames_pb2.Frame(camera_id="fuzz-unregistered", capture_unix_ns=time.time_ns(), image=b"\xff\xd8\xff" * 20)
    face = faces_pb2.FaceObservation(observation_id="fuzz-obs")
    face.frame.camera_id = "fuzz-unregistered"
    face.frame.capture_unix_ns = time.time_ns()
    match = matches_pb2.MatchCandidate(score=0.9, watchlist_id="fuzz-wl")
    match.frame.camera_id = "fuzz-unregistered"
    match.crop.CopyFrom(common_pb2.Crop(jpeg=b"\xff\xd8" * 10))
    alert = alerts_pb2.Alert(subject_id="fuzz-subject", camera_id="fuzz-unregistered", best_score=0.9)
    return {"frames": frame, "faces": face, "matches": match, "alerts": alert}


def is_poison(kind: str, value: bytes, registered: set[str]) -> bool:
    """Bad input by the consumer's contract (what it must dead-letter)."""
    from lfr.v1 import alerts_pb2, faces_pb2, frames_pb2, matches_pb2

    cls = {"frames": frames_pb2.Frame, "faces": faces_pb2.FaceObservation, "matches": matches_pb2.MatchCandidate,
           "alerts": alerts_pb2.Alert}[kind]
    try:
        msg: Any = cls.FromString(value)
    except (DecodeError, RuntimeError, ValueError):
        return True
    if kind == "frames":
        return msg.camera_id not in registered
    if kind == "faces":
        return msg.frame.camera_id not in registered or not msg.observation_id or not msg.HasField("secret")
    if kind == "matches":
        return not (msg.subject_id and msg.frame.camera_id and msg.observation_id and msg.frame.capture_unix_ns > 0)
    return not (msg.alert_id and msg.zone)


def poison_strategy(base: bytes) -> st.SearchStrategy[bytes]:
    def mutate(args: tuple[list[tuple[int, int]], int, bytes]) -> bytes:
        flips, cut, insert = args
        data = bytearray(base)
        for pos, val in flips:
            data[pos % len(data)] = val
        data = data[: max(1, cut % (len(data) + 1))] + insert
        return bytes(data)

    mutated = st.tuples(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
                        st.integers(0, 10_000), st.binary(max_size=16)).map(mutate)
    return st.one_of(st.binary(min_size=0, max_size=2048), mutated)


async def _dead_letters(topic: str, bootstrap: str) -> list[Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    from lfr.v1 import dlq_pb2
    from services.cli.launch import partitions_of

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        tps = [TopicPartition(topic, p) for p in await partitions_of(admin, topic)]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out = []
        deadline = time.monotonic() + 30
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]] and time.monotonic() < deadline:
            for recs in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(dlq_pb2.DeadLetter.FromString(r.value) for r in recs)
        return out
    finally:
        await consumer.stop()


async def test_poison_records_all_dead_lettered(rig: Rig) -> None:
    from aiokafka import AIOKafkaProducer

    registered = {c.id for c in rig.cameras.values()}
    topics = {"frames": rig.layout.topics.frames, "faces": rig.layout.topics.faces,
              "matches": rig.layout.topics.matches, "alerts": rig.layout.topics.alerts}
    pids = rig.pids()
    sent: dict[tuple[str, int, int], bytes] = {}
    per_topic: dict[str, int] = {}
    producer = AIOKafkaProducer(bootstrap_servers=rig.layout.bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for kind, base in _bases(rig).items():
            samples = [v for v in collect(poison_strategy(base.SerializeToString()), POISON_PER_TOPIC * 2)
                       if is_poison(kind, v, registered)][:POISON_PER_TOPIC]
            futures = []
            for i, value in enumerate(samples):
                key = f"chaos-fuzz-{kind}-{i}".encode()
                futures.append((key, await producer.send(topics[kind], value=value, key=key)))
            for key, fut in futures:
                meta = await fut
                sent[(meta.topic, meta.partition, meta.offset)] = key
            per_topic[kind] = len(samples)
    finally:
        await producer.stop()
    await rig.wait_drained(180)
    letters = await _dead_letters(rig.layout.topics.dlq, rig.layout.bootstrap)
    got = {(d.source_topic, d.source_partition, d.source_offset): d for d in letters}
    missing = [k for k in sent if k not in got]
    wrong_key = [k for k in sent if k in got and got[k].source_key != sent[k]]
    no_reason = [k for k in sent if k in got and got[k].reason == 0]
    reasons: dict[str, int] = {}
    from lfr.v1 import dlq_pb2

    for k in sent:
        if k in got:
            name = dlq_pb2.DeadLetterReason.Name(got[k].reason)
            reasons[name] = reasons.get(name, 0) + 1
    health = {n: await health_of(s.grpc_port) for n, s in rig.services().items() if n != "ingest"}
    rig.write_results({"fuzz_kafka": {"records_per_topic": per_topic, "sent": len(sent),
                                      "dead_lettered": len(sent) - len(missing), "reasons": reasons,
                                      "pids_unchanged": rig.pids() == pids}})
    print(f"\npoison records: {per_topic}, {len(sent)} sent, {len(sent) - len(missing)} dead-lettered; {reasons}")
    assert rig.pids() == pids, "a consumer crashed or restarted"
    assert all(v == "SERVING" for v in health.values()), health
    assert all(n >= POISON_PER_TOPIC * 0.9 for n in per_topic.values()), per_topic
    assert not missing, f"{len(missing)} poison records not in the DLQ, e.g. {missing[:5]}"
    assert not wrong_key and not no_reason


# --- gRPC fuzz --------------------------------------------------------------------------

_TEXT = st.one_of(st.text(max_size=40), st.text(min_size=200, max_size=5000),
                  st.sampled_from(["", " ", "../..", "a" * 129]))


def message_strategy(descriptor: Any, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Field values for a message (as a kwargs dict), from its descriptor."""
    from google.protobuf.descriptor import FieldDescriptor as F

    def scalar(f: Any) -> st.SearchStrategy[Any]:
        t = f.type
        if t == F.TYPE_STRING:
            return _TEXT
        if t == F.TYPE_BYTES:
            return st.one_of(st.binary(max_size=64), st.binary(min_size=1000, max_size=300_000))
        if t == F.TYPE_BOOL:
            return st.booleans()
        if t in (F.TYPE_FLOAT, F.TYPE_DOUBLE):
            return st.floats(allow_nan=True, allow_infinity=True, width=32 if t == F.TYPE_FLOAT else 64)
        if t == F.TYPE_ENUM:
            return st.integers(-3, 40)
        if t in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
            return st.integers(-(2 ** 31), 2 ** 31 - 1)
        if t in (F.TYPE_UINT32, F.TYPE_FIXED32):
            return st.integers(0, 2 ** 32 - 1)
        if t in (F.TYPE_UINT64, F.TYPE_FIXED64):
            return st.integers(0, 2 ** 64 - 1)
        if t == F.TYPE_MESSAGE:
            return message_strategy(f.message_type, depth + 1) if depth < 2 else st.just({})
        return st.integers(-(2 ** 63), 2 ** 63 - 1)

    fields = {}
    for f in descriptor.fields:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            continue
        value = scalar(f)
        if f.is_repeated:
            value = st.lists(value, max_size=4)
        fields[f.name] = value
    return st.fixed_dictionaries({}, optional=fields)


def build(cls: type[Message], values: dict[str, Any]) -> Message:
    msg = cls()
    _fill(msg, values)
    return msg


def _fill(msg: Any, values: dict[str, Any]) -> None:
    for name, v in values.items():
        f = msg.DESCRIPTOR.fields_by_name[name]
        if f.message_type is not None:
            if f.is_repeated:
                for item in v:
                    _fill(getattr(msg, name).add(), item)
            else:
                _fill(getattr(msg, name), v)
        elif f.is_repeated:
            getattr(msg, name).extend(v)
        else:
            setattr(msg, name, v)


def _methods(rig: Rig) -> list[tuple[str, int, Any, str]]:
    """(service full name, port, method descriptor, kind) of every API."""
    from lfr.v1 import alerts_pb2, audit_pb2, officers_pb2, watchlist_pb2

    ports = {"lfr.v1.AlertService": rig.layout.grpc_port("alerts"),
             "lfr.v1.AuditService": rig.layout.grpc_port("watchlist"),
             "lfr.v1.WatchlistService": rig.layout.grpc_port("watchlist"),
             "lfr.v1.OfficerService": rig.officers.grpc_port, "lfr.v1.DeviceService": rig.officers.grpc_port}
    out = []
    for module in (alerts_pb2, audit_pb2, officers_pb2, watchlist_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                kind = ("stream-stream" if m.client_streaming and m.server_streaming else
                        "stream-unary" if m.client_streaming else "unary-stream" if m.server_streaming else "unary")
                out.append((service.full_name, ports[service.full_name], m, kind))
    return out


async def _call(channel: Any, service: str, method: Any, kind: str, requests: list[Message]) -> str:
    import grpc
    from google.protobuf import symbol_database

    db = symbol_database.Default()
    resp_cls = db.GetSymbol(method.output_type.full_name)
    path = f"/{service}/{method.name}"
    ser, de = (lambda m: m.SerializeToString()), resp_cls.FromString
    try:
        if kind == "unary":
            await channel.unary_unary(path, request_serializer=ser, response_deserializer=de)(requests[0], timeout=10)
        elif kind == "unary-stream":
            call = channel.unary_stream(path, request_serializer=ser,
                                        response_deserializer=de)(requests[0], timeout=0.3)
            async for _ in call:
                pass
        else:
            async def gen() -> Any:
                for r in requests:
                    yield r
            await channel.stream_unary(path, request_serializer=ser, response_deserializer=de)(gen(), timeout=10)
        return "OK"
    except grpc.aio.AioRpcError as e:
        return str(e.code().name)


async def test_grpc_apis_answer_bad_requests_cleanly(rig: Rig) -> None:
    from google.protobuf import symbol_database

    from services.common.grpc_client import aio_channel

    db = symbol_database.Default()
    pids = rig.pids()
    codes: dict[str, dict[str, int]] = {}
    bad: list[str] = []
    cases = 0
    channels: dict[int, Any] = {}
    try:
        for service, port, method, kind in _methods(rig):
            if port not in channels:  # the launcher's client: mTLS with the dev identity where the PKI exists
                channels[port] = aio_channel(f"127.0.0.1:{port}")
            channel = channels[port]
            req_cls = db.GetSymbol(method.input_type.full_name)
            batch = collect(st.lists(message_strategy(method.input_type), min_size=1, max_size=3), CASES_PER_METHOD)
            name = f"{service.split('.')[-1]}.{method.name}"
            per = codes.setdefault(name, {})
            for values in batch:
                requests = [build(req_cls, v) for v in values]
                code = await _call(channel, service, method, kind, requests)
                if kind == "unary-stream" and code == "DEADLINE_EXCEEDED":
                    code = "OK"  # a valid subscription: it streams until the deadline
                per[code] = per.get(code, 0) + 1
                cases += 1
                if code not in CLEAN_CODES:
                    bad.append(f"{name}: {code}")
    finally:
        for ch in channels.values():
            await ch.close()
    await asyncio.sleep(1.0)
    health = {n: await health_of(s.grpc_port) for n, s in rig.services().items() if n != "ingest"}
    rig.write_results({"fuzz_grpc": {"cases": cases, "methods": len(codes), "codes": codes,
                                     "unclean": len(bad), "pids_unchanged": rig.pids() == pids}})
    print(f"\ngRPC fuzz: {cases} cases over {len(codes)} methods; " +
          "; ".join(f"{k} {v}" for k, v in codes.items()))
    assert rig.pids() == pids, "a service crashed or restarted"
    assert all(v == "SERVING" for v in health.values()), health
    assert not bad, f"{len(bad)} unclean answers, e.g. {bad[:10]}"
