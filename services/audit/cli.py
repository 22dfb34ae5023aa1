"""`lfr audit verify|tail|keys init`: check and follow the hash-chained audit log.

``verify`` reads the topic from its start offset, recomputes every hash, checks
every record's signature against the keyring (``--keyring``) and that its service
may write its action, and checks the log against the signed checkpoints kept
outside Kafka (``--checkpoints``): missing records at the head or the tail, a
re-created topic, a forged record or checkpoint all fail, naming what. An empty
log fails unless ``--new``. Exit 0 when intact, 1 when not; a topic or keyring
that cannot be read is an error (exit 2).
``tail`` prints records (one line each: offset, seq, time, action, actor, ids)
and, with ``--follow``, keeps printing new ones until Ctrl-C.
``keys init --dir DIR`` makes each service's audit signing key and the keyring
(DIR/audit/<service>.key, DIR/audit/pub) when missing: the one-shot step of the
development deployments, which share one volume of keys.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from services.common.kafka import AUDIT_TOPIC


def add_parser(sub: Any) -> None:
    p = sub.add_parser("audit", help="verify and follow the tamper-evident audit log")
    asub = p.add_subparsers(dest="audit_command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
        q.add_argument("--topic", default=AUDIT_TOPIC, help="audit topic (default %(default)s)")

    v = asub.add_parser("verify", help="recompute the hash chain from the topic start")
    common(v)
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    v.add_argument("--keyring", type=Path, default=None,
                   help="directory of the writers' public keys <service>.pub (default: the dev PKI's "
                        "<state>/certs/audit/pub)")
    v.add_argument("--checkpoints", type=Path, default=None,
                   help="directory of the signed checkpoints (default <state>/audit/checkpoints)")
    v.add_argument("--new", action="store_true",
                   help="the log is new: an empty log without checkpoints verifies (otherwise it fails)")
    v.set_defaults(func=_verify)

    t = asub.add_parser("tail", help="print the last records, optionally follow")
    common(t)
    t.add_argument("-n", "--lines", type=int, default=20, help="how many of the last records to print first")
    t.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    t.add_argument("--json", action="store_true", help="one JSON object per record")
    t.set_defaults(func=_tail)

    k = asub.add_parser("keys", help="the services' audit signing keys (development deployments)")
    ksub = k.add_subparsers(dest="keys_command", required=True)
    ki = ksub.add_parser("init", help="make each service's Ed25519 audit key and the keyring when missing "
                                      "(idempotent; keys never printed)")
    ki.add_argument("--dir", type=Path, required=True,
                    help="certs directory: keys go to DIR/audit/<service>.key (0600), public keys to DIR/audit/pub "
                         "(the layout of `lfr certs init`)")
    ki.add_argument("--service", action="append", default=None,
                    help="only this service (repeatable; default every service: each audits api.refused)")
    ki.set_defaults(func=_keys_init)


def _kafka(args: argparse.Namespace) -> Any:
    from services.common.settings import KafkaSettings

    return KafkaSettings(bootstrap=args.bootstrap)


def _run(coro: Any) -> Any:
    from aiokafka.errors import KafkaConnectionError

    from services.common.audit import AuditError
    from services.common.errors import SetupError

    try:
        return asyncio.run(coro)
    except KafkaConnectionError as e:
        raise SetupError(f"cannot reach Kafka: {e}", "run 'lfr stack up --only kafka' or pass --bootstrap") from e
    except AuditError as e:
        raise SetupError(str(e), "check --topic and that the stack is up") from e


def _verify(args: argparse.Namespace) -> int:
    from services.common.audit import VerifyOptions, verify_topic
    from services.common.settings import AuditSettings

    options = VerifyOptions.from_settings(AuditSettings(keyring_dir=args.keyring, checkpoint_dir=args.checkpoints),
                                          allow_empty=args.new)
    result = _run(verify_topic(_kafka(args), args.topic, options))
    if args.json:
        print(json.dumps({"topic": args.topic, **result.__dict__}))
    else:
        print(f"{args.topic}: {result.summary()}")
    return 0 if result.ok else 1


def _keys_init(args: argparse.Namespace) -> int:
    """Development deployments only (docker-compose.yml, k8s/components/dev-audit-keys): every service that
    mounts DIR can read every key. Production gives each service its own key (k8s/secrets/create_secrets.py)."""
    from services.common.errors import SetupError
    from services.common.pki import SERVICES, CertPaths, init_audit_keys

    unknown = sorted(set(args.service or ()) - set(SERVICES))
    if unknown:
        raise SetupError(f"unknown service(s) {', '.join(unknown)}", f"name one of {', '.join(SERVICES)}")
    paths = CertPaths(args.dir)
    try:
        report = init_audit_keys(paths, tuple(args.service or SERVICES))
    except (OSError, ValueError) as e:
        raise SetupError(f"cannot make the audit keys in {args.dir}: {type(e).__name__}: {e}",
                         "pass a --dir this user can write (a volume owned by uid 10001 in the images)") from e
    print(f"audit keys in {paths.audit_keyring.parent}: created {len(report['created'])} "
          f"({', '.join(report['created']) or '-'}), kept {len(report['kept'])}")
    return 0


def format_record(offset: int, value: bytes | None, as_json: bool) -> str:
    from lfr.v1 import audit_pb2

    try:
        rec = audit_pb2.AuditRecord.FromString(value or b"")
    except Exception as e:  # show the damage, keep tailing
        return f"{offset}\t<not an AuditRecord: {type(e).__name__}>"
    when = datetime.fromtimestamp(rec.ts_unix_ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")
    if as_json:
        return json.dumps({
            "offset": offset, "seq": rec.seq, "ts": when, "action": rec.action, "actor": rec.actor,
            "service": rec.service, "deployment_id": rec.deployment_id, "subject_ids": list(rec.subject_ids),
            "subject_hashes": [bytes(h).hex() for h in rec.subject_hashes], "details": dict(rec.details),
            "hash": bytes(rec.hash).hex(),
        })
    details = " ".join(f"{k}={v}" for k, v in sorted(rec.details.items()))
    return (f"{offset}\tseq={rec.seq}\t{when}\t{rec.action}\tactor={rec.actor}\tdeployment={rec.deployment_id or '-'}"
            f"\tids={','.join(rec.subject_ids) or '-'}\t{details}\thash={bytes(rec.hash).hex()[:12]}")


async def _tail_async(args: argparse.Namespace) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from services.common.audit import read_records
    from services.common.kafka import client_kwargs

    kafka = _kafka(args)
    probe = AIOKafkaConsumer(**client_kwargs(kafka, "audit-tail"), enable_auto_commit=False)
    await probe.start()
    try:
        tp = TopicPartition(args.topic, 0)
        end = (await probe.end_offsets([tp]))[tp]
    finally:
        await probe.stop()
    async for offset, value in read_records(kafka, args.topic, start=max(0, end - max(0, args.lines)),
                                            follow=args.follow):
        print(format_record(offset, value, args.json), flush=True)


def _tail(args: argparse.Namespace) -> int:
    try:
        _run(_tail_async(args))
    except KeyboardInterrupt:
        print("", file=sys.stderr)
    return 0
