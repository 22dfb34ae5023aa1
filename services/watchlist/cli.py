"""`lfr watchlist create|enrol|remove|list|show|close`: the WatchlistService's gRPC API
from the command line.

    lfr watchlist create --deployment op-1 --auth-ref AUTH-42 --officer "Supt Smith" \\
        --purpose "..." --criteria "..." --valid-from now --valid-until +8h
    lfr watchlist enrol WL --subject S1 --category wanted --image a.jpg=custody/17 [--image ...]
    lfr watchlist enrol WL --from-dir DIR --category missing   # one folder per subject, progress bar
    lfr watchlist remove WL S1 --reason "..."
    lfr watchlist list [--deployment op-1] [--all]
    lfr watchlist show WL [--subjects]
    lfr watchlist close WL --reason "operation ended"
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from services.cli.grpc_cli import Target, add_service_options, call_blocking
from services.common.ports import local_address

DEFAULT_ADDRESS = local_address("watchlist")
TARGET = Target("watchlist service", "start it (python -m services.watchlist) or pass --address")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}  # the formats the service accepts (limits.ACCEPTED_FORMATS)
CATEGORIES = ("wanted", "missing", "at_risk")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("watchlist", help="create, fill, inspect and close watchlists (gRPC WatchlistService)")
    add_service_options(p, DEFAULT_ADDRESS, "watchlist service host:port", flag="--address", timeout_s=30.0,
                        json_help="print results as JSON")
    w = p.add_subparsers(dest="watchlist_command", required=True)

    c = w.add_parser("create", help="create an authorised watchlist for one deployment")
    c.add_argument("--name", default="")
    c.add_argument("--deployment", default="", help="deployment (operation) id")
    c.add_argument("--auth-ref", default="", help="authorisation reference")
    c.add_argument("--officer", default="", help="authorising officer")
    c.add_argument("--purpose", default="")
    c.add_argument("--criteria", default="", help="criteria for inclusion")
    c.add_argument("--valid-from", default="now", help="ISO time, 'now' or +DURATION (e.g. +30m)")
    c.add_argument("--valid-until", default="", help="ISO time or +DURATION from now (e.g. +8h)")
    c.add_argument("--request-id", default="", help="idempotency key")
    c.set_defaults(func=_create)

    e = w.add_parser("enrol", help="enrol a subject's images, or every subject folder of --from-dir")
    e.add_argument("watchlist")
    e.add_argument("--subject", help="subject id (with --image)")
    e.add_argument("--category", choices=CATEGORIES, default="wanted")
    e.add_argument("--image", action="append", default=[], metavar="PATH[=SOURCE_REF]",
                   help="an image and its source reference (default: the file path); repeatable")
    e.add_argument("--from-dir", type=Path, help="one sub-folder per subject (folder name = subject id)")
    e.add_argument("--source-prefix", default="file:", help="source_ref prefix for --from-dir images")
    e.set_defaults(func=_enrol)

    r = w.add_parser("remove", help="remove a subject (all its images)")
    r.add_argument("watchlist")
    r.add_argument("subject")
    r.add_argument("--reason", default="")
    r.set_defaults(func=_remove)

    ls = w.add_parser("list", help="list watchlists")
    ls.add_argument("--deployment", default="")
    ls.add_argument("--all", action="store_true", help="include closed and expired ones")
    ls.set_defaults(func=_list)

    s = w.add_parser("show", help="one watchlist with counts (and subjects)")
    s.add_argument("watchlist")
    s.add_argument("--subjects", action="store_true")
    s.set_defaults(func=_show)

    cl = w.add_parser("close", help="destroy a watchlist's vectors and subjects now")
    cl.add_argument("watchlist")
    cl.add_argument("--reason", default="")
    cl.set_defaults(func=_close)

    rb = w.add_parser("reembed", help="move an open watchlist to the platform's active embedder (face.embedder), "
                                      "from its retained aligned enrolment images; audited")
    rb.add_argument("watchlist")
    rb.add_argument("--reason", required=True, help="why it moves (e.g. the change request that switched embedders)")
    rb.set_defaults(func=_reembed)


# --- helpers ---------------------------------------------------------------------


def parse_time(value: str, now_ns: int | None = None) -> int:
    """'now', '+90s' / '+30m' / '+8h' / '+2d', or an ISO 8601 time (UTC if no zone) -> unix ns."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    if not value:
        return 0
    if value == "now":
        return now_ns
    m = re.fullmatch(r"\+(\d+(?:\.\d+)?)([smhd])", value)
    if m:
        return now_ns + int(float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)] * 1e9)
    try:
        dt = datetime.fromisoformat(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad time {value!r}: use now, +8h or an ISO time") from e
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1e9)


