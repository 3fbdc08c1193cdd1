"""Aggregating result records into comparison rows (mean ± std over seeds) and a board.

Runs are grouped by everything that defines a configuration: data set, method, profile,
backbone, data parameters, method config and split hash. Runs that differ in any of these are
never averaged together; they form separate rows. Failed runs are listed, never averaged. The
:class:`Board` lays rows out as the leaderboard: one line per method (and configuration), one
column group per data set variant; the paper's quoted numbers are separate lines, never mixed
into measured means. Output formats live in :mod:`sslt_bench.render`.
"""

from __future__ import annotations

import json
import math
import statistics
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from . import paper

METRICS = ("overall", "many", "medium", "few")
#: Data parameters every label names, default or not: what a reader needs to read the numbers.
ALWAYS_SHOWN = ("imbalance_ratio",)


def _params_key(rec: dict[str, Any]) -> str:
    return json.dumps(rec.get("data_params") or {}, sort_keys=True)


def group_key(rec: dict[str, Any]) -> tuple:
    """The configuration a run belongs to (everything but the training seed)."""
    return (
        rec["dataset"],
        rec["method"],
        rec["profile"],
        rec["backbone"],
        rec.get("config_hash"),
        rec["split_hash"],
        _params_key(rec),
    )


def is_ok(rec: dict[str, Any]) -> bool:
    """A finished run with metrics (anything else is listed as failed)."""
    return rec.get("status", "ok") == "ok" and bool(rec.get("metrics"))


KEYS = ("dataset", "method", "profile", "backbone", "config_key", "split_hash", "params")


