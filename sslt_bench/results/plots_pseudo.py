"""``sslt-bench plot pseudo-labels``: pseudo-label quality on U along training.

Reads the records' ``pseudo_label_diagnostics`` (:mod:`sslt_bench.train.diagnostics`): per data
set setting (one block, titled as in ``sslt-bench table``) a grid of panels, rows precision,
recall, mask rate (% of U's items of the group's classes above the threshold) and total
variation distance between the predicted and the true class distribution of U (each group's
share of it), columns many / medium / few. The x axis is training epochs completed over all
of the plan's steps (pseudo-labelling steps sit at the epoch count before them), so
methods with different plans share it; seeds are averaged point by point. Lines are labelled
by method (and what sets a configuration apart) in each method's fixed style
(:func:`~sslt_bench.results.plot_style.line_style`), the legend outside the axes. Records without
diagnostics (older records, supervised methods) are left out; runs whose U labels are unknown
(-1) have only their mask rate drawn, and the panel says so.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from ..data.split import SPLIT_NAMES
from ..errors import UsageError
from .layout import Block, blocks
from .plot_style import legend, line_style, mean, pick_dataset, variants
from .table import build_board, is_ok

ROWS = (
    ("precision", "precision (%)"),
    ("recall", "recall (%)"),
    ("mask_rate_by", "mask rate (%)"),
    ("tv", "TV distance (share)"),
)


def entries(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """The diagnostic entries of a record (none for records made before version 1)."""
    diag = rec.get("pseudo_label_diagnostics") or {}
    return diag.get("entries") or []


def _select(records: list[dict[str, Any]], dataset: str | None) -> tuple[str, list[Block]]:
    ok = [r for r in records if is_ok(r) and entries(r)]
    datasets = sorted({r["dataset"] for r in ok})
    if not datasets:
        raise UsageError(
            "none of the selected runs recorded pseudo-label diagnostics (semi-supervised runs "
            "made with this version do); run one with 'sslt-bench run' or pass --results"
        )
    dataset = pick_dataset(datasets, dataset, "with pseudo-label diagnostics")
    blks = [
        b for b in blocks(build_board([r for r in ok if r["dataset"] == dataset])) if not b.quoted
    ]
    for b in blks:
        b.lines.sort(key=lambda ln: ln.label)
    return dataset, blks


def series(recs: list[dict[str, Any]], row: str, group: str) -> tuple[list[float], list[float]]:
    """Epochs done (x) and the seed-mean of ``entry[row][group]`` at each x."""
    per_x: dict[float, list[float | None]] = defaultdict(list)
    for rec in recs:
        for e in entries(rec):
            per_x[float(e["position"])].append((e.get(row) or {}).get(group))
    xs = sorted(per_x)
    return xs, [mean(per_x[x]) for x in xs]


def _block(sub, block: Block, kinds: dict[str, int]) -> list:
    axes = sub.subplots(len(ROWS), len(SPLIT_NAMES), sharex=True, squeeze=False)
    unknown = False
    for ln in block.lines:
        recs = ln.cells[block.col]["records"]
        unknown |= any(
            (r.get("pseudo_label_diagnostics") or {}).get("labels") == "unknown" for r in recs
        )
        for i, (row, _) in enumerate(ROWS):
            for j, group in enumerate(SPLIT_NAMES):
                xs, ys = series(recs, row, group)
                axes[i, j].plot(
                    xs, ys, ms=3, lw=1.2, **line_style(ln.method, ln.label, kinds[ln.label])
                )
    for i, (_, ylabel) in enumerate(ROWS):
        axes[i, 0].set_ylabel(ylabel)
    for j, group in enumerate(SPLIT_NAMES):
        axes[0, j].set_title(group)
        axes[-1, j].set_xlabel("training epochs (all steps)")
    if unknown:
        axes[0, 0].annotate(
            "U's labels unknown for some runs: those are missing",
            (0.02, 0.02),
            xycoords="axes fraction",
            fontsize=7,
        )
    return list(axes.ravel())


def figure(records: list[dict[str, Any]], dataset: str | None = None):
    """The pseudo-label figure of the records' data set and the data set name."""
    from matplotlib.figure import Figure

    dataset, blks = _select(records, dataset)
    fig = Figure(figsize=(12, 0.6 + 9.0 * len(blks)), layout="constrained")
    subs = fig.subfigures(len(blks), 1, squeeze=False)[:, 0] if len(blks) > 1 else [fig]
    axes = []
    for sub, block in zip(subs, blks, strict=True):
        axes += _block(sub, block, variants(blks))
        if sub is not fig:
            sub.suptitle(block.title, fontsize=9)
    title = f"{dataset}: pseudo labels on U along training"
    fig.suptitle(f"{title}\n{blks[0].title}" if len(blks) == 1 else title)
    legend(fig, axes)
    return fig, dataset


def make(records: list[dict[str, Any]], dataset: str | None, output: str | None) -> list[Path]:
    """Write ``<output>.png`` and ``.svg`` (default ``pseudo-labels-<dataset>``)."""
    import matplotlib

    from .plots import RC, render
    from .records import atomic_write_bytes

    with matplotlib.rc_context(RC):
        fig, dataset = figure(records, dataset)
    base = Path(output or f"pseudo-labels-{dataset}")
    if base.suffix.lower() in (".png", ".svg"):
        base = base.with_suffix("")
    paths = []
    for fmt in ("png", "svg"):
        path = base.parent / f"{base.name}.{fmt}"
        atomic_write_bytes(path, render(fig, fmt))
        paths.append(path)
    return paths
