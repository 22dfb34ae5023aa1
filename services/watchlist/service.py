"""WatchlistService: authorised, per-deployment, time-limited watchlists over gRPC.

- CreateWatchlist refuses a request missing any of deployment id, authorisation
  reference, authorising officer, purpose, criteria or validity window
  (INVALID_ARGUMENT naming the field).
- EnrolSubject runs every image through detection, the quality gate and the
  embedder on Triton (services.watchlist.enrol); one refused image refuses the
  request (INVALID_ARGUMENT for no face / several faces / bad image,
  FAILED_PRECONDITION for a face below the quality gate) and nothing is stored.
- A watchlist's faces live in the collection of the embedder they were made with (GetWatchlist names it);
  the service enrols with the platform's active embedder (face.embedder) and refuses to add faces to a
  watchlist of another one; ReembedWatchlist moves an open watchlist to the active embedder from its
  retained aligned enrolment images, or refuses and says what to do.
- CloseWatchlist and the reaper (every ``reaper_interval_s``) delete the
  watchlist's faces rows (vectors and subject metadata together) and mark the
  metadata row CLOSED / EXPIRED.
- Every action is appended to the audit log before the caller gets an answer
  (ids and SHA-256 of images only). An enrolment whose audit record cannot be
  written is rolled back (UNAVAILABLE).
- Deadlines: each step runs under the call's remaining time; past it the call
  ends with DEADLINE_EXCEEDED and stored state is rolled back where it was partial.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import numpy as np
from lfr.v1 import common_pb2, watchlist_pb2

from services.common import audit as audit_mod
from services.common import faces_schema
from services.common.audit import AuditWriter
from services.watchlist import enrol, limits, schema
from services.watchlist.config import WatchlistSettings
from services.watchlist.store import Store, SubjectInfo

log = logging.getLogger(__name__)
T = TypeVar("T")

NS = 1_000_000_000
LOCK_PREFIX = "lfr:watchlist:"  # lfr:watchlist:<id>:lock (the watchlist service's Redis user may use lfr:watchlist:*)
OPEN = watchlist_pb2.WATCHLIST_STATE_ACTIVE  # stored state of a live watchlist (PENDING/ACTIVE from the clock)
CLOSED = watchlist_pb2.WATCHLIST_STATE_CLOSED
EXPIRED = watchlist_pb2.WATCHLIST_STATE_EXPIRED
CATEGORY_NAMES = {
    common_pb2.SUBJECT_CATEGORY_WANTED: "wanted",
    common_pb2.SUBJECT_CATEGORY_MISSING: "missing",
    common_pb2.SUBJECT_CATEGORY_AT_RISK: "at_risk",
}
CATEGORY_VALUES = {v: k for k, v in CATEGORY_NAMES.items()}
REQUIRED_CREATE_FIELDS = ("deployment_id", "authorisation_ref", "authorising_officer", "purpose", "criteria",
                          "valid_from_unix_ns", "valid_until_unix_ns")


class Refusal(Exception):
    """Ends the call with ``code`` and a message meant for the caller."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _id(value: str, field: str) -> str:
    if not value:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"{field} is required")
    try:
        return faces_schema.check_id(value)
    except ValueError as e:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {e}") from e


def validate_create(req: watchlist_pb2.CreateWatchlistRequest, now_ns: int) -> None:
    """INVALID_ARGUMENT naming the first missing or bad field."""
    for field in REQUIRED_CREATE_FIELDS:
        value = getattr(req, field)
        if not (value.strip() if isinstance(value, str) else value):
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"{field} is required")
    _id(req.deployment_id, "deployment_id")
    if req.valid_until_unix_ns <= req.valid_from_unix_ns:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "valid_until_unix_ns must be after valid_from_unix_ns")
    if req.valid_until_unix_ns <= now_ns:
        raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "valid_until_unix_ns is in the past")
    for field, limit in (("name", 256), ("authorisation_ref", 256), ("authorising_officer", 256),
                         ("purpose", schema.MAX_TEXT), ("criteria", schema.MAX_TEXT)):
        if len(getattr(req, field).encode()) > limit:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, f"{field} is longer than {limit} bytes")
    if req.request_id:
        _id(req.request_id, "request_id")


