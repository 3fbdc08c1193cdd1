"""Each method across a data set's settings: one row per method, one marker per setting.

The question of the mismatched-U protocols (cifar10-lt with ``unlabeled_dist`` consistent,
uniform or reversed) and of the imbalance ratios (cifar10-sslt 100 and 1000) is how a method's
accuracy moves when the setting changes. A table shows each setting in its own block; this plot
puts them on one axis: per panel (overall, many, medium, few) a row per method configuration,
a marker per setting (its mean over seeds; settings a little apart vertically, so equal values
stay visible) and a grey segment from the lowest to the highest, so a long segment is a method
the setting moves. Rows are sorted by their mean overall accuracy
over the settings they were run in (best on top); a row with one marker was run in one setting.
"""

from __future__ import annotations

import json
import math

from .drift import current_config, profile_drift
from .layout import Block
from .plot_style import legend
from .table import METRICS, Line

#: Marker and colour of the i-th setting (colour-blind-safe, distinct in grey scale too).
SETTING_STYLES = (("o", "#0077BB"), ("s", "#EE7733"), ("D", "#009988"), ("^", "#CC3311"))


def setting_names(blks: list[Block]) -> list[str]:
    """Short legend names of the blocks: the parts of their titles that differ among them.

    A title is ``setting · profile · backbone · split``; when the settings differ, the split
    hash (which follows from them) is left out.
    """
    parts = [b.title.split(" · ") for b in blks]
    if len(parts) < 2 or len({len(p) for p in parts}) > 1:
        return [b.title for b in blks]
    keep = [i for i in range(len(parts[0])) if len({p[i] for p in parts}) > 1]
    if 0 in keep:
        keep = [i for i in keep if not parts[0][i].startswith("split ")]
    return [" · ".join(p[i] for i in keep) for p in parts]


def _row_key(line: Line, block: Block) -> tuple[str, ...]:
    """What makes lines of two settings one configuration.

    Method, profile, backbone and the method config the run would get today (its ``--set``
    values resolved, so ``recipe=paper`` and the default are one row), plus any profile drift
    (old rows stay apart).
    """
    rec = line.cells[block.col]["records"][0]
    now = current_config(rec)
    config = now or rec.get("method_config") or {}
    key = json.dumps([config, profile_drift(rec, now)], sort_keys=True, default=str)
    return (line.method, line.profile, line.backbone, key)


def _values(blks: list[Block]) -> dict[str, list[dict | None]]:
    """``{row label: [the configuration's cell in each block, or None]}``.

    A configuration whose label differs between settings (``decoupling [no --set]`` beside
    configured rows, ``decoupling`` alone) takes its shortest label.
    """
    cells: dict[tuple, list[dict | None]] = {}
    names: dict[tuple, str] = {}
    for i, block in enumerate(blks):
        for ln in block.lines:
            key = _row_key(ln, block)
            cells.setdefault(key, [None] * len(blks))[i] = ln.cells[block.col]
            names[key] = min(names.get(key, ln.label), ln.label, key=lambda t: (len(t), t))
    return {names[k]: v for k, v in cells.items()}


def _order(values: dict[str, list[dict | None]]) -> list[str]:
    """Labels by mean overall accuracy over their settings, best last (drawn on top)."""

    def key(label: str) -> tuple[float, str]:
        got = [c["overall"] for c in values[label] if c and c.get("overall") is not None]
        return (sum(got) / len(got) if got else -math.inf, label)

    return sorted(values, key=key)


def figure(dataset: str, blks: list[Block]):
    """The figure: four panels (overall, many, medium, few), a row per method configuration."""
    from matplotlib.figure import Figure

    values = _values(blks)
    labels = _order(values)
    names = setting_names(blks)
    fig = Figure(figsize=(16, 1.6 + 0.3 * len(labels)), layout="constrained")
    axes = fig.subplots(1, len(METRICS), sharey=True)
    for ax, metric in zip(axes, METRICS, strict=True):
        for y, label in enumerate(labels):
            xs = [c.get(metric) for c in values[label] if c and c.get(metric) is not None]
            if len(xs) > 1:
                ax.plot([min(xs), max(xs)], [y, y], color="0.75", lw=2.5, zorder=1)
        for i, name in enumerate(names):
            marker, color = SETTING_STYLES[i % len(SETTING_STYLES)]
            dodge = 0.3 * (i / (len(names) - 1) - 0.5) if len(names) > 1 else 0.0
            pts = [
                (c[metric], y + dodge)
                for y, label in enumerate(labels)
                if (c := values[label][i]) and c.get(metric) is not None
            ]
            if pts:
                x, ys = zip(*pts, strict=True)
                ax.scatter(x, ys, marker=marker, color=color, s=30, zorder=2, label=name)
        ax.set_title(metric)
        ax.set_xlabel("accuracy (%)")
        ax.set_ylim(-0.7, len(labels) - 0.3)
    axes[0].set_yticks(range(len(labels)), labels, fontsize=8)
    legend(fig, axes)
    fig.suptitle(f"{dataset}: each method across the data set's settings (mean over seeds)")
    return fig
