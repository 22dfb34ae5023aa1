"""Accuracy per group (`lfr eval DIR --groups FILE.csv`): TPIR / FNIR of each group's subjects and FPIR of its
passers-by, at fixed thresholds, with 95 % intervals and the pairs of groups whose intervals do not overlap.

The CSV has a header ``identity,<column>...``; each further column is one way of grouping the identities (e.g.
``sex``: F / M). An identity of the evaluated set that the CSV does not list, or lists with an empty value, is in
the group ``unknown`` of that column (counted like the others). A group's mated probes are the probes of its
watchlist subjects, its non-mated probes its passers-by. Thresholds are the overall ones (what a deployment runs
at), not re-found per group; intervals resample the group's own probes (services.eval.stats.share_at_threshold)."""

from __future__ import annotations

import csv
import dataclasses
import itertools
from pathlib import Path
from typing import Any, Final

import numpy as np

from services.eval.stats import Scores, intervals_overlap, share_at_threshold

UNKNOWN: Final[str] = "unknown"
IDENTITY_COLUMN: Final[str] = "identity"
# below this many passers-by a single false alert is more than FPIR 1e-2: the group cannot show FPIR at that level
FEW_PASSERS_BY: Final[int] = 100
FEW_MATED: Final[int] = 30
# metrics compared between groups; FNIR = 1 - TPIR, so its intervals overlap exactly when TPIR's do
FLAGGED: Final[tuple[str, ...]] = ("tpir", "fpir")


def read_groups(path: Path) -> dict[str, dict[str, str]]:
    """column -> identity -> group, from a CSV ``identity,<column>...``; empty values are left out (unknown).
    ValueError saying what is wrong with the file."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if not header or header[0] != IDENTITY_COLUMN or len(header) < 2:
            raise ValueError(f"{path}: the header must be '{IDENTITY_COLUMN},<group column>...' (got "
                             f"{','.join(header) or 'nothing'})")
        if len(set(header)) != len(header):
            raise ValueError(f"{path}: a column is named twice in the header ({','.join(header)})")
        reader.fieldnames = header
        table: dict[str, dict[str, str]] = {c: {} for c in header[1:]}
        seen: set[str] = set()
        for line, row in enumerate(reader, start=2):
            ident = (row.get(IDENTITY_COLUMN) or "").strip()
            if not ident:
                raise ValueError(f"{path}:{line}: no identity")
            if ident in seen:
                raise ValueError(f"{path}:{line}: identity {ident} is listed twice")
            seen.add(ident)
            for c, of in table.items():
                value = (row.get(c) or "").strip()
                if value == UNKNOWN:
                    raise ValueError(f"{path}:{line}: '{UNKNOWN}' is the group of unlisted identities; leave the "
                                     "value empty instead")
                if value:
                    of[ident] = value
    return table


@dataclasses.dataclass(frozen=True)
class Group:
    """One group of one column: how many watchlist subjects it has, and the indices of its probes among the
    evaluation's mated probes (its subjects') and non-mated probes (its passers-by, one probe each)."""

    column: str
    name: str
    subjects: int
    mated: np.ndarray  # indices into the mated probes
    nonmated: np.ndarray  # indices into the non-mated probes


def assign_groups(table: dict[str, dict[str, str]], subjects: list[str], mated_owner: list[str],
                  nonmated_owner: list[str]) -> dict[str, list[Group]]:
    """column -> its groups (sorted by name, ``unknown`` last, only groups with someone in them).
    subjects: the watchlist subjects' identities; mated_owner / nonmated_owner: the identity of each probe."""
    out: dict[str, list[Group]] = {}
    for column, of in table.items():
        subject_group = [of.get(i, UNKNOWN) for i in subjects]
        mated_group = [of.get(i, UNKNOWN) for i in mated_owner]
        nonmated_group = [of.get(i, UNKNOWN) for i in nonmated_owner]
        names = sorted({*subject_group, *nonmated_group}, key=lambda g: (g == UNKNOWN, g))
        out[column] = [
            Group(column=column, name=g, subjects=subject_group.count(g),
                  mated=np.array([k for k, x in enumerate(mated_group) if x == g], np.int64),
                  nonmated=np.array([k for k, x in enumerate(nonmated_group) if x == g], np.int64))
            for g in names]
    return out


