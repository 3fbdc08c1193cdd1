"""The leaderboard as a board: lines (methods) by column groups (data set variants).

Rows come from :func:`~sslt_bench.results.aggregate.aggregate` (one per configuration, mean ± std
over seeds; re-exported here). The :class:`Board` lays them out: one line per method (and
configuration), one column per data set variant with a label naming its parameters; the
paper's quoted numbers are separate lines, never mixed into measured means; failed runs are
listed, never averaged. Layouts live in :mod:`sslt_bench.results.layout`, output formats in
:mod:`sslt_bench.results.render`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from . import paper
from .aggregate import METRICS, _params_key, aggregate, fmt, group_key, is_ok
from .drift import OLD, drift_words, profile_drift

__all__ = [
    "METRICS",
    "Board",
    "Line",
    "aggregate",
    "build_board",
    "column_labels",
    "filter_records",
    "fmt",
    "group_key",
    "is_ok",
]

#: Data parameters every label names, default or not: what a reader needs to read the numbers.
ALWAYS_SHOWN = ("imbalance_ratio",)


def _diff(rows: list[dict[str, Any]], get) -> list[str]:
    """Keys whose values differ among ``rows`` (dicts given by ``get``)."""
    keys = sorted({k for r in rows for k in get(r)})
    return [k for k in keys if len({json.dumps(get(r).get(k)) for r in rows}) > 1]


def _default_params(dataset: str) -> dict[str, Any]:
    from dataclasses import asdict

    from ..registry import DATASETS

    try:
        return asdict(DATASETS.get(dataset).Params())
    except Exception:  # unregistered data set (foreign records): no defaults known
        return {}


def column_labels(rows: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """Label per data set variant, e.g. ``cifar10-sslt (imbalance_ratio=1000)``.

    The label names the parameters that differ from the data set's defaults or between the
    variants present, and always those of :data:`ALWAYS_SHOWN` (the imbalance ratio).
    """
    labels = {}
    by_ds: dict[str, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        by_ds[r["dataset"]][_params_key(r)] = r["data_params"]
    for ds, variants in by_ds.items():
        defaults = _default_params(ds)
        differ = set(_diff([{"p": p} for p in variants.values()], lambda r: r["p"]))
        for key, params in variants.items():
            shown = [
                k
                for k in sorted(params)
                if k in differ or k in ALWAYS_SHOWN or params[k] != defaults.get(k)
            ]
            extra = ", ".join(
                f"{k}={params[k]:g}" if isinstance(params[k], float) else f"{k}={params[k]}"
                for k in shown
            )
            labels[(ds, key)] = f"{ds} ({extra})" if extra else ds
    return labels


@dataclass
class Line:
    """One line of the board: a method configuration (measured) or a quoted paper row."""

    label: str
    method: str
    profile: str
    backbone: str
    quoted: bool = False
    table: str | None = None
    cells: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


@dataclass
class Board:
    """Columns (data set variants), lines, aggregated rows, failed runs and notes."""

    columns: list[tuple[tuple[str, str], str]]
    lines: list[Line]
    rows: list[dict[str, Any]]
    failed: list[dict[str, Any]]
    notes: list[str]
    metrics: tuple[str, ...] = METRICS

    @property
    def head(self) -> tuple[str, ...]:
        """Column names of one data set variant: ``n`` and the metrics."""
        return ("n", *self.metrics)


def _method_overrides(rec: dict[str, Any]) -> frozenset[str]:
    """The ``--set`` values of a record that set its method config (``key=value``)."""
    config = rec.get("method_config") or {}
    out = set()
    for item in rec.get("overrides") or ():
        key, _, value = item.partition("=")
        key = key.removeprefix("method.")
        if key in config:
            out.add(f"{key}={value}")
    return frozenset(out)


#: The row label's word for a method's profile configuration beside configured rows.
NO_SET = "no --set"


def _config_words(row: dict[str, Any], clash: list[dict[str, Any]]) -> list[str]:
    """What sets ``row``'s configuration apart from the ``clash`` rows of its method.

    The ``--set`` values the user gave (``recipe=released``; ``no --set`` for the profile's
    own) when they tell the rows apart, else every method config field that differs.
    """
    given = [{_method_overrides(rec) for rec in r["records"]} for r in clash]
    if all(len(g) == 1 for g in given) and len({next(iter(g)) for g in given}) == len(clash):
        return sorted(_method_overrides(row["records"][0])) or [NO_SET]
    cfg = _diff(clash, lambda r: r["records"][0].get("method_config") or {})
    return [f"{k}={(row['records'][0].get('method_config') or {}).get(k)}" for k in cfg]


def _suffix(
    row: dict[str, Any], clash: list[dict[str, Any]], by_seed: bool, drift: dict[str, tuple]
) -> str:
    parts = [f"seed {row['seeds'][0]}"] if by_seed else []
    if len({(r["config_hash"], r["split_hash"]) for r in clash}) > 1:
        if len({r["split_hash"] for r in clash}) > 1:
            parts.append(f"split {row['split_hash'][:8]}")
        words = [w for w in _config_words(row, clash) if w.partition("=")[0] not in drift]
        parts.extend(words)
        if not words and not drift and len({r["split_hash"] for r in clash}) == 1:
            parts.append(f"config {row['config_hash']}")
    parts.extend(drift_words(row["profile"], drift))
    return f"{row['method']} [{', '.join(parts)}]" if parts else row["method"]


def build_board(
    records: list[dict[str, Any]],
    by_seed: bool = False,
    with_paper: bool = False,
    paper_methods: set[str] | None = None,
    metrics: tuple[str, ...] = METRICS,
) -> Board:
    """Lay out ``records`` as a leaderboard (quoted paper lines after measured ones).

    Args:
        records: result records (failed ones are listed, not averaged).
        by_seed: one line per run instead of mean ± std over seeds.
        with_paper: add the paper's quoted rows for the data set variants shown.
        paper_methods: only quote these methods (default: every quoted method).
        metrics: the metric columns (a record's ``metrics`` key, else a top-level field);
            quoted paper rows show ``-`` for metrics the paper does not report.
    """
    rows = aggregate(records, by_seed, metrics)
    drifts = {id(r): profile_drift(r["records"][0]) for r in rows}  # once per row
    labels = column_labels(rows)
    columns = sorted(labels.items(), key=lambda kv: (kv[0][0], kv[1]))
    clashes: dict[tuple, list] = defaultdict(list)
    for r in rows:
        clashes[(r["method"], r["profile"], r["backbone"], r["dataset"], _params_key(r))].append(r)
    lines: dict[tuple, Line] = {}
    for r in rows:
        clash = clashes[(r["method"], r["profile"], r["backbone"], r["dataset"], _params_key(r))]
        label = _suffix(r, clash, by_seed, drifts[id(r)])
        line = lines.setdefault(
            (r["method"], r["profile"], r["backbone"], label),
            Line(label, r["method"], r["profile"], r["backbone"]),
        )
        line.cells[(r["dataset"], _params_key(r))] = r
    measured = [lines[k] for k in sorted(lines)]
    failed = sorted(
        (r for r in records if not is_ok(r)),
        key=lambda r: (r.get("dataset", ""), r.get("method", ""), r.get("seed", 0)),
    )
    notes = _drift_notes(rows, drifts)
    quoted = _quoted_lines(rows, columns, notes, paper_methods) if with_paper else []
    return Board(columns, measured + quoted, rows, failed, notes, tuple(metrics))


def _drift_notes(rows: list[dict[str, Any]], drifts: dict[int, dict[str, tuple]]) -> list[str]:
    """One note per method whose rows ran under an older version of their profile."""
    now: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in rows:
        for key, (_, value) in drifts[id(r)].items():
            now[(r["method"], r["profile"])].add(f"{key}={value}")
    return [
        f"{method} [{OLD} {profile}: ...] ran before its profile changed; the label gives the "
        f"recorded values, the {profile} profile now gives {', '.join(sorted(values))}."
        for (method, profile), values in sorted(now.items())
    ]


def _quoted_lines(rows, columns, notes: list[str], methods: set[str] | None) -> list[Line]:
    out: dict[tuple, Line] = {}
    for col, col_label in columns:
        here = [r for r in rows if (r["dataset"], _params_key(r)) == col]
        params = here[0]["data_params"]
        blocks: dict[tuple, dict] = {}
        for q in paper.all_quoted_rows(col[0]):
            if (methods is not None and q["method"] not in methods) or not paper.params_match(
                q["data_params"], params
            ):
                continue
            key = (q["table"], q["backbone"], q["method"])
            line = out.setdefault(
                key,
                Line(
                    f"{q['method']} [{paper.QUOTED}, Table {q['table']}, {q['backbone']}]",
                    q["method"],
                    q["profile"],
                    q["backbone"],
                    quoted=True,
                    table=q["table"],
                ),
            )
            stds = {f"{m}_std": q.get(f"{m}_std") for m in METRICS}
            line.cells[col] = {m: q.get(m) for m in METRICS} | stds | {"n": None}
            blocks[(q["table"], q["backbone"])] = q
        backbones = sorted({r["backbone"] for r in here})
        profiles = sorted({r["profile"] for r in here})
        for (table, backbone), q in sorted(blocks.items()):
            diff = []
            if any(not paper.same_backbone(backbone, b) for b in backbones):
                diff.append(f"backbone: {backbone} vs measured {', '.join(backbones)}")
            if any(p != q["profile"] for p in profiles):
                diff.append(f"budget: the paper's full training vs profile {', '.join(profiles)}")
            if diff:
                notes.append(
                    f"{col_label}: the quoted paper Table {table} rows differ from the measured "
                    f"rows in {'; '.join(diff)}. Not a like-for-like comparison."
                )
        if not blocks:
            notes.append(f"{col_label}: the paper reports no numbers for this data set/setting.")
        for note in sorted({q["notes"] for q in blocks.values() if q["notes"]}):
            notes.append(f"{col_label}: {note}")
    if out:
        notes.insert(
            0,
            f"Rows marked '{paper.QUOTED}' are the paper's published numbers, "
            "shown for reference and never included in measured means.",
        )
    return list(out.values())  # the paper's order


def filter_records(records: list[dict[str, Any]], **allowed: tuple[str, ...]) -> list[dict]:
    """Keep records whose fields match every non-empty filter (``dataset=("a", "b")``...).

    Raises:
        UsageError: if a filter value matches no record (naming the values present).
    """
    from ..errors import UsageError

    out = records
    for fld, values in allowed.items():
        if not values:
            continue
        present = sorted({str(r.get(fld)) for r in out})
        missing = [v for v in values if v not in present]
        if missing:
            raise UsageError(
                f"no result records with {fld} {', '.join(map(repr, missing))}; "
                f"present: {', '.join(present) or '(none)'}"
            )
        out = [r for r in out if str(r.get(fld)) in values]
    return out
