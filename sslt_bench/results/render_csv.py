"""CSV output of ``sslt-bench table``: one raw row per run, then the quoted paper rows.

Numbers are written unformatted (never ``72.0 ± 2.0``), with the provenance of every run
(split and config hash, device, git revision, timing, record file), so the file can be read
back into pandas or a spreadsheet and re-aggregated.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Any

from .paper import QUOTED
from .table import METRICS, Board, is_ok

CSV_HEAD = [
    "source",
    "dataset",
    "data_params",
    "method",
    "profile",
    "backbone",
    "seed",
    "split_seed",
    "split_hash",
    "config_hash",
    "status",
    *METRICS,
    "wall_time_s",
    "train_time_s",
    "train_images_per_s",
    "device",
    "device_name",
    "git",
    "error",
    "record",
]


def to_csv(records: list[dict[str, Any]], board: Board | None = None) -> str:
    """One raw row per run (numbers unformatted), then the board's quoted paper rows."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_HEAD)

    def key(r: dict[str, Any]) -> tuple:
        return (
            r.get("dataset", ""),
            r.get("method", ""),
            r.get("profile", ""),
            str(r.get("config_hash")),
            r.get("seed", 0),
            r.get("_path", ""),
        )

    for r in sorted(records, key=key):
        m = (r.get("metrics") or {}) if is_ok(r) else {}
        w.writerow(
            ["measured", r.get("dataset"), json.dumps(r.get("data_params") or {}, sort_keys=True)]
            + [r.get(k) for k in ("method", "profile", "backbone", "seed", "split_seed")]
            + [r.get(k) for k in ("split_hash", "config_hash")]
            + [r.get("status", "ok")]
            + [m.get(x) for x in METRICS]
            + [r.get(k) for k in ("wall_time_s", "train_time_s", "train_images_per_s", "device")]
            + [r.get("device_name"), r.get("git"), r.get("error") or ""]
            + [os.path.basename(r.get("_path", ""))]
        )
    for ln in board.lines if board else []:
        if not ln.quoted:
            continue
        for (ds, params), c in ln.cells.items():
            w.writerow(
                [f"{QUOTED}, Table {ln.table}", ds, params, ln.method, ln.profile, ln.backbone]
                + [None] * 5
                + [c[x] for x in METRICS]
                + [None] * 8
            )
    return buf.getvalue()
