"""The tamper-evident audit log: hash-chained ``AuditRecord`` protobufs on
``lfr.audit.v1`` (one partition = one total order, kept forever, never compacted).

Chain: ``hash = SHA-256(prev_hash || record.SerializeToString(deterministic=True))``
where the serialised record has ``hash`` and ``signature`` cleared (and carries
``prev_hash`` and ``key_id``); ``seq`` is 0-based and contiguous; the first
record has an empty ``prev_hash``. :func:`verify_chain` recomputes it and names
the first broken record.

What verification also catches (a rogue administrator with Kafka admin rights,
or a service credential with Write on the topic):

- **forged records**: each record is signed (Ed25519, :data:`RECORD_DOMAIN` ||
  hash) with its service's key (:class:`AuditSigner`, ``audit.signing_key_file``).
  Verify loads a keyring of public keys (``<service>.pub``, ``audit.keyring_dir``)
  and refuses a record that is unsigned, signed by an unknown key, signed by
  another service than the one it names, or whose action that service may not
  write (:data:`WRITERS`);
- **head truncation** (DeleteRecords): the log is read from its start offset;
  a start offset above 0 or a first seq above 0 fails with the number of
  missing records, unless a signed *archive* checkpoint ends exactly where the
  log starts (its seq = first seq - 1 and its hash = the first record's
  prev_hash; the writers' own progress checkpoints never excuse a deletion);
- **tail cut, or the topic deleted and re-created**: every writer signs a
  :class:`Checkpoint` (topic, seq, hash, time, service) after its first append,
  every ``checkpoint_every_records`` appends or ``checkpoint_every_s`` seconds,
  and at close, into a directory outside Kafka (:class:`CheckpointStore`,
  ``audit.checkpoint_dir``, one append-only file per topic, service and replica: replicas of a service may
  share the directory, e.g. one ReadWriteMany volume, without appending to the same file).
  Verify fails when the log ends before the newest checkpoint, when a record
  has another hash than a checkpoint says, and on any checkpoint whose
  signature does not hold;
- **an empty or unreadable log** never verifies, unless it is declared new
  (``allow_empty`` / ``lfr audit verify --new``) and no checkpoint exists.

Never biometric data: an audit record holds ids, SHA-256 hashes (exactly 32
bytes each, e.g. of an enrolled image) and decisions. :func:`build_record`
refuses anything else it can recognise (non-hash bytes, long detail values).

Several writer processes
------------------------
Each append runs under a lock; under it the writer asks the broker for the
partition's end offset and, when it moved since this writer's last append
(another process wrote), re-reads the last record and chains onto it. The lock:

- with Redis (``AuditWriter(redis=...)``): ``SET lfr:audit:lock NX PX`` via
  redis-py's ``Lock`` with a lease (``lock_lease_s``). Limits, stated honestly:
  one Redis instance is not a consensus system (no Redlock, no fencing token);
  if a writer stalls longer than the lease (GC pause, partition) or Redis fails
  over and loses the key, two writers can chain onto the same record. That is
  not silent: the fork shows up as a repeated ``seq`` / wrong ``prev_hash`` and
  ``lfr audit verify`` reports it. Nothing is lost (every record is in Kafka).
- without Redis: an in-process ``asyncio.Lock`` only, correct for one writer
  process (the end-offset check still catches a foreign append made before ours
  started, but not one racing with it).

Kafka transactions were considered and not used: they do not serialise two
producers with different transactional ids (each would still chain onto a
stale last record), and their commit markers take offsets in the partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from lfr.v1 import audit_pb2

from services.common.kafka import AUDIT_TOPIC, client_kwargs, make_headers, start_producer
from services.common.settings import AuditSettings, KafkaSettings, host_instance

log = logging.getLogger(__name__)

HASH_BYTES = 32
MAX_DETAIL_CHARS = 512
MAX_IDS = 1024
LOCK_KEY = "lfr:audit:lock"

# actions (others may add their own dotted names)
WATCHLIST_CREATE = "watchlist.create"
WATCHLIST_ENROL = "watchlist.enrol"
WATCHLIST_ENROL_REFUSED = "watchlist.enrol_refused"
WATCHLIST_REMOVE_SUBJECT = "watchlist.remove_subject"
WATCHLIST_CLOSE = "watchlist.close"
WATCHLIST_EXPIRE = "watchlist.expire"
WATCHLIST_BULK_IMPORT = "watchlist.bulk_import"
WATCHLIST_REEMBED = "watchlist.reembed"
ALERT_RAISE = "alert.raise"
ALERT_ADJUDICATE = "alert.adjudicate"
CAMERA_ON = "camera.on"
CAMERA_OFF = "camera.off"
API_REFUSED = "api.refused"

# Which service may write which action: an entry ending in "." is a prefix. Verify refuses a record whose
# (signing) service may not write its action. A service that writes a new action adds it here.
EVERY_SERVICE: tuple[str, ...] = (API_REFUSED,)
WRITERS: Mapping[str, tuple[str, ...]] = {
    "watchlist": ("watchlist.",),
    "ingest": (CAMERA_ON, CAMERA_OFF),
    "officers": ("officer.", "alert.", "device."),
    "alerts": ("alert.",),
}
RECORD_DOMAIN = b"lfr.audit.record.v1\n"
CHECKPOINT_DOMAIN = b"lfr.audit.checkpoint.v1\n"
CHECKPOINT_SUFFIX = ".checkpoints"
PROGRESS = "progress"  # checkpoint kinds (see Checkpoint)
ARCHIVE = "archive"
MAX_CHECKPOINT_LINE = 4096
INSTANCE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")  # a host name: one file name, never a path


def may_write(service: str, action: str) -> bool:
    """True when ``service`` may append ``action`` (:data:`WRITERS`, :data:`EVERY_SERVICE`)."""
    allowed = (*WRITERS.get(service, ()), *EVERY_SERVICE)
    return any(action.startswith(a) if a.endswith(".") else action == a for a in allowed)


class AuditError(RuntimeError):
    """The record could not be appended (broker unreachable, lock not acquired, bad content)."""


def sha256(data: bytes) -> bytes:
    """The 32-byte digest to put in ``subject_hashes`` (e.g. of an image)."""
    return hashlib.sha256(data).digest()


def compute_hash(record: audit_pb2.AuditRecord) -> bytes:
    """SHA-256(prev_hash || deterministic serialisation of the record without its hash and signature)."""
    body = audit_pb2.AuditRecord()
    body.CopyFrom(record)
    body.ClearField("hash")
    body.ClearField("signature")
    return hashlib.sha256(bytes(record.prev_hash) + body.SerializeToString(deterministic=True)).digest()


# --- keys -------------------------------------------------------------------------


def key_id_of(service: str, public_key: ed25519.Ed25519PublicKey) -> str:
    """``<service>:<first 16 hex of SHA-256(raw public key)>``."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{service}:{hashlib.sha256(raw).hexdigest()[:16]}"


