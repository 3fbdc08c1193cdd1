"""Diagnostics of a semi-supervised run: pseudo labels on U against U's hidden labels.

The runner alone holds U's hidden labels (``Split.unlabeled_y_hidden``; -1 = unknown, e.g.
STL-10's unlabeled images). A method only says how it labels U now (a
:class:`~sslt_bench.train.stages.PseudoRule` from ``Method.pseudo_rule``, or the labels of the
``labeled+pseudo`` pool in ``state["pseudo"]``); :mod:`~sslt_bench.train.session` computes the
labels and this module scores them:

* per class c (true class for recall and mask rate, pseudo class for precision), over the
  *kept* items (above the threshold of threshold methods; label >= 0 for stored labels):
  precision_c = #(kept, pseudo c, true c) / #(kept, pseudo c); recall_c = #(kept, pseudo c,
  true c) / #(kept, true c); mask rate_c = #(kept, true c) / #(true c). Percentages; ``None``
  where a denominator is 0. Group figures (many/medium/few, ``overall``) are means over the
  group's classes that have a value (as :func:`~sslt_bench.train.metrics.accuracy_report`).
* the predicted class distribution p (argmax over every labelled item, threshold or not)
  against the true one q: total variation TV = 0.5 sum_c |p_c - q_c| (``overall``; per group
  the group's share of that sum, so the groups add up to the overall), and
  KL(q || p) in nats with p smoothed as (p + 1e-6) / (1 + C 1e-6) so it stays finite.

With every hidden label unknown, only label-free figures are reported (``labels:
"unknown"``, overall mask rate, predicted distribution); every other value is ``None``.
Items with an unknown label are left out of the label-dependent figures (``labels:
"partial"``, ``known`` = their fraction). Nothing here touches a training RNG:
:func:`preserved_rng` and :func:`kept_modes` wrap every diagnostic forward pass.
"""

from __future__ import annotations

import contextlib
import random
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..data.split import SPLIT_NAMES

#: Version of the record's ``pseudo_label_diagnostics`` object (see docs/diagnostics.md).
DIAGNOSTICS_VERSION = 1
KL_EPS = 1e-6
GROUPS = ("overall", *SPLIT_NAMES)


@dataclass
class DiagnosticSettings:
    """The runner's diagnostic settings (none of them changes training).

    Attributes:
        every_steps: score the pseudo labels every N optimiser steps of a Train step; 0 = at
            the end of every epoch of the step (an epoch of ``steps_per_epoch`` steps for
            step-based methods).
        subsample: score at most this many items of U (a fixed random subset); 0 = all.
        seed: seed of the subset and of the augmented views a rule may ask for.
        trajectory_every: for step-based Train steps (``steps_per_epoch`` set) that train the
            evaluated head, a test evaluation of the evaluated model every N epochs (the
            trajectory ``median_last20`` is taken from); 0 = none.
    """

    every_steps: int = 0
    subsample: int = 0
    seed: int = 0
    trajectory_every: int = 1


def subsample_positions(n: int, k: int, seed: int) -> np.ndarray:
    """Sorted positions of a fixed random subset of ``k`` of ``n`` items (all if k <= 0)."""
    if k <= 0 or k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))


def _pct(num: np.ndarray, den: np.ndarray) -> list[float | None]:
    return [float(100.0 * a / b) if b > 0 else None for a, b in zip(num, den, strict=True)]


def _groups(per_class: list[float | None], class_split: np.ndarray) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for i, name in enumerate(GROUPS):
        vals = [
            v
            for c, v in enumerate(per_class)
            if v is not None and (i == 0 or class_split[c] == i - 1)
        ]
        out[name] = float(np.mean(vals)) if vals else None
    return out


def distribution_gap(
    pred: np.ndarray, true: np.ndarray, class_split: np.ndarray
) -> tuple[dict[str, float], float]:
    """TV (overall and each group's share) and KL(true || smoothed pred) of two histograms."""
    p = pred / max(pred.sum(), 1)
    q = true / max(true.sum(), 1)
    diff = 0.5 * np.abs(p - q)
    tv = {"overall": float(diff.sum())}
    for i, name in enumerate(SPLIT_NAMES):
        tv[name] = float(diff[class_split == i].sum())
    ps = (p + KL_EPS) / (1.0 + len(p) * KL_EPS)
    nz = q > 0
    return tv, float(np.sum(q[nz] * np.log(q[nz] / ps[nz])))


