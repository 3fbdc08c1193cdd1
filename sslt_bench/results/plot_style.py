"""One look for every plot: a fixed colour and marker per method, titles, the legend.

Colours are Paul Tol's colour-blind-safe "muted" scheme plus black. The built-in methods have
fixed (colour, marker) pairs; any other method gets an unused pair deterministically
(:func:`method_style`), so a method looks the same in every plot of the project.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from ..errors import UsageError, choices_error
from .layout import Block
from .table import NO_SET

#: Paul Tol's "muted" scheme (colour-blind safe), black, and three of his "vibrant" scheme
#: (orange, red, blue) so that the cifar10-lt board's 13 methods have 13 colours.
COLORS = (
    "#332288",
    "#88CCEE",
    "#44AA99",
    "#117733",
    "#999933",
    "#DDCC77",
    "#CC6677",
    "#882255",
    "#AA4499",
    "#000000",
    "#EE7733",
    "#CC3311",
    "#0077BB",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
#: Fixed (colour, marker) of the built-in methods; others get unused pairs (method_style).
FIXED = {
    "alternate": ("#332288", "o"),
    "decoupling": ("#88CCEE", "s"),
    "pseudo-label+decoupling": ("#44AA99", "^"),
    "erm": ("#000000", "D"),
    "ldam-drw": ("#CC6677", "v"),
    "pseudo-label+ldam": ("#882255", "P"),
    "mean-teacher+ldam": ("#AA4499", "X"),
    "fixmatch": ("#999933", "*"),
    "salsa": ("#DDCC77", "<"),
    "fixmatch+darp": ("#117733", "h"),
    "fixmatch+abc": ("#EE7733", "p"),
    "fixmatch+crest": ("#0077BB", ">"),
    "fixmatch+daso": ("#44AA99", "<"),
    "fixmatch+saw": ("#DDCC77", "o"),
    "fixmatch+cossl": ("#882255", "s"),
    "acr": ("#CC3311", "D"),
    "simpro": ("#AA4499", "^"),
}


def method_style(name: str) -> dict[str, str]:
    """Colour and marker of method ``name``, the same in every plot.

    Built-in methods have fixed pairs (:data:`FIXED`); every other registered method (and
    ``name`` if unregistered) gets the next unused (colour, marker) pair in the order of its
    name, so all registered methods differ and the assignment is deterministic.
    """
    if name in FIXED:
        color, marker = FIXED[name]
        return {"color": color, "marker": marker}
    from ..registry import METHODS

    used = set(FIXED.values())
    free = [(c, m) for m in MARKERS for c in COLORS if (c, m) not in used]
    others = sorted((set(METHODS.names()) | {name}) - set(FIXED))
    color, marker = free[others.index(name) % len(free)]
    return {"color": color, "marker": marker}


#: Line styles and bar hatches of a method's configurations: the plain method gets the first.
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 3)))
HATCHES = (None, "//", "\\\\", "xx", "..", "++", "oo", "--")


def variants(blocks: list[Block]) -> dict[str, int]:
    """``{line label: variant index}``: the configurations of one method told apart.

    The plain method (label equal to the method, or ``"<method> [no --set]"`` beside
    configured rows) gets 0, its set-apart configurations 1, 2, ... in label order, so each
    configuration has its own line style (:data:`LINESTYLES`) and hatch (:data:`HATCHES`) in
    every panel of a figure.
    """
    labels: dict[str, set[str]] = defaultdict(set)
    for block in blocks:
        for ln in block.lines:
            labels[ln.method].add(ln.label)
    out: dict[str, int] = {}
    for method, names in labels.items():
        plain = {method, f"{method} [{NO_SET}]"}
        for i, label in enumerate(sorted(names - plain)):
            out[label] = i + 1
        out.update(dict.fromkeys(names & plain, 0))
    return out


def line_style(method: str, label: str, variant: int) -> dict[str, Any]:
    """Plot keywords of a line: the method's colour and marker, configuration ``variant``'s style.

    ``variant`` is the line's index from :func:`variants`.
    """
    return method_style(method) | {"ls": LINESTYLES[variant % len(LINESTYLES)], "label": label}


def hatch(variant: int) -> str | None:
    """Bar hatch of configuration ``variant`` (:func:`variants`); the plain method has none."""
    return HATCHES[variant % len(HATCHES)]


def mean(vals: list[float | None]) -> float:
    """Mean of the values that are not ``None`` (NaN when there are none)."""
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else math.nan


def title(block: Block) -> str:
    """A block's title on two lines: the data set setting, then profile, backbone, split."""
    setting, _, rest = block.title.partition(" · ")
    return f"{setting}\n{rest}"


#: More legend entries than this go below the axes in columns (beside them they would run
#: into the figure title).
SIDE_LEGEND_MAX = 8


def legend(fig, axes) -> None:
    """One legend for ``fig``, one entry per label, a method's configurations together.

    Beside the axes on the right when short; below them, in columns, when longer than
    :data:`SIDE_LEGEND_MAX` entries.
    """
    seen: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(label, handle)
    if not seen:
        return
    labels = sorted(seen)
    handles = [seen[label] for label in labels]
    if len(labels) <= SIDE_LEGEND_MAX:
        fig.legend(handles, labels, loc="outside right upper", fontsize=8)
    else:
        ncols = math.ceil(len(labels) / math.ceil(len(labels) / 3))
        fig.legend(handles, labels, loc="outside lower center", fontsize=8, ncols=ncols)


def pick_dataset(datasets: list[str], dataset: str | None, what: str) -> str:
    """The data set to plot: ``dataset`` if among ``datasets``, else the only one there is.

    Raises:
        UsageError: several data sets and none chosen, or ``dataset`` not among them.
    """
    if dataset is None:
        if len(datasets) > 1:
            raise UsageError(
                f"records of several data sets ({', '.join(datasets)}); choose one with --dataset"
            )
        return datasets[0]
    if dataset not in datasets:
        raise choices_error(f"data set ({what})", dataset, datasets)
    return dataset