class AuditSigner:
    """A service's Ed25519 audit key: signs record hashes and checkpoints."""

    def __init__(self, service: str, key: ed25519.Ed25519PrivateKey) -> None:
        self.service = service
        self._key = key
        self.key_id = key_id_of(service, key.public_key())

    @classmethod
    def load(cls, service: str, path: Path) -> "AuditSigner":
        """From a PKCS#8 PEM file; AuditError (naming the file, never its content) when unusable."""
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except OSError as e:
            raise AuditError(f"audit signing key {path} cannot be read: {e.strerror or type(e).__name__} "
                             "(run 'lfr certs init' or set LFR_AUDIT__SIGNING_KEY_FILE)") from None
        except (ValueError, TypeError):
            raise AuditError(f"audit signing key {path} is not a PEM private key") from None
        if not isinstance(key, ed25519.Ed25519PrivateKey):
            raise AuditError(f"audit signing key {path} is not an Ed25519 key")
        return cls(service, key)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    @property
    def public_key(self) -> ed25519.Ed25519PublicKey:
        return self._key.public_key()


@dataclasses.dataclass(frozen=True)
class Keyring:
    """key_id -> (service, public key): the writers verification trusts."""

    keys: Mapping[str, tuple[str, ed25519.Ed25519PublicKey]]

    @classmethod
    def load(cls, directory: Path) -> "Keyring":
        """Every ``<service>[.<anything>].pub`` (SubjectPublicKeyInfo PEM) in ``directory``."""
        if not directory.is_dir():
            raise AuditError(f"audit keyring {directory} does not exist (run 'lfr certs init' or pass --keyring)")
        keys: dict[str, tuple[str, ed25519.Ed25519PublicKey]] = {}
        for path in sorted(directory.glob("*.pub")):
            try:
                pub = serialization.load_pem_public_key(path.read_bytes())
            except (OSError, ValueError) as e:
                raise AuditError(f"audit keyring file {path} is unreadable ({type(e).__name__})") from None
            if not isinstance(pub, ed25519.Ed25519PublicKey):
                raise AuditError(f"audit keyring file {path} is not an Ed25519 public key")
            service = path.name.split(".", 1)[0]
            keys[key_id_of(service, pub)] = (service, pub)
        if not keys:
            raise AuditError(f"audit keyring {directory} holds no <service>.pub key")
        return cls(keys)

    @classmethod
    def of(cls, *signers: AuditSigner) -> "Keyring":
        return cls({s.key_id: (s.service, s.public_key) for s in signers})

    def check(self, key_id: str, signature: bytes, data: bytes) -> str:
        """The signing service; AuditError with the reason when the key is unknown or the signature is bad."""
        if not key_id or not signature:
            raise AuditError("unsigned")
        entry = self.keys.get(key_id)
        if entry is None:
            raise AuditError(f"signed by unknown key {key_id!r}")
        try:
            entry[1].verify(signature, data)
        except InvalidSignature:
            raise AuditError(f"bad signature for key {key_id!r}") from None
        return entry[0]