def state_of(row: dict[str, Any], now_ns: int) -> int:
    if row["state"] != OPEN:
        return int(row["state"])
    if now_ns < row["valid_from_ns"]:
        return watchlist_pb2.WATCHLIST_STATE_PENDING
    if now_ns >= row["valid_until_ns"]:
        return EXPIRED  # the reaper will destroy it within its interval
    return watchlist_pb2.WATCHLIST_STATE_ACTIVE


def to_proto(row: dict[str, Any], now_ns: int, subjects: int = 0, images: int = 0,
             embedder: str = "") -> watchlist_pb2.Watchlist:
    return watchlist_pb2.Watchlist(
        watchlist_id=row["watchlist_id"], name=row["name"], deployment_id=row["deployment_id"],
        authorisation_ref=row["authorisation_ref"], authorising_officer=row["authorising_officer"],
        purpose=row["purpose"], criteria=row["criteria"], valid_from_unix_ns=row["valid_from_ns"],
        valid_until_unix_ns=row["valid_until_ns"], state=state_of(row, now_ns), subject_count=subjects,
        image_count=images, created_unix_ns=row["created_ns"], created_by=row["created_by"],
        closed_unix_ns=row["closed_ns"], close_reason=row["close_reason"], embedder=embedder)


def subject_proto(info: SubjectInfo) -> watchlist_pb2.Subject:
    return watchlist_pb2.Subject(subject_id=info.subject_id, category=CATEGORY_VALUES.get(info.category, 0),
                                 image_count=len(info.image_refs), source_refs=info.image_refs)


