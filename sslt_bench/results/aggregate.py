"""Aggregating result records: one row per configuration with mean ± std over seeds.

Runs are grouped by everything that defines a configuration: data set, method, profile,
backbone, data parameters, method config and split hash; runs that differ in any of these
are never averaged together. Failed runs are left out (the board lists them). Records go into
a pandas DataFrame, grouped by configuration, each metric aggregated to mean, sample std and
count (exactly rounded, so the digits never depend on the order of the records).
"""

from __future__ import annotations

import json
import math
import statistics
import warnings
from typing import Any

METRICS = ("overall", "many", "medium", "few")


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