# --- checkpoints -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A signed statement: on ``topic``, record ``seq`` has hash ``hash`` (kept outside Kafka).

    ``kind`` ``progress`` (what writers sign): the log reaches at least this record. ``archive``: in addition,
    the records up to and including this one were archived and may be gone from the topic; only such a
    checkpoint lets a log start after seq 0 (a progress checkpoint at the cut would otherwise excuse any head
    deletion made just after it)."""

    topic: str
    seq: int
    hash: bytes
    ts_unix_ns: int
    service: str
    key_id: str = ""
    signature: bytes = b""
    kind: str = PROGRESS

    def _fields(self) -> dict[str, Any]:
        """Everything the signature covers (all but the signature itself)."""
        return {"topic": self.topic, "seq": self.seq, "hash": self.hash.hex(), "ts_unix_ns": self.ts_unix_ns,
                "service": self.service, "key_id": self.key_id, "kind": self.kind}

    def message(self) -> bytes:
        return CHECKPOINT_DOMAIN + json.dumps(self._fields(), sort_keys=True, separators=(",", ":")).encode()

    def signed(self, signer: AuditSigner) -> "Checkpoint":
        unsigned = dataclasses.replace(self, service=signer.service, key_id=signer.key_id, signature=b"")
        return dataclasses.replace(unsigned, signature=signer.sign(unsigned.message()))

    def to_line(self) -> str:
        return json.dumps({**self._fields(), "signature": self.signature.hex()}, sort_keys=True) + "\n"

    @classmethod
    def from_line(cls, line: str) -> "Checkpoint":
        """ValueError (also KeyError/TypeError) when the line is not a checkpoint."""
        d = json.loads(line)
        return cls(topic=str(d["topic"]), seq=int(d["seq"]), hash=bytes.fromhex(d["hash"]),
                   ts_unix_ns=int(d["ts_unix_ns"]), service=str(d["service"]), key_id=str(d["key_id"]),
                   signature=bytes.fromhex(d["signature"]), kind=str(d["kind"]))

    def describe(self) -> str:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.ts_unix_ns / 1e9))
        what = "archive checkpoint" if self.kind == ARCHIVE else "checkpoint"
        return f"{what} seq {self.seq} signed by {self.service} at {when}"


@dataclasses.dataclass(frozen=True)
class CheckpointStore:
    """``<root>/<topic>/<service>.<instance>.checkpoints``: one JSON checkpoint a line, appended with O_APPEND.

    ``instance`` (the replica's host name, i.e. its pod name) keeps the replicas of one service out of each
    other's files: O_APPEND is not atomic across the clients of a network file system. Without it (tools,
    tests) the file is ``<service>.checkpoints``. :meth:`load` reads every file of the topic's directory and
    takes each checkpoint's service from its signature, never from the file's name."""

    root: Path
    instance: str = ""

    def __post_init__(self) -> None:
        if self.instance and not INSTANCE_NAME.fullmatch(self.instance):
            raise AuditError(f"audit checkpoint instance {self.instance[:80]!r} is not a host name "
                             "(letters, digits, '.', '_', '-'; set LFR_INSTANCE)")

    def file(self, topic: str, service: str) -> Path:
        name = f"{service}.{self.instance}" if self.instance else service
        return self.root / topic / f"{name}{CHECKPOINT_SUFFIX}"

    def append(self, checkpoint: Checkpoint) -> None:
        path = self.file(checkpoint.topic, checkpoint.service)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, checkpoint.to_line().encode())  # one write: lines of concurrent writers never interleave
            os.fsync(fd)
        finally:
            os.close(fd)

    def load(self, topic: str, keyring: Keyring) -> tuple[list[Checkpoint], list[str]]:
        """(valid checkpoints of ``topic``, problems: one line per checkpoint that does not hold)."""
        valid: list[Checkpoint] = []
        problems: list[str] = []
        directory = self.root / topic
        if not directory.is_dir():
            return valid, problems
        for path in sorted(directory.glob(f"*{CHECKPOINT_SUFFIX}")):
            with path.open("rb") as f:
                for n, raw in enumerate(f, start=1):
                    where = f"{path}:{n}"
                    if len(raw) > MAX_CHECKPOINT_LINE:
                        problems.append(f"{where}: checkpoint line too long")
                        continue
                    try:
                        cp = Checkpoint.from_line(raw.decode())
                    except (ValueError, KeyError, TypeError):
                        problems.append(f"{where}: not a checkpoint")
                        continue
                    try:
                        service = keyring.check(cp.key_id, cp.signature, cp.message())
                    except AuditError as e:
                        problems.append(f"{where}: {cp.describe()}: {e}")
                        continue
                    if service != cp.service or cp.topic != topic or cp.kind not in (PROGRESS, ARCHIVE):
                        problems.append(f"{where}: {cp.describe()}: key of {service}, topic {cp.topic} or kind "
                                        f"{cp.kind!r} does not match")
                        continue
                    valid.append(cp)
        return valid, problems


def build_record(
    *,
    seq: int,
    prev_hash: bytes,
    action: str,
    actor: str,
    service: str,
    deployment_id: str = "",
    subject_ids: Sequence[str] = (),
    subject_hashes: Sequence[bytes] = (),
    details: Mapping[str, str] | None = None,
    ts_unix_ns: int | None = None,
    signer: AuditSigner | None = None,
) -> audit_pb2.AuditRecord:
    """A sealed record (hash filled in, signed by ``signer``: its key_id is in the hash). Refuses content that
    could carry biometric data."""
    if not action or not actor:
        raise AuditError("an audit record needs an action and an actor")
    if len(subject_ids) > MAX_IDS or len(subject_hashes) > MAX_IDS:
        raise AuditError(f"at most {MAX_IDS} ids and hashes per record")
    for h in subject_hashes:
        if len(h) != HASH_BYTES:
            raise AuditError(f"subject_hashes must be {HASH_BYTES}-byte SHA-256 digests, got {len(h)} bytes")
    for k, v in (details or {}).items():
        if not isinstance(v, str) or len(v) > MAX_DETAIL_CHARS:
            raise AuditError(f"detail {k!r} must be a string of at most {MAX_DETAIL_CHARS} characters")
    record = audit_pb2.AuditRecord(
        seq=seq,
        ts_unix_ns=time.time_ns() if ts_unix_ns is None else ts_unix_ns,
        actor=actor,
        action=action,
        deployment_id=deployment_id,
        subject_ids=list(subject_ids),
        subject_hashes=list(subject_hashes),
        details=dict(details or {}),
        service=service,
        prev_hash=prev_hash,
        key_id=signer.key_id if signer is not None else "",
    )
    record.hash = compute_hash(record)
    if signer is not None:
        record.signature = signer.sign(RECORD_DOMAIN + bytes(record.hash))
    return record


# --- verification ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    ok: bool
    records: int                 # records checked (up to and including the broken one)
    last_seq: int | None = None  # seq of the last good record
    broken_offset: int | None = None
    broken_seq: int | None = None
    reason: str = ""
    missing: int = 0             # records known to be missing (head or tail), when that is the failure
    checkpoint_seq: int | None = None  # the newest valid checkpoint's seq

    def summary(self) -> str:
        if self.ok:
            tail = f", last seq {self.last_seq}" if self.last_seq is not None else ""
            cp = f", checkpoint seq {self.checkpoint_seq} holds" if self.checkpoint_seq is not None else ""
            return f"audit chain OK: {self.records} records{tail}{cp}"
        if self.broken_offset is None:
            return f"audit chain FAILED: {self.reason} ({self.records} records read)"
        return (f"audit chain BROKEN at offset {self.broken_offset} (seq {self.broken_seq}): {self.reason}; "
                f"{self.records - 1} records before it are intact")


def _record_problem(rec: audit_pb2.AuditRecord, keyring: Keyring) -> str:
    """Why a record whose chain links hold is still not to be trusted (signature, writer), or ''."""
    try:
        signer = keyring.check(rec.key_id, bytes(rec.signature), RECORD_DOMAIN + bytes(rec.hash))
    except AuditError as e:
        return f"{rec.action!r} record {e} (forged?)"
    if signer != rec.service:
        return f"{rec.action!r} record names service {rec.service!r} but is signed by {signer}'s key (forged?)"
    if not may_write(signer, rec.action):
        return f"service {signer} may not write {rec.action!r} (forged?)"
    return ""


def verify_chain(records: Iterable[tuple[int, bytes | None]], *, keyring: Keyring, start_offset: int = 0,
                 checkpoints: Sequence[Checkpoint] = (), checkpoint_problems: Sequence[str] = (),
                 allow_empty: bool = False) -> VerifyResult:
    """Check (offset, value) pairs read from the log's start offset ``start_offset``; stop at the first broken
    record. Every record must be signed by a key of ``keyring`` whose service may write its action; the log
    must reach every checkpoint in ``checkpoints`` (valid ones) with the same hash; ``checkpoint_problems``
    (checkpoints whose signature does not hold) fail it too."""
    by_seq: dict[int, list[Checkpoint]] = {}
    for cp in checkpoints:
        by_seq.setdefault(cp.seq, []).append(cp)
    newest = max(checkpoints, key=lambda c: (c.seq, c.ts_unix_ns), default=None)
    newest_seq = newest.seq if newest is not None else None
    prev_hash = b""
    expected_seq = 0
    count = 0
    last_seq: int | None = None
    for offset, value in records:
        count += 1
        try:
            rec = audit_pb2.AuditRecord.FromString(value or b"")
        except Exception as e:  # DecodeError and friends: the bytes are not a record
            return VerifyResult(False, count, last_seq, offset, None, f"not an AuditRecord ({type(e).__name__})")
        if not value:
            return VerifyResult(False, count, last_seq, offset, None, "empty record")
        if count == 1 and (offset > 0 or start_offset > 0 or rec.seq > 0):
            cover = [c for c in by_seq.get(rec.seq - 1, [])
                     if c.kind == ARCHIVE and c.hash == bytes(rec.prev_hash)] if rec.seq else []
            if not cover:
                missing = rec.seq if rec.seq else max(offset, start_offset)
                return VerifyResult(
                    False, count, None, offset, rec.seq,
                    f"the log starts at offset {max(offset, start_offset)} with seq {rec.seq}: {missing} records "
                    "missing at the head (deleted), and no signed archive checkpoint ends where it starts",
                    missing=missing,
                    checkpoint_seq=newest_seq)
            expected_seq, prev_hash = rec.seq, bytes(rec.prev_hash)
        problem = ""
        if rec.seq != expected_seq:
            problem = f"seq {rec.seq} where {expected_seq} was expected (gap, fork or reorder)"
        elif bytes(rec.prev_hash) != prev_hash:
            problem = "prev_hash does not match the previous record's hash"
        elif compute_hash(rec) != bytes(rec.hash):
            problem = "hash does not match the record's content (modified)"
        else:
            problem = _record_problem(rec, keyring)
            for cp in by_seq.get(rec.seq, []):
                if not problem and cp.hash != bytes(rec.hash):
                    problem = (f"hash differs from the {cp.describe()} (the topic was re-created or rewritten)")
        if problem:
            return VerifyResult(False, count, last_seq, offset, rec.seq, problem, checkpoint_seq=newest_seq)
        prev_hash = bytes(rec.hash)
        expected_seq += 1
        last_seq = rec.seq
    if checkpoint_problems:
        return VerifyResult(False, count, last_seq, reason=f"{len(checkpoint_problems)} checkpoint(s) do not hold: "
                            + "; ".join(checkpoint_problems[:5]), checkpoint_seq=newest_seq)
    if newest is not None and (last_seq is None or last_seq < newest.seq):
        missing = newest.seq - (-1 if last_seq is None else last_seq)
        ends = "is empty" if last_seq is None else f"ends at seq {last_seq}"
        return VerifyResult(False, count, last_seq, reason=(
            f"the log {ends} but the {newest.describe()}: {missing} records missing at the tail "
            "(cut, or the topic was deleted and re-created)"), missing=missing, checkpoint_seq=newest_seq)
    if count == 0:
        if start_offset > 0:
            return VerifyResult(False, 0, reason=f"the log is empty but starts at offset {start_offset}: "
                                f"{start_offset} records deleted", missing=start_offset)
        if not allow_empty:
            return VerifyResult(False, 0, reason="the log is empty and no checkpoint says it is new "
                                "(a wiped or wrong topic?); pass --new if it is a new log")
    return VerifyResult(True, count, last_seq, checkpoint_seq=newest_seq)


# --- reading the topic ---------------------------------------------------------------


async def _start_reader(kafka: KafkaSettings, topic: str) -> tuple[Any, Any]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    # earliest: a seek below a truncated log's start lands on its start (with 'latest' it would jump to the end)
    consumer = AIOKafkaConsumer(**client_kwargs(kafka, "audit-reader"), enable_auto_commit=False,
                                group_id=None, isolation_level="read_committed", auto_offset_reset="earliest")
    await consumer.start()
    tp = TopicPartition(topic, 0)
    try:
        if topic not in await consumer.topics():
            raise AuditError(f"topic {topic} does not exist (run 'lfr stack up --only kafka')")
        consumer.assign([tp])
    except BaseException:
        await consumer.stop()
        raise
    return consumer, tp


async def log_bounds(consumer: Any, tp: Any) -> tuple[int, int]:
    """(start offset, end offset) of the partition: the start moves up when records are deleted."""
    begin = (await consumer.beginning_offsets([tp]))[tp]
    end = (await consumer.end_offsets([tp]))[tp]
    return int(begin), int(end)


async def read_records(kafka: KafkaSettings, topic: str = AUDIT_TOPIC, *, start: int = 0,
                       follow: bool = False, stop: asyncio.Event | None = None,
                       bounds: list[int] | None = None) -> AsyncIterator[tuple[int, bytes | None]]:
    """(offset, value) from ``start`` (or the log's start offset, when higher) up to the end offset seen at the
    start (or forever with ``follow``). ``bounds``, when given, receives [start offset, end offset]."""
    consumer, tp = await _start_reader(kafka, topic)
    try:
        begin, end = await log_bounds(consumer, tp)
        if bounds is not None:
            bounds[:] = [begin, end]
        pos = max(start, begin)
        consumer.seek(tp, pos)
        while follow or pos < end:
            if stop is not None and stop.is_set():
                return
            batch = await consumer.getmany(tp, timeout_ms=500, max_records=500)
            for msg in batch.get(tp, []):
                if not follow and msg.offset >= end:
                    return
                pos = msg.offset + 1
                yield msg.offset, msg.value
            if not follow and not batch:
                pos = max(pos, await consumer.position(tp))  # skips transaction markers, if any
    finally:
        await consumer.stop()


@dataclasses.dataclass(frozen=True)
class VerifyOptions:
    """What verification trusts: the writers' public keys and the checkpoints kept outside Kafka."""

    keyring_dir: Path
    checkpoint_dir: Path
    allow_empty: bool = False

    @classmethod
    def from_settings(cls, settings: AuditSettings, allow_empty: bool = False) -> "VerifyOptions":
        from services.common.grpc_client import cert_paths

        return cls(settings.keyring_dir or cert_paths().audit_keyring, resolve_checkpoint_dir(settings), allow_empty)


def resolve_checkpoint_dir(settings: AuditSettings) -> Path:
    """``audit.checkpoint_dir``, else the local stack's ``<state>/audit/checkpoints``."""
    from services.common.grpc_client import state_dir

    return settings.checkpoint_dir or state_dir() / "audit" / "checkpoints"


async def verify_topic(kafka: KafkaSettings, topic: str, options: VerifyOptions) -> VerifyResult:
    """Recompute the whole chain from the log's start offset, with signatures, writers and checkpoints.
    Raises AuditError when the topic, the keyring or the log cannot be read."""
    keyring = Keyring.load(options.keyring_dir)
    checkpoints, problems = CheckpointStore(options.checkpoint_dir).load(topic, keyring)
    records: list[tuple[int, bytes | None]] = []
    bounds: list[int] = []
    async for item in read_records(kafka, topic, bounds=bounds):
        records.append(item)
    return verify_chain(records, keyring=keyring, start_offset=bounds[0] if bounds else 0, checkpoints=checkpoints,
                        checkpoint_problems=problems, allow_empty=options.allow_empty)


async def _last_record(consumer: Any, tp: Any, end: int) -> audit_pb2.AuditRecord | None:
    """The last record before ``end`` (records only: skips transaction markers, if any)."""
    if end == 0:
        return None
    back = 1
    while True:
        start = max(0, end - back)
        consumer.seek(tp, start)
        last = None
        pos = start
        while pos < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=500)
            msgs = batch.get(tp, [])
            if not msgs:
                break
            for msg in msgs:
                if msg.offset < end:
                    last = msg
                pos = msg.offset + 1
        if last is not None:
            return audit_pb2.AuditRecord.FromString(last.value or b"")
        if start == 0:
            return None
        back *= 4


