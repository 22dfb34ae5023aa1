"""DET curves of `lfr eval --plot OUT.png`: FNIR against FPIR, both on log axes. OUT.png has one curve per
embedder; with --groups, OUT-<column>.png has, per embedder, the overall curve and one curve per group."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import numpy as np

from services.eval.groups import Group
from services.eval.stats import Scores

FNIR_FLOOR = 1e-3  # FNIR 0 is drawn here (log axis)
NPL_NEOFACE = (1 / 6000, 1 - 0.89)  # NPL's test of NEC NeoFace at the Met: TPIR 0.89 at FPIR 1/6,000, 10k watchlist


@dataclasses.dataclass(frozen=True)
class Curve:
    label: str
    scores: Scores
    marks: dict[str, float] = dataclasses.field(default_factory=dict)  # name -> threshold, drawn as a point


def det_points(mated_scores: np.ndarray, nonmated_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPIR, FNIR) at every distinct score used as a threshold."""
    m = np.asarray(mated_scores, np.float64)
    nm = np.asarray(nonmated_scores, np.float64)
    ts = np.unique(np.concatenate([m[np.isfinite(m)], nm[np.isfinite(nm)]]))
    fpir = np.array([np.mean(nm >= t) for t in ts])
    fnir = np.array([1 - np.mean(m >= t) for t in ts])
    return fpir, fnir


def _draw(ax: Any, curves: list[Curve], title: str, reference: bool) -> None:
    for c in curves:
        m, nm = c.scores.mated, c.scores.nonmated
        if not len(m) or not len(nm):
            continue
        floor = 0.5 / len(nm)  # FPIR 0 of n is drawn at half a false alert
        fpir, fnir = det_points(m, nm)
        (line,) = ax.step(np.maximum(fpir, floor), np.maximum(fnir, FNIR_FLOOR), where="post",
                          label=f"{c.label} ({len(m)} mated, {len(nm)} non-mated)")
        for (name, t), marker in zip(c.marks.items(), "o^sv"):
            fp, fn = float(np.mean(nm >= t)), 1 - float(np.mean(m >= t))
            ax.plot([max(fp, floor)], [max(fn, FNIR_FLOOR)], marker, color=line.get_color(),
                    label=f"{c.label}: {name} (t={t:.2f})")
    if reference:
        ax.plot([NPL_NEOFACE[0]], [NPL_NEOFACE[1]], "s", color="grey", label="NPL NeoFace (10k watchlist)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FPIR (0 false alerts drawn at 0.5 / non-mated probes)")
    ax.set_ylabel("FNIR = 1 - TPIR")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _save(fig: Any, out: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def _figure(panels: int) -> tuple[Any, list[Any]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 5), dpi=100, squeeze=False)
    return fig, list(axes[0])


def plot_det(curves: list[Curve], out: Path, title: str) -> None:
    """One DET figure, one curve per entry (one per embedder), NPL's NeoFace point for scale."""
    fig, (ax,) = _figure(1)
    _draw(ax, curves, title, reference=True)
    _save(fig, out)


def group_plot_path(out: Path, column: str) -> Path:
    return out.with_name(f"{out.stem}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', column)}{out.suffix or '.png'}")


def plot_group_dets(scores: dict[str, Scores], groups: dict[str, list[Group]], operating: dict[str, float],
                    out: Path, title: str) -> list[Path]:
    """Per column, OUT-<column>.png: one panel per embedder with its overall curve and one curve per group, each
    marked at the embedder's operating threshold. Returns the files written."""
    written = []
    for column, gs in groups.items():
        fig, axes = _figure(len(scores))
        for ax, (name, s) in zip(axes, scores.items()):
            marks = {"operating": operating[name]}
            curves = [Curve("all", s, marks)]
            curves += [Curve(f"{column}={g.name}", Scores(s.mated[g.mated], s.nonmated[g.nonmated]), marks)
                       for g in gs]
            _draw(ax, curves, f"{title}, {name}, by {column}", reference=False)
        path = group_plot_path(out, column)
        _save(fig, path)
        written.append(path)
    return written
