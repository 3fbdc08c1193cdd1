"""Plots of result records: per-class accuracy, pseudo-label accuracy, learning curves.

``per-class``: test accuracy per class against the class's labeled count (log x axis), one
line per method configuration (mean over seeds; classes sharing a count are averaged), the
many/medium/few ranges shaded: the long-tail picture (paper Section 4.4). ``per-class-bars``:
the same numbers as bars, methods side by side at each labeled count. ``pseudo-labels``:
accuracy of the pseudo-labels on U after each labelling step, per split (paper Table 3).
``curves``: test accuracy along training from epochs evaluated with ``--eval-every`` (else the
plan's Evaluate stages). ``settings``: each method across the data set's settings (U consistent
vs reversed, imbalance 100 vs 1000), a marker per setting on one row per method.

Every panel shows one data set setting, as a block of ``sslt-bench table`` does (data set and
parameters, profile, backbone, split: the panel title), so lines are labelled by method
(and what sets a configuration apart) only. Every method has one colour and marker in every
plot (:func:`method_style`, colour-blind-safe palette) and the legend sits outside the axes.
Output is deterministic (matplotlib Agg, fixed SVG hash salt, no dates in metadata), written
as PNG and SVG.
"""

from __future__ import annotations

import io
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

from ..errors import UsageError, choices_error
from . import plots_per_class, plots_settings
from .layout import Block, blocks
from .plot_style import legend, line_style, mean, method_style, pick_dataset, variants
from .records import atomic_write_bytes
from .table import METRICS, build_board, is_ok

__all__ = ["KINDS", "figure", "make", "method_style", "render"]

KINDS = ("per-class", "per-class-bars", "pseudo-labels", "curves", "settings")
RC = {
    "svg.hashsalt": "sslt-bench",
    "svg.fonttype": "path",
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def _blocks(records: list[dict[str, Any]], dataset: str | None) -> tuple[str, list[Block]]:
    """The data set and its compact-table blocks (one per setting) of finished runs."""
    ok = [r for r in records if is_ok(r)]
    datasets = sorted({r["dataset"] for r in ok})
    if not datasets:
        raise UsageError("no finished runs to plot; run 'sslt-bench run' first or pass --results")
    dataset = pick_dataset(datasets, dataset, "with finished runs")
    blks = blocks(build_board([r for r in ok if r["dataset"] == dataset]))
    for b in blks:  # the same method order in every panel and legend
        b.lines.sort(key=lambda ln: ln.label)
    return dataset, blks


def _panels(fig, blks: list[Block], points, xlabel: str, what: str) -> None:
    """Per block a row of four panels (overall, many, medium, few); ``points(rec)`` -> data."""
    rows = fig.subfigures(len(blks), 1, squeeze=False)[:, 0] if len(blks) > 1 else [fig]
    drawn, axes, kinds = 0, [], variants(blks)
    for sub, block in zip(rows, blks, strict=True):
        row_axes = [sub.add_subplot(1, 4, i + 1) for i in range(4)]
        axes += row_axes
        ticks: dict[float, set[str]] = defaultdict(set)
        for ln in block.lines:
            per_x: dict[float, list[dict]] = defaultdict(list)
            for rec in ln.cells[block.col]["records"]:
                for x, vals, tick in points(rec):
                    per_x[x].append(vals)
                    if tick:
                        ticks[x].add(tick)
            if not per_x:
                continue
            drawn += 1
            xs = sorted(per_x)
            for ax, m in zip(row_axes, METRICS, strict=True):
                ys = [mean([v.get(m) for v in per_x[x]]) for x in xs]
                ax.plot(xs, ys, ms=4, lw=1.3, **line_style(ln.method, ln.label, kinds[ln.label]))
        for ax, m in zip(row_axes, METRICS, strict=True):
            ax.set_title(m)
            ax.set_xlabel(xlabel)
            if ticks and len(ticks) <= 12:
                xs = sorted(ticks)
                names = ["\n".join(sorted(ticks[x])) for x in xs]  # methods may name a step apart
                ax.set_xticks(xs, names, rotation=45, ha="right", fontsize=7)
        row_axes[0].set_ylabel("accuracy (%)")
        if sub is not fig:
            sub.suptitle(block.title, fontsize=9)
    if not drawn:
        raise UsageError(f"none of the selected runs recorded {what}")
    legend(fig, axes)


def _suptitle(fig, text: str, blks: list[Block]) -> None:
    """The figure title; with one setting, its block title too (rows have their own)."""
    fig.suptitle(f"{text}\n{blks[0].title}" if len(blks) == 1 else text)


def _pseudo_points(rec):
    return [(i, e, e.get("step")) for i, e in enumerate(rec["history"].get("pseudo_labels") or [])]


def _curve_points(rec):
    eps = rec["history"].get("epochs") or []
    return [(i + 1, e["test"], None) for i, e in enumerate(eps) if e.get("test")]


def _eval_points(rec):
    return [(i + 1, e, e.get("step")) for i, e in enumerate(rec["history"].get("evals") or [])]


def _has_curve(block: Block, ln) -> bool:
    return any(_curve_points(r) for r in ln.cells[block.col]["records"])


def _curves(fig, dataset: str, blks: list[Block]) -> None:
    if any(_has_curve(b, ln) for b in blks for ln in b.lines):
        kept = [Block(b.title, b.col, [ln for ln in b.lines if _has_curve(b, ln)]) for b in blks]
        if any(len(k.lines) < len(b.lines) for k, b in zip(kept, blks, strict=True)):
            warnings.warn(
                "curves: runs without --eval-every test points are left out", stacklevel=3
            )
        kept = [k for k in kept if k.lines]
        _panels(fig, kept, _curve_points, "epoch (all stages, in order)", "test curves")
        _suptitle(fig, f"{dataset}: test accuracy along training", kept)
    else:
        _panels(fig, blks, _eval_points, "evaluation", "test curves (use --eval-every N)")
        _suptitle(fig, f"{dataset}: test accuracy at the plan's evaluations", blks)


def figure(kind: str, records: list[dict[str, Any]], dataset: str | None = None):
    """Build the matplotlib figure of ``kind`` (one of :data:`KINDS`) and the data set name."""
    from matplotlib.figure import Figure

    if kind not in KINDS:
        raise choices_error("plot", kind, KINDS)
    dataset, blks = _blocks(records, dataset)
    blks = [b for b in blks if not b.quoted]
    if kind == "per-class":
        return plots_per_class.lines_figure(dataset, blks), dataset
    if kind == "per-class-bars":
        return plots_per_class.bars_figure(dataset, blks), dataset
    if kind == "settings":
        return plots_settings.figure(dataset, blks), dataset
    fig = Figure(figsize=(16, 0.4 + 3.9 * len(blks)), layout="constrained")
    if kind == "pseudo-labels":
        what = "pseudo-label accuracy (PseudoLabel stages do)"
        _panels(fig, blks, _pseudo_points, "pseudo-labelling step", what)
        _suptitle(fig, f"{dataset}: pseudo-label accuracy on U", blks)
    else:
        _curves(fig, dataset, blks)
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