def _passers_by(n: int) -> str:
    return f"{n} passer-by" if n == 1 else f"{n} passers-by"


def _notes(g: Group, at: dict[str, dict[str, Any]]) -> list[str]:
    notes = []
    n_m, n_nm = len(g.mated), len(g.nonmated)
    if n_m == 0:
        notes.append("no mated probes: no TPIR / FNIR")
    elif n_m < FEW_MATED:
        notes.append(f"only {n_m} mated probes: its TPIR / FNIR intervals are wide")
    if n_nm == 0:
        notes.append("no passers-by: no FPIR")
        return notes
    if n_nm < FEW_PASSERS_BY:
        notes.append(f"only {_passers_by(n_nm)}: one false alert is FPIR {1 / n_nm:.3f}, so FPIR 1e-2 cannot be "
                     "resolved in this group")
    zero = [label for label, entry in at.items() if entry["fpir"]["count"] == 0 and "interval_95" in entry["fpir"]]
    if zero:
        upper = at[zero[0]]["fpir"]["interval_95"][1]
        notes.append(f"at {', '.join(zero)}: 0 false alerts of {_passers_by(n_nm)} shows only that FPIR is below "
                     f"{upper:.4f} (95 %), not that it is 0")
    return notes


def group_report(scores: Scores, groups: dict[str, list[Group]], thresholds: dict[str, float], resamples: int,
                 seed: int) -> dict[str, Any]:
    """Per column: per group, the counts and, at each named threshold, TPIR, FNIR (mated probes of the group's
    subjects) and FPIR (its passers-by) with 95 % intervals and notes; then ``flags``: every pair of groups of the
    column whose intervals of one metric at one threshold do not overlap."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for column, gs in groups.items():
        per: dict[str, Any] = {}
        for g in gs:
            m, nm = scores.mated[g.mated], scores.nonmated[g.nonmated]
            at: dict[str, dict[str, Any]] = {}
            for label, t in thresholds.items():
                tpir = share_at_threshold(m >= t, resamples, rng)
                fnir = {"value": None if tpir["value"] is None else round(1 - tpir["value"], 4),
                        "count": tpir["of"] - tpir["count"], "of": tpir["of"]}
                if "interval_95" in tpir:
                    lo, hi = tpir["interval_95"]
                    fnir["interval_95"] = [round(1 - hi, 4), round(1 - lo, 4)]
                fpir = share_at_threshold(nm >= t, resamples, rng)
                at[label] = {"threshold": t, "tpir": tpir, "fnir": fnir, "fpir": fpir}
            per[g.name] = {"counts": {"subjects": g.subjects, "mated_probes": len(g.mated),
                                      "nonmated_probes": len(g.nonmated)},
                           "at": at, "notes": _notes(g, at)}
        out[column] = {"groups": per, "flags": _flags(column, per, list(thresholds))}
    return out


def _flags(column: str, per: dict[str, Any], labels: list[str]) -> list[dict[str, Any]]:
    flags = []
    for label in labels:
        for metric in FLAGGED:
            for a, b in itertools.combinations(per, 2):
                ea, eb = per[a]["at"][label][metric], per[b]["at"][label][metric]
                if "interval_95" not in ea or "interval_95" not in eb:
                    continue
                if not intervals_overlap(ea["interval_95"], eb["interval_95"]):
                    hi, lo = (a, b) if ea["value"] > eb["value"] else (b, a)
                    flags.append({
                        "column": column, "metric": metric, "threshold": label, "groups": [a, b],
                        "values": {a: ea["value"], b: eb["value"]},
                        "intervals": {a: ea["interval_95"], b: eb["interval_95"]},
                        "reading": f"{metric.upper()} at {label}: {hi} {per[hi]['at'][label][metric]['value']} "
                                   f"{per[hi]['at'][label][metric]['interval_95']} is above {lo} "
                                   f"{per[lo]['at'][label][metric]['value']} "
                                   f"{per[lo]['at'][label][metric]['interval_95']}: the intervals do not overlap"
                                   + (" (FNIR the other way round)" if metric == "tpir" else "")})
    return flags