class WatchlistLocks:
    """One change at a time per watchlist (enrol, close, expiry, move), across the service's replicas: a Redis
    lock with a lease (``lfr:watchlist:<id>:lock``; in-process only without Redis, as in unit tests). Without it
    a close racing an enrolment or a move could leave faces of a closed watchlist searchable."""

    def __init__(self, redis: Any | None = None, lease_s: float = 300.0, wait_s: float = 10.0) -> None:
        self.redis = redis
        self.lease_s = lease_s
        self.wait_s = wait_s
        self._local: dict[str, list[Any]] = {}  # watchlist id -> [its in-process lock, callers holding or waiting]

    @contextlib.asynccontextmanager
    async def hold(self, watchlist_id: str) -> AsyncIterator[None]:
        """UNAVAILABLE (retry) when another change of the watchlist holds it longer than ``wait_s``."""
        entry = self._local.setdefault(watchlist_id, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            try:
                await asyncio.wait_for(entry[0].acquire(), self.wait_s)
            except asyncio.TimeoutError:
                raise Refusal(grpc.StatusCode.UNAVAILABLE, f"watchlist {watchlist_id} is being changed by another "
                                                           "call: retry in a moment") from None
            lock = None
            try:
                if self.redis is not None:
                    lock = self.redis.lock(f"{LOCK_PREFIX}{watchlist_id}:lock", timeout=self.lease_s,
                                           blocking_timeout=self.wait_s)
                    if not await lock.acquire():
                        raise Refusal(grpc.StatusCode.UNAVAILABLE, f"watchlist {watchlist_id} is being changed by "
                                                                   "another replica: retry in a moment")
                yield
            finally:
                if lock is not None and await lock.owned():
                    await lock.release()
                entry[0].release()
        finally:
            entry[1] -= 1
            if entry[1] == 0:  # nobody holds or waits for it: forget it (a waiter keeps the same lock)
                self._local.pop(watchlist_id, None)


class WatchlistCore:
    """The service's logic, independent of gRPC plumbing (``deadline`` is a loop time or None)."""

    def __init__(self, settings: WatchlistSettings, store: Store, pipeline: Any, audit: AuditWriter,
                 on_limit: Callable[[str], None] = lambda reason: None, locks: WatchlistLocks | None = None) -> None:
        self.locks = locks or WatchlistLocks()
        self.on_limit = on_limit  # counts an enrolment refused by a limit (reason: services.watchlist.limits)
        self.settings = settings
        self.options = settings.watchlist
        self.store = store
        self.pipeline = pipeline
        self.audit = audit
        # destructions done whose audit append failed (Kafka or the audit lock briefly unavailable): the
        # watchlist is already marked closed, so no later close or reaper round would find it again; the
        # record is kept here and appended by the next round or close (lost only if this process dies first)
        self._unaudited: dict[str, tuple[str, str, str, dict[str, str]]] = {}

    # -- helpers ---------------------------------------------------------------
    async def _db(self, deadline: float | None, fn: Callable[..., T], *args: Any) -> T:
        return await _under(deadline, asyncio.to_thread(fn, *args))

    async def _open_watchlist(self, watchlist_id: str, deadline: float | None) -> dict[str, Any]:
        row = await self._db(deadline, self.store.get_watchlist, _id(watchlist_id, "watchlist_id"))
        if row is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"watchlist {watchlist_id} does not exist")
        state = state_of(row, time.time_ns())
        if state in (CLOSED, EXPIRED):
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          f"watchlist {watchlist_id} is {watchlist_pb2.WatchlistState.Name(state)[16:].lower()}")
        return row

    async def _embedder_of(self, wl: dict[str, Any], deadline: float | None) -> str:
        """The embedder of an open watchlist's faces; "" for a closed one (it has none)."""
        if wl["state"] != OPEN:
            return ""
        return await self._db(deadline, self.store.embedder_of, wl["watchlist_id"])

    async def _check_active_embedder(self, wl: dict[str, Any], deadline: float | None) -> None:
        """FAILED_PRECONDITION when the watchlist's faces were made with another embedder than the active one:
        faces added now could never be compared with them."""
        embedder = await self._embedder_of(wl, deadline)
        if embedder != self.store.embedder:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          f"watchlist {wl['watchlist_id']} was built with embedder {embedder}; this platform runs "
                          f"{self.store.embedder}, so its faces cannot match: move it first with 'lfr watchlist "
                          f"reembed {wl['watchlist_id']} --reason ...' (ReembedWatchlist), or close it and enrol "
                          "again")

    def _face_row(self, wl: dict[str, Any], subject_id: str, category: str, image_ref: str, b64: str,
                  embedding: Any) -> dict[str, Any]:
        return {"watchlist_id": wl["watchlist_id"], "deployment_id": wl["deployment_id"], "subject_id": subject_id,
                "category": category,
                # rounded inwards to whole seconds: a face never matches outside the authorised window
                "valid_from": -(-wl["valid_from_ns"] // NS), "valid_until": wl["valid_until_ns"] // NS,
                "image_ref": image_ref[:512], "image_jpeg_b64": b64,
                "embedding": np.asarray(embedding, dtype=np.float32).tolist()}

    # -- RPCs ------------------------------------------------------------------
    async def create(self, req: watchlist_pb2.CreateWatchlistRequest, actor: str,
                     deadline: float | None) -> watchlist_pb2.CreateWatchlistResponse:
        now = time.time_ns()
        validate_create(req, now)
        if req.request_id:
            existing = await self._db(deadline, self.store.find_by_request_id, req.request_id)
            if existing is not None:
                return watchlist_pb2.CreateWatchlistResponse(watchlist=to_proto(existing, now))
        row = {"watchlist_id": f"wl-{uuid.uuid4().hex[:16]}", "name": req.name, "deployment_id": req.deployment_id,
               "authorisation_ref": req.authorisation_ref, "authorising_officer": req.authorising_officer,
               "purpose": req.purpose, "criteria": req.criteria, "valid_from_ns": req.valid_from_unix_ns,
               "valid_until_ns": req.valid_until_unix_ns, "state": OPEN, "created_ns": now, "created_by": actor,
               "closed_ns": 0, "close_reason": "", "request_id": req.request_id}
        await self._db(deadline, self.store.put_watchlist, row)
        await self.audit.record(audit_mod.WATCHLIST_CREATE, actor=actor, deployment_id=req.deployment_id,
                                subject_ids=[row["watchlist_id"]],
                                details={"authorisation_ref": req.authorisation_ref[:256],
                                         "authorising_officer": req.authorising_officer[:256],
                                         "valid_from_unix_ns": str(req.valid_from_unix_ns),
                                         "valid_until_unix_ns": str(req.valid_until_unix_ns),
                                         "purpose_sha256": hashlib.sha256(req.purpose.encode()).hexdigest(),
                                         "criteria_sha256": hashlib.sha256(req.criteria.encode()).hexdigest()})
        log.info("watchlist created", extra={"watchlist_id": row["watchlist_id"], "deployment_id": req.deployment_id})
        return watchlist_pb2.CreateWatchlistResponse(watchlist=to_proto(row, now))

    async def enrol(self, req: watchlist_pb2.EnrolSubjectRequest, actor: str,
                    deadline: float | None) -> watchlist_pb2.EnrolSubjectResponse:
        async with self.locks.hold(_id(req.watchlist_id, "watchlist_id")):
            return await self._enrol(req, actor, deadline)

    async def _enrol(self, req: watchlist_pb2.EnrolSubjectRequest, actor: str,
                     deadline: float | None) -> watchlist_pb2.EnrolSubjectResponse:
        subject_id = _id(req.subject_id, "subject_id")
        category = CATEGORY_NAMES.get(req.category)
        if category is None:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "category is required (wanted, missing or at_risk)")
        if not req.images:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "images: at least one image is required")
        try:
            headers = limits.check_request([im.image for im in req.images], self.options)
        except limits.ImageRefused as e:
            self.on_limit(e.reason)
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        wl = await self._open_watchlist(req.watchlist_id, deadline)
        await self._check_active_embedder(wl, deadline)
        existing = await self._db(deadline, self.store.subject, wl["watchlist_id"], subject_id)
        if existing is not None and existing.category != category:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          f"subject {subject_id} is enrolled as {existing.category}, not {category}")
        checked = await _under(deadline, enrol.check_images(
            self.pipeline, [(im.image, im.source_ref, hd) for im, hd in zip(req.images, headers)]))
        refused = [c for c in checked if not c.accepted]
        for c in refused:
            if c.rejection == enrol.DECODE_ERROR:  # past the header checks: the pixel data is cut short or lies
                self.on_limit(limits.CORRUPT)
        ids = [wl["watchlist_id"], subject_id]
        hashes = [c.sha256 for c in checked]
        if refused:
            await self.audit.record(audit_mod.WATCHLIST_ENROL_REFUSED, actor=actor, deployment_id=wl["deployment_id"],
                                    subject_ids=ids, subject_hashes=hashes,
                                    details={"reasons": "; ".join(c.detail for c in refused)[:512]})
            code = (grpc.StatusCode.FAILED_PRECONDITION if all(c.rejection == enrol.LOW_QUALITY for c in refused)
                    else grpc.StatusCode.INVALID_ARGUMENT)
            raise Refusal(code, "enrolment refused, nothing stored: " + "; ".join(c.detail for c in refused))
        rows = [self._face_row(wl, subject_id, category, c.source_ref,
                               enrol.aligned_jpeg_b64(c.face, self.options.jpeg_quality), c.face.embedding)
                for c in checked if c.face is not None]
        row_ids = await self._db(deadline, self.store.insert_faces, rows)
        try:
            await _under(deadline, self.audit.record(
                audit_mod.WATCHLIST_ENROL, actor=actor, deployment_id=wl["deployment_id"], subject_ids=ids,
                subject_hashes=hashes, details={"category": category, "images": str(len(rows)),
                                                "source_refs": ",".join(c.source_ref for c in checked)[:512]}))
        except BaseException:
            await asyncio.to_thread(self.store.delete_ids, row_ids)  # not recorded -> not enrolled
            raise
        info = await self._db(deadline, self.store.subject, wl["watchlist_id"], subject_id)
        log.info("subject enrolled", extra={"watchlist_id": wl["watchlist_id"], "images": len(rows)})
        subject = subject_proto(info) if info else watchlist_pb2.Subject(subject_id=subject_id)
        subject.enrolled_unix_ns = time.time_ns()
        return watchlist_pb2.EnrolSubjectResponse(
            subject=subject, results=[c.result(str(rid)) for c, rid in zip(checked, row_ids)])

    async def remove(self, req: watchlist_pb2.RemoveSubjectRequest, actor: str,
                     deadline: float | None) -> watchlist_pb2.RemoveSubjectResponse:
        subject_id = _id(req.subject_id, "subject_id")
        wl = await self._db(deadline, self.store.get_watchlist, _id(req.watchlist_id, "watchlist_id"))
        if wl is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"watchlist {req.watchlist_id} does not exist")
        gone = await self._db(deadline, self.store.destroy_faces,
                              faces_schema.subject_filter(wl["watchlist_id"], subject_id))
        n = gone.count
        if n == 0:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"subject {subject_id} is not in watchlist {wl['watchlist_id']}")
        await self.audit.record(audit_mod.WATCHLIST_REMOVE_SUBJECT, actor=actor, deployment_id=wl["deployment_id"],
                                subject_ids=[wl["watchlist_id"], subject_id],
                                details={"vectors_deleted": str(n), "reason": req.reason[:256],
                                         "storage_erasure": gone.erasure})
        return watchlist_pb2.RemoveSubjectResponse(vectors_deleted=n)

    async def list(self, req: watchlist_pb2.ListWatchlistsRequest,
                   deadline: float | None) -> watchlist_pb2.ListWatchlistsResponse:
        expr = faces_schema.deployment_filter(_id(req.deployment_id, "deployment_id")) if req.deployment_id \
            else 'watchlist_id != ""'
        if not req.include_closed:
            expr += f" and state == {OPEN}"
        rows = sorted(await self._db(deadline, self.store.list_watchlists, expr),
                      key=lambda r: (r["created_ns"], r["watchlist_id"]))
        try:
            start = int(req.page_token or 0)
        except ValueError as e:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "page_token is not one this service issued") from e
        size = req.page_size or 100
        page = rows[start:start + size]
        now = time.time_ns()
        out = watchlist_pb2.ListWatchlistsResponse(
            next_page_token=str(start + size) if start + size < len(rows) else "")
        for r in page:
            subjects = await self._db(deadline, self.store.subjects, r["watchlist_id"]) if r["state"] == OPEN else {}
            out.watchlists.append(to_proto(r, now, len(subjects), sum(len(s.image_refs) for s in subjects.values()),
                                           await self._embedder_of(r, deadline)))
        return out

    async def get(self, req: watchlist_pb2.GetWatchlistRequest,
                  deadline: float | None) -> watchlist_pb2.GetWatchlistResponse:
        wl = await self._db(deadline, self.store.get_watchlist, _id(req.watchlist_id, "watchlist_id"))
        if wl is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"watchlist {req.watchlist_id} does not exist")
        subjects = await self._db(deadline, self.store.subjects, wl["watchlist_id"])
        out = watchlist_pb2.GetWatchlistResponse(watchlist=to_proto(
            wl, time.time_ns(), len(subjects), sum(len(s.image_refs) for s in subjects.values()),
            await self._embedder_of(wl, deadline)))
        if req.include_subjects:
            out.subjects.extend(subject_proto(s) for s in sorted(subjects.values(), key=lambda s: s.subject_id))
        return out

    async def destroy(self, wl: dict[str, Any], state: int, reason: str, actor: str,
                      deadline: float | None) -> tuple[dict[str, Any], int, int]:
        """Delete the watchlist's faces (vectors + subject metadata), mark it, audit it."""
        subjects = await self._db(deadline, self.store.subjects, wl["watchlist_id"])
        gone = await self._db(deadline, self.store.destroy_faces, faces_schema.watchlist_filter(wl["watchlist_id"]))
        n = gone.count
        row = {**wl, "state": state, "closed_ns": time.time_ns(), "close_reason": reason[:1024]}
        await self._db(deadline, self.store.put_watchlist, row)
        action = audit_mod.WATCHLIST_CLOSE if state == CLOSED else audit_mod.WATCHLIST_EXPIRE
        self._unaudited[wl["watchlist_id"]] = (action, actor, wl["deployment_id"], {
            "subjects_deleted": str(len(subjects)), "vectors_deleted": str(n), "reason": reason[:256],
            "storage_erasure": gone.erasure})
        await self._audit_destroyed(wl["watchlist_id"])
        log.info("watchlist destroyed", extra={"watchlist_id": wl["watchlist_id"], "vectors": n,
                                               "state": watchlist_pb2.WatchlistState.Name(state)})
        return row, len(subjects), n

    async def _audit_destroyed(self, watchlist_id: str) -> None:
        """Append the destruction record kept for ``watchlist_id``; it stays kept when the append fails."""
        kept = self._unaudited.pop(watchlist_id, None)  # taken out while appending: never appended twice
        if kept is None:
            return
        action, actor, deployment_id, details = kept
        try:
            await self.audit.record(action, actor=actor, deployment_id=deployment_id, subject_ids=[watchlist_id],
                                    details=details)
        except BaseException:
            self._unaudited[watchlist_id] = kept
            raise

    async def close(self, req: watchlist_pb2.CloseWatchlistRequest, actor: str,
                    deadline: float | None) -> watchlist_pb2.CloseWatchlistResponse:
        async with self.locks.hold(_id(req.watchlist_id, "watchlist_id")):
            return await self._close(req, actor, deadline)

    async def _close(self, req: watchlist_pb2.CloseWatchlistRequest, actor: str,
                     deadline: float | None) -> watchlist_pb2.CloseWatchlistResponse:
        wl = await self._db(deadline, self.store.get_watchlist, _id(req.watchlist_id, "watchlist_id"))
        if wl is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"watchlist {req.watchlist_id} does not exist")
        if wl["state"] != OPEN:  # idempotent; still sweep in case an earlier close died half-way
            n = await self._db(deadline, self.store.delete_faces, faces_schema.watchlist_filter(wl["watchlist_id"]))
            await _under(deadline, self._audit_destroyed(wl["watchlist_id"]))
            return watchlist_pb2.CloseWatchlistResponse(watchlist=to_proto(wl, time.time_ns()), vectors_deleted=n)
        row, subjects, n = await self.destroy(wl, CLOSED, req.reason or "closed", actor, deadline)
        return watchlist_pb2.CloseWatchlistResponse(watchlist=to_proto(row, time.time_ns()),
                                                    subjects_deleted=subjects, vectors_deleted=n)

    async def bulk_import(self, requests: AsyncIterator[watchlist_pb2.BulkImportRequest], actor: str,
                          deadline: float | None) -> watchlist_pb2.BulkImportResponse:
        wl: dict[str, Any] | None = None
        rows: list[dict[str, Any]] = []
        imported, rejected, errors = 0, 0, []
        ids_hash = hashlib.sha256()
        tol = self.options.unit_norm_tolerance
        async for req in requests:
            if wl is None:
                wl = await self._open_watchlist(req.watchlist_id, deadline)
                await self._check_active_embedder(wl, deadline)
            elif req.watchlist_id and req.watchlist_id != wl["watchlist_id"]:
                raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "one BulkImport stream imports into one watchlist")
            for s in req.subjects:
                vec = np.asarray(s.embedding, dtype=np.float32)
                problem = ""
                try:
                    faces_schema.check_id(s.subject_id)
                except ValueError as e:
                    problem = str(e)
                if not problem and s.category not in CATEGORY_NAMES:
                    problem = "category is required"
                if not problem and vec.shape != (faces_schema.EMBEDDING_DIM,):
                    problem = f"embedding has {vec.size} values, expected {faces_schema.EMBEDDING_DIM}"
                if not problem and abs(float(np.linalg.norm(vec)) - 1.0) > tol:
                    problem = "embedding is not L2-normalised"
                if problem:
                    rejected += 1
                    if len(errors) < 5:
                        errors.append(f"{s.subject_id or '?'}: {problem}")
                    continue
                ids_hash.update(s.subject_id.encode() + b"\n")
                rows.append(self._face_row(wl, s.subject_id, CATEGORY_NAMES[s.category],
                                           s.source_ref or "synthetic", "", vec))
                if len(rows) >= self.options.bulk_batch:
                    await self._db(deadline, self.store.insert_faces, rows, False)
                    imported += len(rows)
                    rows = []
        if wl is None:
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT,
                          "empty BulkImport stream: the first message names the watchlist")
        if rows:
            await self._db(deadline, self.store.insert_faces, rows, False)
            imported += len(rows)
        await self._db(deadline, self.store.flush)
        await self.audit.record(audit_mod.WATCHLIST_BULK_IMPORT, actor=actor, deployment_id=wl["deployment_id"],
                                subject_ids=[wl["watchlist_id"]],
                                details={"imported": str(imported), "rejected": str(rejected), "synthetic": "true",
                                         "subject_ids_sha256": ids_hash.hexdigest()})
        return watchlist_pb2.BulkImportResponse(imported=imported, rejected=rejected, errors=errors)

    async def reembed(self, req: watchlist_pb2.ReembedWatchlistRequest, actor: str,
                      deadline: float | None) -> watchlist_pb2.ReembedWatchlistResponse:
        """Move an open watchlist to the active embedder: embed every face again from its retained aligned
        enrolment image, insert the new vectors, audit the move, then destroy the old vectors (under the
        watchlist's lock: no close, expiry or enrolment meanwhile). Idempotent: a watchlist on the active
        embedder answers 0 vectors; a run cut short before the audit record removes what it inserted, one cut
        short after it leaves both copies and the next run moves it again (recorded again)."""
        if not req.reason.strip():
            raise Refusal(grpc.StatusCode.INVALID_ARGUMENT, "reason is required (why the watchlist moves embedder)")
        async with self.locks.hold(_id(req.watchlist_id, "watchlist_id")):
            return await self._reembed(req, actor, deadline)

    async def _reembed(self, req: watchlist_pb2.ReembedWatchlistRequest, actor: str,
                       deadline: float | None) -> watchlist_pb2.ReembedWatchlistResponse:
        wl = await self._open_watchlist(req.watchlist_id, deadline)
        target = self.store.embedder
        await self._db(deadline, self.store.refresh_collections)
        source = await self._embedder_of(wl, deadline)
        done = watchlist_pb2.ReembedWatchlistResponse(from_embedder=source, to_embedder=target)
        if source == target:
            subjects = await self._db(deadline, self.store.subjects, wl["watchlist_id"])
            done.watchlist.CopyFrom(to_proto(wl, time.time_ns(), len(subjects),
                                             sum(len(s.image_refs) for s in subjects.values()), target))
            return done
        if not self.options.reembed_from_retained_images:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          f"this force's retention rules do not allow re-using the retained enrolment images "
                          f"(watchlist.reembed_from_retained_images is false): enrol the subjects of "
                          f"{wl['watchlist_id']} again from their source photos into a new watchlist, then close "
                          "this one")
        fields = ["subject_id", "category", "image_ref", "image_jpeg_b64"]
        rows = await self._db(deadline, self.store.face_rows, self.store.others[source], wl["watchlist_id"], fields)
        missing = sorted({r["subject_id"] for r in rows if not r.get("image_jpeg_b64")})
        if missing:
            shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          f"{len(missing)} subject(s) of watchlist {wl['watchlist_id']} have no retained enrolment "
                          f"image ({shown}; BulkImport vectors keep none), so they cannot be embedded again: "
                          f"import their vectors made with {target} (BulkImport) into a new watchlist, or close "
                          "this one")
        try:
            aligned = [enrol.decode_aligned_jpeg_b64(r["image_jpeg_b64"]) for r in rows]
        except ValueError as e:
            raise Refusal(grpc.StatusCode.FAILED_PRECONDITION,
                          f"watchlist {wl['watchlist_id']}: {e}; "
                          "enrol its subjects again from their source photos") from e
        vectors = await _under(deadline, self.pipeline.embedder.embed(aligned)) if aligned else []
        new_rows = [self._face_row(wl, r["subject_id"], r["category"], r["image_ref"], r["image_jpeg_b64"], v)
                    for r, v in zip(rows, vectors)]
        expr = faces_schema.watchlist_filter(wl["watchlist_id"])
        # a run cut short after its audit record may have left rows in the target: replace them, never a second copy
        await self._db(deadline, self.store.destroy_faces, expr, [self.store.collection])
        inserted = await self._db(deadline, self.store.insert_faces, new_rows) if new_rows else []
        subjects = {r["subject_id"] for r in rows}
        try:  # recorded before the old vectors go: a move is never done unrecorded
            await _under(deadline, self.audit.record(
                audit_mod.WATCHLIST_REEMBED, actor=actor, deployment_id=wl["deployment_id"],
                subject_ids=[wl["watchlist_id"]],
                details={"from_embedder": source, "to_embedder": target, "subjects": str(len(subjects)),
                         "vectors": str(len(new_rows)), "reason": req.reason[:256],
                         "old_vectors_to_delete": str(len(rows))}))
        except BaseException:
            await asyncio.to_thread(self.store.delete_ids, inserted)  # not recorded -> not moved
            raise
        gone = await self._db(deadline, self.store.destroy_faces, expr, [self.store.others[source]])
        log.info("watchlist moved to the active embedder", extra={
            "watchlist_id": wl["watchlist_id"], "from": source, "to": target, "vectors": len(new_rows),
            "old_vectors_deleted": gone.count, "storage_erasure": gone.erasure})
        done.subjects, done.vectors = len(subjects), len(new_rows)
        done.watchlist.CopyFrom(to_proto(wl, time.time_ns(), len(subjects), len(new_rows), target))
        return done

    async def on_other_embedders(self) -> dict[str, list[str]]:
        """embedder -> the open watchlists whose faces were made with it, for every embedder but the active
        one (they cannot match until moved)."""
        await asyncio.to_thread(self.store.refresh_collections)
        open_rows = await asyncio.to_thread(self.store.list_watchlists, f"state == {OPEN}")
        out: dict[str, list[str]] = {}
        for wl in open_rows:
            embedder = await asyncio.to_thread(self.store.embedder_of, wl["watchlist_id"])
            if embedder != self.store.embedder:
                out.setdefault(embedder, []).append(wl["watchlist_id"])
        return out

    # -- background ----------------------------------------------------------------
    async def reap_once(self) -> int:
        """Destroy every open watchlist whose window has ended, then append the destruction records still
        kept from earlier failed appends; returns how many were destroyed. One watchlist's failure does not
        hold back the others' destruction; the round raises the first failure after trying them all."""
        now = time.time_ns()
        due = await asyncio.to_thread(self.store.list_watchlists, f"state == {OPEN} and valid_until_ns <= {now}")
        failures: list[Exception] = []
        for wl in due:
            try:
                async with self.locks.hold(wl["watchlist_id"]):
                    current = await asyncio.to_thread(self.store.get_watchlist, wl["watchlist_id"])
                    if current is not None and current["state"] == OPEN:  # not closed meanwhile
                        await self.destroy(current, EXPIRED, "expired", "reaper", None)
            except Exception as e:  # noqa: BLE001 - collected, raised after the other destructions
                failures.append(e)
        for watchlist_id in list(self._unaudited):
            try:
                await self._audit_destroyed(watchlist_id)
            except Exception as e:  # noqa: BLE001 - kept for the next round, raised below
                failures.append(e)
        # belt and braces: faces whose own window ended, whatever their metadata says
        orphans = await asyncio.to_thread(self.store.delete_faces, faces_schema.expired_filter(now // NS))
        if orphans:
            log.warning("reaper deleted expired faces with no open watchlist", extra={"vectors": orphans})
        if failures:
            raise failures[0]
        return len(due)


async def _under(deadline: float | None, aw: Awaitable[T]) -> T:
    if deadline is None:
        return await aw
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        if asyncio.iscoroutine(aw):
            aw.close()
        raise TimeoutError
    return await asyncio.wait_for(aw, timeout=remaining)