def _stub(args: argparse.Namespace) -> Any:
    from lfr.v1 import watchlist_pb2_grpc
    from services.common.grpc_client import sync_channel

    return watchlist_pb2_grpc.WatchlistServiceStub(sync_channel(args.address))


def _call(args: argparse.Namespace, method: Any, request: Any) -> Any:
    return call_blocking(method, request, args.address, TARGET, args.timeout)


def _iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="seconds") if ns else "-"


def _print_watchlist(args: argparse.Namespace, wl: Any, subjects: Any = ()) -> None:
    from google.protobuf.json_format import MessageToDict

    from lfr.v1 import common_pb2, watchlist_pb2

    if args.json:
        out = MessageToDict(wl, preserving_proto_field_name=True)
        if subjects:
            out["subjects"] = [MessageToDict(s, preserving_proto_field_name=True) for s in subjects]
        print(json.dumps(out))
        return
    state = watchlist_pb2.WatchlistState.Name(wl.state).removeprefix("WATCHLIST_STATE_").lower()
    print(f"{wl.watchlist_id}\t{state}\tdeployment={wl.deployment_id}\tsubjects={wl.subject_count}"
          f"\timages={wl.image_count}\t{_iso(wl.valid_from_unix_ns)} .. {_iso(wl.valid_until_unix_ns)}"
          f"\tauth={wl.authorisation_ref}\tofficer={wl.authorising_officer}"
          + (f"\tembedder={wl.embedder}" if wl.embedder else "")
          + (f"\tclosed={_iso(wl.closed_unix_ns)} ({wl.close_reason})" if wl.closed_unix_ns else ""))
    for s in subjects:
        cat = common_pb2.SubjectCategory.Name(s.category).removeprefix("SUBJECT_CATEGORY_").lower()
        print(f"  {s.subject_id}\t{cat}\timages={s.image_count}\tsources={','.join(s.source_refs)}")


# --- commands ----------------------------------------------------------------------


def _create(args: argparse.Namespace) -> int:
    from lfr.v1 import watchlist_pb2

    req = watchlist_pb2.CreateWatchlistRequest(
        name=args.name, deployment_id=args.deployment, authorisation_ref=args.auth_ref,
        authorising_officer=args.officer, purpose=args.purpose, criteria=args.criteria,
        valid_from_unix_ns=parse_time(args.valid_from), valid_until_unix_ns=parse_time(args.valid_until),
        request_id=args.request_id)
    resp = _call(args, _stub(args).CreateWatchlist, req)
    _print_watchlist(args, resp.watchlist)
    return 0


def _subject_request(watchlist: str, subject: str, category: str, images: list[tuple[Path, str]]) -> Any:
    from lfr.v1 import common_pb2, watchlist_pb2

    return watchlist_pb2.EnrolSubjectRequest(
        watchlist_id=watchlist, subject_id=subject,
        category=common_pb2.SubjectCategory.Value(f"SUBJECT_CATEGORY_{category.upper()}"),
        images=[watchlist_pb2.EnrolImage(image=p.read_bytes(), source_ref=ref) for p, ref in images])


