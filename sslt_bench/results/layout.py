"""What the cells and blocks of a board say, shared by every output format.

A :class:`~sslt_bench.results.table.Board` has lines (method configurations or quoted paper rows)
and columns (data set variants). The *compact* layout cuts it into :class:`Block` s, one per data
set setting as a reader compares them: data set and parameters, profile, backbone and split fixed in
the title, one row per method sorted by overall accuracy, columns n / overall / many / medium / few.
The paper's quoted rows of a setting form their own block, marked ``paper (quoted)`` in the title
and on every row, and never compete for the best value. The *wide* layout (one column group per data
set variant) uses :func:`cell` directly.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from .paper import QUOTED
from .table import METRICS, Board, Line, fmt

HEAD = ("n", *METRICS)
FAILED_HEAD = ["dataset", "method", "profile", "backbone", "seed", "status", "error", "record"]
PROV_HEAD = [
    "method",
    "data set",
    "profile",
    "backbone",
    "seeds",
    "split hash",
    "config hash",
    "git",
    "device",
    "wall time (s)",
    "train img/s",
]


def _num(v: float) -> str:
    """A quoted number exactly as transcribed (``77.34``, ``60.0``)."""
    return repr(float(v))


def cell(line: Line, col: tuple[str, str], what: str) -> str:
    """Text of one cell: ``n`` or a metric (mean ± std, quoted value, or ``-``)."""
    c = line.cells.get(col)
    if c is None:
        return "-" if what != "n" else ""
    if what == "n":
        return "paper" if line.quoted else str(c["n"])
    if line.quoted:
        if c.get(what) is None:
            return "-"
        std = c.get(what + "_std")
        return _num(c[what]) if std is None else f"{_num(c[what])} ± {_num(std)}"
    return fmt(c.get(what), c.get(what + "_std"), c["n"])


def best_means(
    lines: list[Line], col: tuple[str, str], metrics: tuple[str, ...] = METRICS
) -> dict[str, float]:
    """Highest displayed (1-decimal) measured mean per metric among ``lines`` in ``col``."""
    best: dict[str, float] = {}
    for ln in lines:
        c = ln.cells.get(col)
        if ln.quoted or c is None:
            continue
        for m in metrics:
            if c.get(m) is not None:
                best[m] = max(best.get(m, round(c[m], 1)), round(c[m], 1))
    return best


def is_best(line: Line, col: tuple[str, str], what: str, best: dict[str, float]) -> bool:
    """Whether ``line``'s ``what`` cell in ``col`` shows the best measured mean (ties: all)."""
    c = line.cells.get(col)
    if line.quoted or what == "n" or c is None or c.get(what) is None:
        return False
    return round(c[what], 1) == best.get(what)


@dataclass
class Block:
    """One data set setting of the compact layout: a title and its lines, best first."""

    title: str
    col: tuple[str, str]
    lines: list[Line]
    quoted: bool = False
    metrics: tuple[str, ...] = METRICS

    def label(self, line: Line) -> str:
        """Row label: the method (and what sets its configuration apart)."""
        if not line.quoted:
            return line.label
        return f"{line.method} [Table {line.table}, {line.backbone}]"

    def row(self, line: Line, mark) -> list[str]:
        """``[label, n, metrics...]`` with ``mark(text)`` applied to the best cells."""
        if self.quoted:
            return [self.label(line), "quoted", *(cell(line, self.col, m) for m in self.metrics)]
        best = best_means(self.lines, self.col, self.metrics) if len(self.lines) > 1 else {}
        return [
            self.label(line),
            *(
                mark(cell(line, self.col, h))
                if is_best(line, self.col, h, best)
                else cell(line, self.col, h)
                for h in ("n", *self.metrics)
            ),
        ]


def _overall(line: Line, col: tuple[str, str]) -> float:
    v = line.cells[col]["overall"]
    return -1.0 if v is None else v


def blocks(board: Board) -> list[Block]:
    """The compact layout: per data set variant, one block per (profile, backbone, split)."""
    out = []
    for col, label in board.columns:
        groups: dict[tuple, list[Line]] = defaultdict(list)
        for ln in board.lines:
            if not ln.quoted and col in ln.cells:
                groups[(ln.profile, ln.backbone, ln.cells[col]["split_hash"])].append(ln)
        for (profile, backbone, split), lines in sorted(groups.items()):
            lines.sort(key=lambda ln: (-_overall(ln, col), ln.label))
            title = f"{label} · profile {profile} · {backbone} · split {split[:8]}"
            out.append(Block(title, col, lines, metrics=board.metrics))
        quoted = [ln for ln in board.lines if ln.quoted and col in ln.cells]
        if quoted:
            title = f"{label} · {QUOTED}: published numbers, not measured here"
            out.append(Block(title, col, quoted, quoted=True, metrics=board.metrics))
    return out


def failed_rows(board: Board) -> list[list[Any]]:
    """One row per failed run (:data:`FAILED_HEAD`)."""
    return [
        [
            r.get("dataset"),
            r.get("method"),
            r.get("profile"),
            r.get("backbone"),
            r.get("seed"),
            r.get("status", "?"),
            r.get("error") or "",
            os.path.basename(r.get("_path", "")),
        ]
        for r in board.failed
    ]


def provenance(board: Board) -> list[list[str]]:
    """Per measured cell (line × data set variant): where its numbers come from."""
    labels = dict(board.columns)
    out = []
    for ln in board.lines:
        for col, _ in board.columns:
            r = ln.cells.get(col)
            if ln.quoted or r is None:
                continue
            out.append(
                [
                    ln.label,
                    labels[col],
                    r["profile"],
                    r["backbone"],
                    ",".join(map(str, r["seeds"])),
                    r["split_hash"],
                    str(r["config_hash"]),
                    ", ".join(r["git"]),
                    ", ".join(r["device"]),
                    "-" if r["wall_time_s"] is None else f"{r['wall_time_s']:.1f}",
                    "-" if r["train_images_per_s"] is None else f"{r['train_images_per_s']:.0f}",
                ]
            )
    return out