# --- writing ---------------------------------------------------------------------


class AuditWriter:
    """Appends hash-chained records. ``await start()``, ``await record(...)``, ``await close()``.

    ``record`` returns once the broker acknowledged the record (acks=all), so a
    caller that audits before answering its own client never reports an action
    the log does not hold. ``on_record(action)`` (optional) is called after each
    append (e.g. to count ``lfr_audit_records_total{action}``).

    Every record is signed by ``signer`` (the service's key). With ``checkpoints``, a signed
    :class:`Checkpoint` of the chain head is appended there after the writer's first append, after every
    ``checkpoint_every_records`` appends, ``checkpoint_every_s`` after an append not yet checkpointed, and at
    close. :meth:`from_settings` builds one from the service's ``audit`` settings."""

    def __init__(self, kafka: KafkaSettings, signer: AuditSigner, *, topic: str = AUDIT_TOPIC, redis: Any = None,
                 checkpoints: CheckpointStore | None = None, checkpoint_every_records: int = 100,
                 checkpoint_every_s: float = 60.0, lock_lease_s: float = 10.0, lock_wait_s: float = 10.0,
                 on_record: Any = None) -> None:
        self.kafka = kafka
        self.signer = signer
        self.service = signer.service
        self.topic = topic
        self._checkpoints = checkpoints
        self._checkpoint_every_records = checkpoint_every_records
        self._checkpoint_every_s = checkpoint_every_s
        self._unchecked: tuple[int, bytes] | None = None  # (seq, hash) of the newest append not checkpointed
        self._since_checkpoint = 0
        self._checkpointed_once = False
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._checkpoint_due = asyncio.Event()
        self._redis = redis
        self._lock_lease_s = lock_lease_s
        self._lock_wait_s = lock_wait_s
        self._on_record = on_record
        self._local = asyncio.Lock()
        self._producer: Any = None
        self._reader: Any = None
        self._tp: Any = None
        self._next_offset: int | None = None
        self._next_seq = 0
        self._last_hash = b""

    @classmethod
    def from_settings(cls, kafka: KafkaSettings, service: str, settings: AuditSettings, *, topic: str = AUDIT_TOPIC,
                      redis: Any = None, on_record: Any = None, instance: str | None = None) -> "AuditWriter":
        """``service``'s writer: its key from ``signing_key_file`` (default the dev PKI's), checkpoints into
        ``checkpoint_dir`` (default ``<state>/audit/checkpoints``), in this replica's own file (``instance``,
        default the host name). AuditError when the key cannot be loaded."""
        from services.common.grpc_client import cert_paths

        signer = AuditSigner.load(service, settings.signing_key_file or cert_paths().audit_key(service))
        store = CheckpointStore(resolve_checkpoint_dir(settings),
                                instance=host_instance() if instance is None else instance)
        return cls(kafka, signer, topic=topic, redis=redis, checkpoints=store,
                   checkpoint_every_records=settings.checkpoint_every_records,
                   checkpoint_every_s=settings.checkpoint_every_s, on_record=on_record)

    @property
    def producer(self) -> Any:
        return self._producer

    async def start(self) -> None:
        """Connect and read the last record (raises while Kafka is down)."""
        if self._reader is None:
            self._reader, self._tp = await _start_reader(self.kafka, self.topic)
        if self._producer is None:
            self._producer = await start_producer(self.kafka, f"{self.service}-audit")
        async with self._local:
            await self._sync()
        if self._checkpoints is not None and self._checkpoint_task is None:
            self._checkpoint_task = asyncio.create_task(self._checkpoint_timer(), name="audit-checkpoints")

    async def close(self) -> None:
        if self._checkpoint_task is not None:
            self._checkpoint_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpoint_task
            self._checkpoint_task = None
        self._checkpoint()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._reader is not None:
            await self._reader.stop()
            self._reader = None

    def _checkpoint(self) -> None:
        """Sign and keep a checkpoint of this writer's newest append, when it has one not yet checkpointed."""
        if self._checkpoints is None or self._unchecked is None:
            return
        seq, digest = self._unchecked
        cp = Checkpoint(topic=self.topic, seq=seq, hash=digest, ts_unix_ns=time.time_ns(), service=self.service)
        try:
            self._checkpoints.append(cp.signed(self.signer))
        except OSError as e:  # the record stands; the next checkpoint covers it
            log.error("audit checkpoint not written", extra={"topic": self.topic, "seq": seq,
                                                             "error": f"{type(e).__name__}: {e.strerror}"})
            return
        self._unchecked = None
        self._since_checkpoint = 0
        self._checkpointed_once = True

    async def _checkpoint_timer(self) -> None:
        """``checkpoint_every_s`` after an append that is not checkpointed yet, checkpoint it."""
        while True:
            await self._checkpoint_due.wait()
            await asyncio.sleep(self._checkpoint_every_s)
            self._checkpoint_due.clear()
            async with self._local:
                self._checkpoint()

    async def _sync(self) -> None:
        """Chain onto whatever is now last in the partition (another writer may have appended)."""
        end = (await self._reader.end_offsets([self._tp]))[self._tp]
        if end == self._next_offset:
            return
        last = await _last_record(self._reader, self._tp, end)
        self._next_seq = last.seq + 1 if last is not None else 0
        self._last_hash = bytes(last.hash) if last is not None else b""
        self._next_offset = end

    async def record(self, action: str, *, actor: str, deployment_id: str = "", subject_ids: Sequence[str] = (),
                     subject_hashes: Sequence[bytes] = (), details: Mapping[str, str] | None = None
                     ) -> audit_pb2.AuditRecord:
        """Append one record; returns it (with seq and hash) once acknowledged."""
        if self._producer is None or self._reader is None:
            raise AuditError("audit writer not started")
        async with self._local:
            lock = None
            if self._redis is not None:
                lock = self._redis.lock(LOCK_KEY, timeout=self._lock_lease_s, blocking_timeout=self._lock_wait_s)
                if not await lock.acquire():
                    raise AuditError(f"could not take the audit lock {LOCK_KEY} within {self._lock_wait_s} s")
            try:
                await self._sync()
                rec = build_record(seq=self._next_seq, prev_hash=self._last_hash, action=action, actor=actor,
                                   service=self.service, deployment_id=deployment_id, subject_ids=subject_ids,
                                   subject_hashes=subject_hashes, details=details, signer=self.signer)
                meta = await self._producer.send_and_wait(
                    self.topic, rec.SerializeToString(), key=action.encode(), partition=0,
                    headers=make_headers(rec, self.service))
                self._next_seq = rec.seq + 1
                self._last_hash = bytes(rec.hash)
                self._next_offset = meta.offset + 1
                self._unchecked = (rec.seq, bytes(rec.hash))
                self._since_checkpoint += 1
                if not self._checkpointed_once or self._since_checkpoint >= self._checkpoint_every_records:
                    self._checkpoint()
                else:
                    self._checkpoint_due.set()
            finally:
                if lock is not None:
                    try:
                        await lock.release()
                    except Exception as e:  # lease expired under us: say so, the record is written
                        log.warning("audit lock lost before release", extra={"error": f"{type(e).__name__}: {e}"})
        log.info("audited", extra={"action": action, "seq": rec.seq, "offset": meta.offset})
        if self._on_record is not None:
            self._on_record(action)
        return rec

    # convenience for the other services --------------------------------------------

    async def alert_raised(self, alert_id: str, *, actor: str, deployment_id: str, camera_id: str,
                           watchlist_id: str, subject_id: str, score: float) -> audit_pb2.AuditRecord:
        return await self.record(ALERT_RAISE, actor=actor, deployment_id=deployment_id,
                                 subject_ids=[alert_id, camera_id, watchlist_id, subject_id],
                                 details={"score": f"{score:.4f}"})

    async def adjudicated(self, alert_id: str, *, officer_id: str, deployment_id: str, outcome: str,
                          note: str = "") -> audit_pb2.AuditRecord:
        details = {"outcome": outcome}
        if note:
            details["note"] = note[:MAX_DETAIL_CHARS]
        return await self.record(ALERT_ADJUDICATE, actor=officer_id, deployment_id=deployment_id,
                                 subject_ids=[alert_id], details=details)

    async def camera_changed(self, camera_id: str, *, on: bool, actor: str, deployment_id: str,
                             reason: str = "") -> audit_pb2.AuditRecord:
        return await self.record(CAMERA_ON if on else CAMERA_OFF, actor=actor, deployment_id=deployment_id,
                                 subject_ids=[camera_id],
                                 details={"reason": reason[:MAX_DETAIL_CHARS]} if reason else None)