def _enrol(args: argparse.Namespace) -> int:
    if args.from_dir is not None:
        return _enrol_dir(args)
    if not args.subject or not args.image:
        raise SystemExit("lfr watchlist enrol: give --subject and --image, or --from-dir")
    images = []
    for spec in args.image:
        path, _, ref = spec.partition("=")
        images.append((Path(path), ref or str(Path(path))))
    resp = _call(args, _stub(args).EnrolSubject, _subject_request(args.watchlist, args.subject, args.category, images))
    print(f"enrolled {resp.subject.subject_id}: {resp.subject.image_count} image(s) in {args.watchlist}")
    return 0


def _enrol_dir(args: argparse.Namespace) -> int:
    import grpc
    from tqdm import tqdm

    root: Path = args.from_dir
    folders = sorted(d for d in root.iterdir() if d.is_dir()) if root.is_dir() else []
    if not folders:
        raise SystemExit(f"lfr watchlist enrol: {root} holds no subject folders")
    stub = _stub(args)
    ok, failed = 0, []
    bar = tqdm(folders, unit="subject", file=sys.stderr)
    for folder in bar:
        bar.set_postfix_str(folder.name)
        images = [(p, f"{args.source_prefix}{p}") for p in sorted(folder.iterdir())
                  if p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            failed.append((folder.name, "no images"))
            continue
        try:
            stub.EnrolSubject(_subject_request(args.watchlist, folder.name, args.category, images),
                              timeout=args.timeout)
            ok += 1
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.UNAVAILABLE:
                raise
            failed.append((folder.name, f"{e.code().name}: {e.details()}"))
    for name, why in failed:
        print(f"refused {name}: {why}")
    print(f"enrolled {ok} of {len(folders)} subjects into {args.watchlist}")
    return 0 if not failed else 1


def _remove(args: argparse.Namespace) -> int:
    from lfr.v1 import watchlist_pb2

    resp = _call(args, _stub(args).RemoveSubject, watchlist_pb2.RemoveSubjectRequest(
        watchlist_id=args.watchlist, subject_id=args.subject, reason=args.reason))
    print(f"removed {args.subject}: {resp.vectors_deleted} vector(s) deleted")
    return 0


def _list(args: argparse.Namespace) -> int:
    from lfr.v1 import watchlist_pb2

    token = ""
    while True:
        resp = _call(args, _stub(args).ListWatchlists, watchlist_pb2.ListWatchlistsRequest(
            deployment_id=args.deployment, include_closed=args.all, page_token=token))
        for wl in resp.watchlists:
            _print_watchlist(args, wl)
        token = resp.next_page_token
        if not token:
            return 0


def _show(args: argparse.Namespace) -> int:
    from lfr.v1 import watchlist_pb2

    resp = _call(args, _stub(args).GetWatchlist, watchlist_pb2.GetWatchlistRequest(
        watchlist_id=args.watchlist, include_subjects=args.subjects))
    _print_watchlist(args, resp.watchlist, resp.subjects)
    return 0


def _reembed(args: argparse.Namespace) -> int:
    from lfr.v1 import watchlist_pb2

    resp = _call(args, _stub(args).ReembedWatchlist, watchlist_pb2.ReembedWatchlistRequest(
        watchlist_id=args.watchlist, reason=args.reason))
    _print_watchlist(args, resp.watchlist)
    if resp.vectors or resp.from_embedder != resp.to_embedder:
        print(f"moved {resp.subjects} subject(s), {resp.vectors} vector(s) from {resp.from_embedder} to "
              f"{resp.to_embedder}")
    else:
        print(f"already on {resp.to_embedder}: nothing to move")
    return 0


def _close(args: argparse.Namespace) -> int:
    from lfr.v1 import watchlist_pb2

    resp = _call(args, _stub(args).CloseWatchlist, watchlist_pb2.CloseWatchlistRequest(
        watchlist_id=args.watchlist, reason=args.reason))
    _print_watchlist(args, resp.watchlist)
    print(f"destroyed {resp.subjects_deleted} subject(s), {resp.vectors_deleted} vector(s)")
    return 0
