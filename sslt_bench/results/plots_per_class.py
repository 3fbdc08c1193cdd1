"""Per-class test accuracy against the class's labeled count: lines and side-by-side bars.

One panel per data set setting (a block of ``sslt-bench table``). The x axis is the number of
labeled images of a class on a log scale; classes sharing a count are averaged, and each
method's value is the mean over its seeds. The many/medium/few ranges (classes ranked by
labeled count, split sizes from the record) are shaded and named. ``lines_figure`` draws one
line per method; ``bars_figure`` puts the methods' bars side by side at each count, the way
long-tail papers show per-class accuracy.
"""

from __future__ import annotations

import math
from collections import defaultdict

from ..errors import UsageError
from .layout import Block
from .plot_style import hatch, legend, line_style, mean, method_style, title, variants

SPLITS = ("many", "medium", "few")
BAND_COLORS = {"many": "#4c72b0", "medium": "#dd8452", "few": "#c44e52"}


def by_count(block: Block, ln) -> tuple[dict[int, float], dict] | None:
    """``{labeled count: mean accuracy}`` of one line, and its split; ``None`` if unrecorded."""
    recs = [
        r for r in ln.cells[block.col]["records"] if (r.get("split") or {}).get("labeled_counts")
    ]
    if not recs or not recs[0]["metrics"].get("per_class"):
        return None
    counts = recs[0]["split"]["labeled_counts"]
    per_class = [mean([r["metrics"]["per_class"][k] for r in recs]) for k in range(len(counts))]
    accs: dict[int, list[float]] = defaultdict(list)
    for n, acc in zip(counts, per_class, strict=True):
        if n > 0 and not math.isnan(acc):
            accs[n].append(acc)
    return {n: mean(accs[n]) for n in sorted(accs)}, recs[0]["split"]


def _count_ticks(ax, counts: list[int]) -> None:
    """Plain-number ticks on the log count axis (every count when there are few)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    if len(counts) <= 12:
        ax.xaxis.set_major_locator(FixedLocator(counts))
    else:
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _bands(ax, counts: list[int], sizes: dict[str, int], pad: float) -> None:
    """Shade the count range of many/medium/few (classes ranked by labeled count)."""
    order = sorted((n for n in counts if n > 0), reverse=True)
    segs, start = [], 0
    for name in SPLITS:
        k = sizes.get(name, 0)
        if k and order[start : start + k]:
            segs.append((name, order[start : start + k]))
        start += k
    ax.set_xlim(order[-1] / pad, order[0] * pad)
    right = order[0] * pad
    for j, (name, seg) in enumerate(segs):
        left = math.sqrt(seg[-1] * segs[j + 1][1][0]) if j + 1 < len(segs) else order[-1] / pad
        ax.axvspan(left, right, color=BAND_COLORS[name], alpha=0.1, lw=0)
        ax.text(math.sqrt(left * right), 110, name, ha="center", va="top", fontsize=8)
        right = left


def _axes(fig, blks: list[Block], tall: bool):
    """One axes per block: side by side (lines) or stacked (bars)."""
    if tall:
        return [fig.add_subplot(len(blks), 1, i + 1) for i in range(len(blks))]
    return [fig.add_subplot(1, len(blks), i + 1) for i in range(len(blks))]


def _finish(ax, block: Block, split: dict, pad: float) -> None:
    _bands(ax, split["labeled_counts"], split.get("split_sizes") or {}, pad)
    ax.set_xscale("log")
    _count_ticks(ax, sorted({n for n in split["labeled_counts"] if n > 0}))
    ax.set_xlabel("labeled images of the class (log scale)")
    ax.set_ylabel("test accuracy of the class (%)")
    ax.set_ylim(0, 112)  # the band names sit above 100
    ax.set_yticks(range(0, 101, 20))
    ax.set_title(title(block), fontsize=9)


def lines_figure(dataset: str, blks: list[Block]):
    """Per-class accuracy, one line per method, one panel per setting."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2.0 + 5.6 * len(blks), 4.6), layout="constrained")
    axes, kinds = _axes(fig, blks, tall=False), variants(blks)
    for ax, block in zip(axes, blks, strict=True):
        split = None
        for ln in block.lines:
            got = by_count(block, ln)
            if got is None:
                continue
            accs, split = got[0], split or got[1]
            ax.plot(
                list(accs),
                list(accs.values()),
                ms=4,
                lw=1.3,
                **line_style(ln.method, ln.label, kinds[ln.label]),
            )
        if split is not None:
            _finish(ax, block, split, 1.5)
    if not any(ax.lines for ax in axes):
        raise UsageError("none of the selected runs recorded per-class accuracy and labeled counts")
    fig.suptitle(f"{dataset}: per-class test accuracy")
    legend(fig, axes)
    return fig


def bars_figure(dataset: str, blks: list[Block]):
    """Per-class accuracy as bars, methods side by side at each count, one row per setting."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(14, 0.6 + 3.8 * len(blks)), layout="constrained")
    axes, kinds = _axes(fig, blks, tall=True), variants(blks)
    for ax, block in zip(axes, blks, strict=True):
        got = [(ln, by_count(block, ln)) for ln in block.lines]
        got = [(ln, g) for ln, g in got if g is not None]
        if not got:
            continue
        counts = sorted({n for _, (accs, _) in got for n in accs})
        logs = [math.log10(n) for n in counts]
        gap = min((b - a for a, b in zip(logs, logs[1:], strict=False)), default=0.3)
        width = 0.8 * min(gap, 0.3) / len(got)  # in decades, per bar
        for i, (ln, (accs, _)) in enumerate(got):
            off = (i - (len(got) - 1) / 2) * width
            xs = [n for n in counts if n in accs]
            left = [n * 10 ** (off - width / 2) for n in xs]
            widths = [n * 10 ** (off + width / 2) - a for n, a in zip(xs, left, strict=True)]
            ax.bar(
                left,
                [accs[n] for n in xs],
                widths,
                align="edge",
                color=method_style(ln.method)["color"],
                edgecolor="white",
                lw=0.3,
                label=ln.label,
                hatch=hatch(kinds[ln.label]),
            )
        _finish(ax, block, got[0][1][1], 10 ** (0.6 * min(gap, 0.3)))
        ax.grid(axis="x", visible=False)
    if not any(ax.patches for ax in axes):
        raise UsageError("none of the selected runs recorded per-class accuracy and labeled counts")
    fig.suptitle(f"{dataset}: per-class test accuracy, methods side by side")
    legend(fig, axes)
    return fig