def _frame(ok: list[dict[str, Any]], metrics: tuple[str, ...]):
    """One DataFrame row per finished run: the grouping keys, seed, metrics and timings."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "i": i,
                "dataset": r["dataset"],
                "method": r["method"],
                "profile": r["profile"],
                "backbone": r["backbone"],
                "config_key": str(r.get("config_hash")),
                "split_hash": r["split_hash"],
                "params": _params_key(r),
                "seed": r["seed"],
                **{m: r["metrics"].get(m, r.get(m)) for m in metrics},
                "wall_time_s": r.get("wall_time_s"),
                "train_images_per_s": r.get("train_images_per_s"),
            }
            for i, r in enumerate(ok)
        ],
        columns=["i", *KEYS, "seed", *metrics, "wall_time_s", "train_images_per_s"],
    )


def _drop_duplicates(df, ok: list[dict[str, Any]]):
    """The first record of each (configuration, seed); a warning for every other one."""
    dup = df.duplicated([*KEYS, "seed"], keep="first")
    first = df[~dup].set_index([*KEYS, "seed"])["i"]
    for _, d in df[dup].iterrows():
        kept = ok[first[tuple(d[[*KEYS, "seed"]])]]
        rec = ok[d["i"]]
        warnings.warn(
            f"duplicate run {rec.get('run_id', tuple(d[list(KEYS)]))} seed {rec['seed']}: using "
            f"{kept.get('_path')}, ignoring {rec.get('_path')}",
            stacklevel=3,
        )
    return df[~dup]


def _fmean(s) -> float:
    """Correctly rounded mean (``math.fsum``): the same digits whatever the row order."""
    vals = s.dropna()
    return statistics.fmean(vals) if len(vals) else math.nan


def _stdev(s) -> float:
    """Sample standard deviation (NaN below two values)."""
    vals = s.dropna()
    return statistics.stdev(vals) if len(vals) > 1 else math.nan


def _none(v: Any) -> Any:
    return None if v is None or v != v else float(v)  # NaN -> None


def aggregate(
    records: list[dict[str, Any]], by_seed: bool = False, metrics: tuple[str, ...] = METRICS
) -> list[dict[str, Any]]:
    """One row per configuration (per run with ``by_seed``) with mean/std of each metric.

    Records -> DataFrame -> groupby(configuration) -> mean / sample std (0 for one seed,
    ``None`` without values), both exactly rounded so the digits never depend on row order.
    Failed runs are left out. Two records of the same configuration and seed (the same run
    found in two folders) count once: the first by file path is kept, with a warning.
    ``metrics`` are read from a record's ``metrics`` (else its top level), so a new metric
    column is one more name here.
    """
    ok = sorted((r for r in records if is_ok(r)), key=lambda r: str(r.get("_path", "")))
    if not ok:
        return []
    df = _drop_duplicates(_frame(ok, metrics), ok)
    keys = [*KEYS, "seed"] if by_seed else list(KEYS)
    cols = [*metrics, "wall_time_s", "train_images_per_s"]
    df[cols] = df[cols].astype(float)
    grouped = df.groupby(keys, sort=True)
    stats = grouped[cols].agg([("mean", _fmean), ("std", _stdev), "count"])
    rows = []
    for key, part in grouped:
        recs = [ok[i] for i in part.sort_values("seed")["i"]]
        s = stats.loc[key]
        row: dict[str, Any] = {
            "dataset": recs[0]["dataset"],
            "method": recs[0]["method"],
            "profile": recs[0]["profile"],
            "backbone": recs[0]["backbone"],
            "config_hash": recs[0].get("config_hash"),
            "split_hash": recs[0]["split_hash"],
            "data_params": recs[0].get("data_params") or {},
            "seeds": [r["seed"] for r in recs],
            "n": len(recs),
            "records": recs,
            "git": sorted({str(r.get("git", "unknown")) for r in recs}),
            "device": sorted(
                {f"{r.get('device', '?')} ({r.get('device_name', '?')})" for r in recs}
            ),
            "wall_time_s": _none(s[("wall_time_s", "mean")]),
            "train_images_per_s": _none(s[("train_images_per_s", "mean")]),
        }
        for m in metrics:
            count = s[(m, "count")]
            row[m] = _none(s[(m, "mean")])
            row[m + "_std"] = None if not count else 0.0 if count == 1 else _none(s[(m, "std")])
        rows.append(row)
    return rows


def fmt(mean: float | None, std: float | None, n: int) -> str:
    """``71.3 ± 0.4`` (``71.3`` for one seed, ``-`` when missing)."""
    if mean is None:
        return "-"
    return f"{mean:.1f}" if n < 2 else f"{mean:.1f} ± {std:.1f}"


def _diff(rows: list[dict[str, Any]], get) -> list[str]:
    """Keys whose values differ among ``rows`` (dicts given by ``get``)."""
    keys = sorted({k for r in rows for k in get(r)})
    return [k for k in keys if len({json.dumps(get(r).get(k)) for r in rows}) > 1]


def _default_params(dataset: str) -> dict[str, Any]:
    from dataclasses import asdict

    from .registry import DATASETS

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


def _suffix(row: dict[str, Any], clash: list[dict[str, Any]], by_seed: bool) -> str:
    parts = [f"seed {row['seeds'][0]}"] if by_seed else []
    if len({(r["config_hash"], r["split_hash"]) for r in clash}) > 1:
        if len({r["split_hash"] for r in clash}) > 1:
            parts.append(f"split {row['split_hash'][:8]}")
        cfg = _diff(clash, lambda r: r["records"][0].get("method_config") or {})
        parts.extend(f"{k}={(row['records'][0].get('method_config') or {}).get(k)}" for k in cfg)
        if not cfg and len({r["split_hash"] for r in clash}) == 1:
            parts.append(f"config {row['config_hash']}")
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
    labels = column_labels(rows)
    columns = sorted(labels.items(), key=lambda kv: (kv[0][0], kv[1]))
    clashes: dict[tuple, list] = defaultdict(list)
    for r in rows:
        clashes[(r["method"], r["profile"], r["backbone"], r["dataset"], _params_key(r))].append(r)
    lines: dict[tuple, Line] = {}
    for r in rows:
        clash = clashes[(r["method"], r["profile"], r["backbone"], r["dataset"], _params_key(r))]
        label = _suffix(r, clash, by_seed)
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
    notes: list[str] = []
    quoted = _quoted_lines(rows, columns, notes, paper_methods) if with_paper else []
    return Board(columns, measured + quoted, rows, failed, notes, tuple(metrics))


def _quoted_lines(rows, columns, notes: list[str], methods: set[str] | None) -> list[Line]:
    out: dict[tuple, Line] = {}
    for col, col_label in columns:
        here = [r for r in rows if (r["dataset"], _params_key(r)) == col]
        params = here[0]["data_params"]
        blocks: dict[tuple, dict] = {}
        for q in paper.quoted_rows(col[0]):
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
            line.cells[col] = {m: q[m] for m in METRICS} | {"n": None}
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
    from .errors import UsageError

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
