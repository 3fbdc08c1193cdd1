"""Ours vs the official code: pair peer records with our records, give the verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

#: Agreement threshold in points (overall and few-shot), unless the seed spread is larger.
TOLERANCE = 2.0
KEYS = ("overall", "many", "medium", "few")


def _load(folder: Path, kind: str | None) -> list[dict[str, Any]]:
    out = []
    for f in sorted(folder.glob("*.json")):
        rec = json.loads(f.read_text())
        if kind is None or rec.get("kind") == kind:
            rec["_file"] = f.name
            out.append(rec)
    return out


def _ours_for(peer: dict, ours: list[dict]) -> dict | None:
    """Our ok record of the same method, data set, split, seed and init weights (newest)."""
    same = [
        r
        for r in ours
        if r.get("status") == "ok"
        and r.get("method") == peer["method"]
        and r.get("split_hash") == peer["split_hash"]
        and r.get("seed") == peer["seed"]
        and r.get("profile") == peer["profile"]
        and r.get("init_hash") == peer["init_hash"]
        and all(r.get("method_config", {}).get(k) == v for k, v in _budget(peer).items())
    ]
    return max(same, key=lambda r: r.get("finished_at", "")) if same else None


def _budget(rec: dict) -> dict:
    cfg = rec.get("method_config", {})
    keys = ("batch_size", "mu", "epochs", "steps_per_epoch", "lr", "ema_decay", "schedule")
    return {k: cfg[k] for k in keys if k in cfg}


def verdict(ours: list[dict], theirs: list[dict]) -> str:
    """``agrees`` if overall and few-shot means are within the tolerance or the seed spread."""
    for key in ("overall", "few"):
        a = np.array([m[key] for m in ours])
        b = np.array([m[key] for m in theirs])
        spread = max(np.ptp(a) if len(a) > 1 else 0.0, np.ptp(b) if len(b) > 1 else 0.0)
        if abs(a.mean() - b.mean()) > max(TOLERANCE, spread):
            return "differs"
    return "agrees"


def agreement_rows(peers: Path, ours_dir: Path) -> list[dict[str, Any]]:
    """One row per (method, data set, setting): ours vs official, per seed, verdict."""
    ours = _load(ours_dir, None)
    groups: dict[tuple, list[tuple[dict, dict | None]]] = {}
    for p in _load(peers, "sslt-bench-peer-check"):
        key = (p["method"], p["dataset"], ",".join(p["overrides"]) or "default")
        groups.setdefault(key, []).append((p, _ours_for(p, ours)))
    rows = []
    for (method, dataset, setting), pairs in sorted(groups.items()):
        paired = [(p, o) for p, o in pairs if o is not None]
        row = {"method": method, "dataset": dataset, "setting": setting, "seeds": len(paired)}
        if not paired:
            rows.append({**row, "verdict": "no paired run of ours"})
            continue
        th, us = [p["metrics"] for p, _ in paired], [o["metrics"] for _, o in paired]
        for k in KEYS:
            row[f"ours {k}"] = float(np.mean([m[k] for m in us]))
            row[f"official {k}"] = float(np.mean([m[k] for m in th]))
        row["ours per seed"] = _per_seed(us)
        row["official per seed"] = _per_seed(th)
        row["diff overall"] = row["ours overall"] - row["official overall"]
        row["diff few"] = row["ours few"] - row["official few"]
        row["verdict"] = verdict(us, th)
        rows.append(row)
    return rows


def _per_seed(metrics: list[dict]) -> str:
    """Overall accuracy of each seed, in brackets (the table's means come from these)."""
    return "[" + ", ".join(f"{m['overall']:.1f}" for m in metrics) + "]"


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A GitHub-markdown table of :func:`agreement_rows`."""
    if not rows:
        return "(no peer-check records)"
    return tabulate(rows, headers="keys", tablefmt="github", floatfmt=".1f")