def pseudo_label_metrics(
    labels: np.ndarray,
    kept: np.ndarray,
    hidden: np.ndarray,
    class_split: np.ndarray,
    num_classes: int,
) -> dict[str, Any]:
    """Score pseudo labels against hidden labels (see the module docstring).

    Args:
        labels: [N] pseudo labels (-1 = the method labels nothing for that item).
        kept: [N] bool, items the method uses (above the threshold; label >= 0).
        hidden: [N] true labels, -1 = unknown.
        class_split: per class 0 = many, 1 = medium, 2 = few.
        num_classes: C.

    Returns:
        ``labels`` (known/partial/unknown), ``known`` (fraction), ``n``, ``mask_rate``
        (overall, %), group dicts ``precision``, ``recall``, ``mask_rate_by``, ``tv``; ``kl``
        and ``per_class`` lists (``precision``, ``recall``, ``mask_rate``, ``pred_dist``,
        ``true_dist``).
    """
    labels, hidden = np.asarray(labels, dtype=np.int64), np.asarray(hidden, dtype=np.int64)
    kept = np.asarray(kept, dtype=bool) & (labels >= 0)
    c = num_classes
    known = hidden >= 0
    pred_hist = np.bincount(labels[labels >= 0], minlength=c).astype(float)
    n = len(labels)
    out: dict[str, Any] = {
        "n": int(n),
        "known": float(known.mean()) if n else 0.0,
        "labels": "unknown" if not known.any() else "known" if known.all() else "partial",
        "mask_rate": float(100.0 * kept.mean()) if n else None,
    }
    pred_dist = (pred_hist / max(pred_hist.sum(), 1)).tolist()
    if not known.any():
        none = dict.fromkeys(GROUPS)
        out.update(precision=none, recall=none, mask_rate_by=none, tv=none, kl=None)
        out["per_class"] = {"pred_dist": pred_dist, "true_dist": None}
        return out
    lab, kp, hid = labels[known], kept[known], hidden[known]
    hit = kp & (lab == hid)
    correct = np.bincount(hid[hit], minlength=c)
    per = {
        "precision": _pct(correct, np.bincount(lab[kp], minlength=c)),
        "recall": _pct(correct, np.bincount(hid[kp], minlength=c)),
        "mask_rate": _pct(np.bincount(hid[kp], minlength=c), np.bincount(hid, minlength=c)),
    }
    true_hist = np.bincount(hid, minlength=c).astype(float)
    known_pred = np.bincount(lab[lab >= 0], minlength=c).astype(float)
    tv, kl = distribution_gap(known_pred, true_hist, class_split)
    names = {"precision": "precision", "recall": "recall", "mask_rate": "mask_rate_by"}
    out.update({names[k]: _groups(v, class_split) for k, v in per.items()})
    out.update(tv=tv, kl=kl)
    out["per_class"] = {
        **per,
        "pred_dist": (known_pred / max(known_pred.sum(), 1)).tolist(),
        "true_dist": (true_hist / true_hist.sum()).tolist(),
    }
    return out


def compact(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries with ``per_class`` kept only on each step's last entry (bounded size)."""
    last = {e["step"]: i for i, e in enumerate(entries)}
    return [
        e if last[e["step"]] == i else {k: v for k, v in e.items() if k != "per_class"}
        for i, e in enumerate(entries)
    ]


def record_fields(history: dict[str, Any], settings: DiagnosticSettings) -> dict[str, Any]:
    """The record's ``pseudo_label_diagnostics`` and ``median_last20`` from a run's history."""
    entries = history.get("u_diagnostics") or []
    states = {e["labels"] for e in entries}
    labels = None if not states else states.pop() if len(states) == 1 else "partial"
    return {
        "pseudo_label_diagnostics": {
            "version": DIAGNOSTICS_VERSION,
            "labels": labels,
            "every_steps": settings.every_steps,
            "subsample": settings.subsample,
            "entries": compact(entries),
        },
        "median_last20": median_last(history.get("trajectory") or []),
    }


def median_last(trajectory: list[dict[str, Any]], n: int = 20) -> dict[str, Any] | None:
    """Median of each metric over the last ``n`` test evaluations of the last step that has any.

    Returns ``None`` without evaluations; ``count`` says how many were available (< n when
    the step had fewer). For comparison with papers that report it, never for selection.
    """
    if not trajectory:
        return None
    step = trajectory[-1]["step"]
    last = [e for e in trajectory if e["step"] == step][-n:]
    out: dict[str, Any] = {"count": len(last), "of": n, "step": step}
    for m in GROUPS:
        vals = [e[m] for e in last if e.get(m) is not None]
        out[m] = float(statistics.median(vals)) if vals else None
    return out


@contextlib.contextmanager
def preserved_rng(device: torch.device) -> Iterator[None]:
    """Restore the global torch (CPU and CUDA), NumPy and Python RNG states afterwards."""
    np_state, py_state = np.random.get_state(), random.getstate()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        yield
    np.random.set_state(np_state)
    random.setstate(py_state)


@contextlib.contextmanager
def kept_modes(*modules: torch.nn.Module | None) -> Iterator[None]:
    """Restore every submodule's train/eval flag afterwards (a frozen BN stays in eval)."""
    saved = [(m, m.training) for mod in modules if mod is not None for m in mod.modules()]
    try:
        yield
    finally:
        for m, flag in saved:
            m.training = flag


#: What ``sslt-bench table --figure median-last20`` says above the table.
MEDIAN_NOTE = (
    "figure: median of the last 20 test evaluations (step-based runs; as DASO/DARP/CoSSL/ACR "
    "report it), not the final model's accuracy; never used for selection"
)


def with_median_figure(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Records whose ``metrics`` are their ``median_last20`` figures, and how many had none.

    Failed runs pass through unchanged (the table lists them); finished runs without the
    figure (older records, methods that are not step-based) are left out and counted.
    """
    out, missing = [], 0
    for rec in records:
        med = rec.get("median_last20")
        if rec.get("status", "ok") != "ok":
            out.append(rec)
        elif med is None:
            missing += 1
        else:
            out.append({**rec, "metrics": {m: med.get(m) for m in GROUPS}})
    return out, missing
