"""Watchlist rules without servers: required fields, time parsing, dedup by subject, state."""

from __future__ import annotations

import grpc
import pytest

from lfr.v1 import watchlist_pb2

from services.common.faces_search import dedup_hits
from services.watchlist.cli import parse_time
from services.watchlist.service import REQUIRED_CREATE_FIELDS, Refusal, state_of, validate_create

NOW = 1_800_000_000 * 10**9


def full_request() -> watchlist_pb2.CreateWatchlistRequest:
    return watchlist_pb2.CreateWatchlistRequest(
        deployment_id="op-1", authorisation_ref="AUTH-1", authorising_officer="Supt A", purpose="p", criteria="c",
        valid_from_unix_ns=NOW, valid_until_unix_ns=NOW + 3600 * 10**9)


def test_complete_request_passes() -> None:
    validate_create(full_request(), NOW)


@pytest.mark.parametrize("field", REQUIRED_CREATE_FIELDS)
def test_each_missing_field_is_named(field: str) -> None:
    req = full_request()
    req.ClearField(field)
    with pytest.raises(Refusal) as e:
        validate_create(req, NOW)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and field in e.value.message


def test_window_must_be_ordered_and_not_over() -> None:
    req = full_request()
    req.valid_until_unix_ns = req.valid_from_unix_ns
    with pytest.raises(Refusal, match="after"):
        validate_create(req, NOW)
    with pytest.raises(Refusal, match="past"):
        validate_create(full_request(), NOW + 7200 * 10**9)


def test_bad_deployment_id_refused() -> None:
    req = full_request()
    req.deployment_id = 'op" or deployment_id != "'
    with pytest.raises(Refusal, match="deployment_id"):
        validate_create(req, NOW)


def test_state_from_clock() -> None:
    row = {"state": watchlist_pb2.WATCHLIST_STATE_ACTIVE, "valid_from_ns": NOW, "valid_until_ns": NOW + 10}
    assert state_of(row, NOW - 1) == watchlist_pb2.WATCHLIST_STATE_PENDING
    assert state_of(row, NOW) == watchlist_pb2.WATCHLIST_STATE_ACTIVE
    assert state_of(row, NOW + 10) == watchlist_pb2.WATCHLIST_STATE_EXPIRED
    assert state_of({**row, "state": watchlist_pb2.WATCHLIST_STATE_CLOSED}, NOW) == watchlist_pb2.WATCHLIST_STATE_CLOSED


def test_dedup_keeps_best_image_per_subject() -> None:
    def hit(i: int, wl: str, s: str, score: float) -> dict:
        return {"id": i, "distance": score,
                "entity": {"watchlist_id": wl, "subject_id": s, "category": "wanted", "image_ref": f"ref{i}"}}

    hits = dedup_hits([hit(1, "w", "a", 0.9), hit(2, "w", "a", 0.95), hit(3, "w", "b", 0.7), hit(4, "w2", "a", 0.8)],
                      limit=10)
    assert [(h.watchlist_id, h.subject_id, h.row_id) for h in hits] == [("w", "a", 2), ("w2", "a", 4), ("w", "b", 3)]
    assert dedup_hits([hit(1, "w", "a", 0.9), hit(3, "w", "b", 0.7)], limit=1)[0].subject_id == "a"


def test_parse_time() -> None:
    assert parse_time("now", NOW) == NOW
    assert parse_time("+2h", NOW) == NOW + 7200 * 10**9
    assert parse_time("2027-01-01T00:00:00Z") == 1798761600 * 10**9
