"""Aggregating result records into comparison rows (mean ± std over seeds).

Runs are grouped by everything that defines a configuration: data set, method, profile,
backbone, data parameters, method config and split hash. Runs that differ in any of these are
never averaged together; they form separate rows. Failed runs are listed, never averaged.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any

METRICS = ("overall", "many", "medium", "few")


def group_key(rec: dict[str, Any]) -> tuple:
    """The configuration a run belongs to (everything but the training seed)."""
    return (
        rec["dataset"],
        rec["method"],
        rec["profile"],
        rec["backbone"],
        rec.get("config_hash"),
        rec["split_hash"],
    )


def mean_std(values: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (0 for one value); ``None`` for no values."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0


def aggregate(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per configuration with mean/std of each metric and the seeds."""
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        if rec.get("status", "ok") != "ok" or not rec.get("metrics"):
            continue
        groups[group_key(rec)].append(rec)
    rows = []
    for key, recs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        recs.sort(key=lambda r: r["seed"])
        row: dict[str, Any] = {
            "dataset": key[0],
            "method": key[1],
            "profile": key[2],
            "backbone": key[3],
            "config_hash": key[4],
            "split_hash": key[5],
            "seeds": [r["seed"] for r in recs],
            "n": len(recs),
            "records": recs,
        }
        for m in METRICS:
            row[m], row[m + "_std"] = mean_std([r["metrics"].get(m) for r in recs])
        rows.append(row)
    return rows


def fmt(mean: float | None, std: float | None, n: int) -> str:
    """``71.3 ± 0.4`` (``71.3`` for one seed, ``-`` when missing)."""
    if mean is None:
        return "-"
    return f"{mean:.1f}" if n < 2 else f"{mean:.1f} ± {std:.1f}"


def simple_table(records: list[dict[str, Any]]) -> str:
    """Terminal table of the aggregated rows."""
    from tabulate import tabulate

    rows = aggregate(records)
    body = [
        [
            r["dataset"],
            r["method"],
            r["profile"],
            r["backbone"],
            r["n"],
            *(fmt(r[m], r[m + "_std"], r["n"]) for m in METRICS),
        ]
        for r in rows
    ]
    return tabulate(
        body,
        headers=["dataset", "method", "profile", "backbone", "seeds", *METRICS],
        tablefmt="simple",
    )
