"""Accuracy metrics: per class, overall and many/medium/few-shot.

Overall accuracy is the mean over test samples (the test set is balanced, so it equals the
mean per-class accuracy there); many/medium/few accuracy is the mean per-class accuracy over
the classes of that split; an empty split is reported as ``None`` (missing), never as 0.
Numbers are percentages.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.split import SPLIT_NAMES


def accuracy_report(
    pred: np.ndarray, target: np.ndarray, class_split: np.ndarray, num_classes: int
) -> dict[str, Any]:
    """Overall, many/medium/few and per-class accuracy (%) of ``pred`` against ``target``.

    Args:
        pred: predicted labels, shape [N].
        target: true labels, shape [N].
        class_split: per class 0 = many, 1 = medium, 2 = few.
        num_classes: C.

    Returns:
        ``{"overall", "many", "medium", "few", "per_class"}``; a class absent from ``target``
        has per-class accuracy ``None`` and is left out of its split's mean. Targets of -1
        (unknown) are ignored; with no known target every value is ``None``.
    """
    known = np.asarray(target) >= 0  # -1 = unknown label (a real unlabeled pool)
    pred = np.asarray(pred)[known]
    target = np.asarray(target)[known]
    correct = pred == target
    per_class: list[float | None] = []
    for c in range(num_classes):
        mask = target == c
        per_class.append(float(100.0 * correct[mask].mean()) if mask.any() else None)
    out: dict[str, Any] = {"overall": float(100.0 * correct.mean()) if len(correct) else None}
    for i, name in enumerate(SPLIT_NAMES):
        vals = [a for c, a in enumerate(per_class) if class_split[c] == i and a is not None]
        out[name] = float(np.mean(vals)) if vals else None
    out["per_class"] = per_class
    return out
