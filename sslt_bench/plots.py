"""Plots of result records: per-class accuracy, pseudo-label accuracy, learning curves.

``per-class``: test accuracy per class against the class's labeled count (log x axis), one
line per method configuration (mean over seeds; classes sharing a count are averaged), the
many/medium/few ranges shaded: the long-tail picture (paper Section 4.4). ``pseudo-labels``:
accuracy of the pseudo-labels on U after each labelling step, per split (paper Table 3).
``curves``: test accuracy along training from epochs evaluated with ``--eval-every`` (else the
plan's Evaluate stages). Mixed configurations are separate lines, as in the tables.
Output is deterministic (matplotlib Agg, fixed SVG hash salt, no dates in metadata), written
as PNG and SVG.
"""

from __future__ import annotations

import io
import math
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

from .errors import UsageError, choices_error
from .records import atomic_write_bytes
from .table import METRICS, build_board, is_ok

KINDS = ("per-class", "pseudo-labels", "curves")
SPLITS = ("many", "medium", "few")
BAND_COLORS = {"many": "#4c72b0", "medium": "#dd8452", "few": "#c44e52"}
RC = {
    "svg.hashsalt": "sslt-bench",
    "svg.fonttype": "path",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def _mean(vals: list[float | None]) -> float:
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else math.nan


def _series(records: list[dict[str, Any]], dataset: str | None) -> tuple[str, list, dict]:
    """The data set and ``(label, row)`` per line, plus column labels, of finished runs."""
    ok = [r for r in records if is_ok(r)]
    datasets = sorted({r["dataset"] for r in ok})
    if not datasets:
        raise UsageError("no finished runs to plot; run 'sslt-bench run' first or pass --results")
    if dataset is None:
        if len(datasets) > 1:
            raise UsageError(
                f"records of several data sets ({', '.join(datasets)}); choose one with --dataset"
            )
        dataset = datasets[0]
    elif dataset not in datasets:
        raise choices_error("data set (with finished runs)", dataset, datasets)
    board = build_board([r for r in ok if r["dataset"] == dataset])
    cols = dict(board.columns)
    out = []
    for ln in board.lines:
        for col, row in sorted(ln.cells.items()):
            label = ln.label if len(cols) == 1 else f"{ln.label} | {cols[col]}"
            out.append((label, row, col))
    return dataset, out, cols


def _per_class(fig, dataset: str, series: list, cols: dict) -> None:
    panels = sorted(cols)
    for i, col in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        first = None
        for label, row, c in series:
            recs = [r for r in row["records"] if (r.get("split") or {}).get("labeled_counts")]
            if c != col or not recs or not recs[0]["metrics"].get("per_class"):
                continue
            counts = recs[0]["split"]["labeled_counts"]
            first = first or recs[0]["split"]
            per_class = [
                _mean([r["metrics"]["per_class"][k] for r in recs]) for k in range(len(counts))
            ]
            by_count: dict[int, list[float]] = defaultdict(list)
            for n, acc in zip(counts, per_class, strict=True):
                if n > 0 and not math.isnan(acc):
                    by_count[n].append(acc)
            xs = sorted(by_count)
            ax.plot(xs, [_mean(by_count[x]) for x in xs], marker="o", ms=3, lw=1.2, label=label)
        if first is None:
            continue
        _bands(ax, first["labeled_counts"], first.get("split_sizes") or {})
        ax.set_xscale("log")
        _count_ticks(ax, sorted({n for n in first["labeled_counts"] if n > 0}))
        ax.set_xlabel("labeled images of the class (log scale)")
        ax.set_ylabel("test accuracy of the class (%)")
        ax.set_ylim(-2, 102)
        ax.set_title(cols[col] if len(panels) > 1 else f"{dataset}: per-class test accuracy")
        ax.legend(fontsize=7, loc="lower right")
    if not fig.axes or not any(ax.lines for ax in fig.axes):
        raise UsageError("none of the selected runs recorded per-class accuracy and labeled counts")


def _count_ticks(ax, counts: list[int]) -> None:
    """Plain-number ticks on the log count axis (every count when there are few)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    if len(counts) <= 12:
        ax.xaxis.set_major_locator(FixedLocator(counts))
    else:
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _bands(ax, counts: list[int], sizes: dict[str, int]) -> None:
    """Shade the count range of many/medium/few (classes ranked by labeled count)."""
    order = sorted((n for n in counts if n > 0), reverse=True)
    segs, start = [], 0
    for name in SPLITS:
        k = sizes.get(name, 0)
        if k and order[start : start + k]:
            segs.append((name, order[start : start + k]))
        start += k
    if not segs:
        return
    right = order[0] * 1.5
    for j, (name, seg) in enumerate(segs):
        left = math.sqrt(seg[-1] * segs[j + 1][1][0]) if j + 1 < len(segs) else order[-1] / 1.5
        ax.axvspan(left, right, color=BAND_COLORS[name], alpha=0.1, lw=0)
        ax.text(math.sqrt(left * right), 101, name, ha="center", va="top", fontsize=8)
        right = left
    ax.set_xlim(order[-1] / 1.5, order[0] * 1.5)


def _panels(fig, series: list, points, xlabel: str, what: str) -> None:
    """Four panels (overall, many, medium, few); ``points(row)`` -> [(x, {metric: v})]."""
    axes = [fig.add_subplot(1, 4, i + 1) for i in range(4)]
    ticks: dict[float, str] = {}
    drawn = 0
    for label, row, _ in series:
        per_x: dict[float, list[dict]] = defaultdict(list)
        for rec in row["records"]:
            for x, vals, tick in points(rec):
                per_x[x].append(vals)
                if tick:
                    ticks.setdefault(x, tick)
        if not per_x:
            continue
        drawn += 1
        xs = sorted(per_x)
        for ax, m in zip(axes, METRICS, strict=True):
            ax.plot(
                xs,
                [_mean([v.get(m) for v in per_x[x]]) for x in xs],
                marker="o",
                ms=3,
                lw=1.2,
                label=label,
            )
    if not drawn:
        raise UsageError(f"none of the selected runs recorded {what}")
    for ax, m in zip(axes, METRICS, strict=True):
        ax.set_title(m)
        ax.set_xlabel(xlabel)
        if ticks and len(ticks) <= 12:
            ax.set_xticks(
                sorted(ticks),
                [ticks[x] for x in sorted(ticks)],
                rotation=45,
                ha="right",
                fontsize=7,
            )
    axes[0].set_ylabel("accuracy (%)")
    axes[0].legend(fontsize=7)


def _pseudo_points(rec):
    return [(i, e, e.get("step")) for i, e in enumerate(rec["history"].get("pseudo_labels") or [])]


def _curve_points(rec):
    eps = rec["history"].get("epochs") or []
    return [(i + 1, e["test"], None) for i, e in enumerate(eps) if e.get("test")]


def _eval_points(rec):
    return [(i + 1, e, e.get("step")) for i, e in enumerate(rec["history"].get("evals") or [])]


def figure(kind: str, records: list[dict[str, Any]], dataset: str | None = None):
    """Build the matplotlib figure of ``kind`` (one of :data:`KINDS`) and the data set name."""
    from matplotlib.figure import Figure

    if kind not in KINDS:
        raise choices_error("plot", kind, KINDS)
    dataset, series, cols = _series(records, dataset)
    if kind == "per-class":
        fig = Figure(figsize=(6.4 * len(cols), 4.4), layout="constrained")
        _per_class(fig, dataset, series, cols)
        return fig, dataset
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    if kind == "pseudo-labels":
        _panels(
            fig,
            series,
            _pseudo_points,
            "pseudo-labelling step",
            "pseudo-label accuracy (PseudoLabel stages do)",
        )
        fig.suptitle(f"{dataset}: pseudo-label accuracy on U")
    elif any(_curve_points(r) for _, row, _ in series for r in row["records"]):
        kept = [s for s in series if any(_curve_points(r) for r in s[1]["records"])]
        if len(kept) < len(series):
            warnings.warn(
                "curves: runs without --eval-every test points are left out", stacklevel=2
            )
        _panels(fig, kept, _curve_points, "epoch (all stages, in order)", "test curves")
        fig.suptitle(f"{dataset}: test accuracy along training")
    else:
        _panels(fig, series, _eval_points, "evaluation", "test curves (use --eval-every N)")
        fig.suptitle(f"{dataset}: test accuracy at the plan's evaluations")
    return fig, dataset


def render(fig, fmt: str) -> bytes:
    """PNG or SVG bytes of ``fig``, without dates or version strings."""
    import matplotlib

    buf = io.BytesIO()
    meta = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format=fmt, dpi=120, metadata=meta)
    return buf.getvalue()


def make(
    kind: str, records: list[dict[str, Any]], dataset: str | None, output: str | None
) -> list[Path]:
    """Plot ``kind`` and write ``<output>.png`` and ``<output>.svg``; returns the paths."""
    import matplotlib

    with matplotlib.rc_context(RC):
        fig, dataset = figure(kind, records, dataset)
    base = Path(output) if output else Path(f"{kind}-{dataset}")
    if base.suffix.lower() in (".png", ".svg"):
        base = base.with_suffix("")
    paths = []
    for fmt in ("png", "svg"):
        path = base.parent / f"{base.name}.{fmt}"
        atomic_write_bytes(path, render(fig, fmt))
        paths.append(path)
    return paths
