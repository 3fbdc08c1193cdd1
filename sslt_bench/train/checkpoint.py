"""Atomic, weights-only checkpoints of a run (model, optimiser, RNG, method state, progress).

Checkpoints hold only tensors and plain containers, so they load with
``torch.load(weights_only=True)`` (no arbitrary pickle code runs). They are written to a
temporary file, fsync-ed and renamed; the previous one is kept as ``*.prev.pt``. A checkpoint
carries the run's identity (method, data set, split hash, config); resuming from one whose
identity differs is refused with a message naming what differs.
"""

from __future__ import annotations

import io
import random
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UsageError
from ..results.records import atomic_write_bytes


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    """All RNG states as tensors and plain values."""
    np_state = np.random.get_state()
    state = {
        "generator": generator.get_state(),
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _py_state(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _py_state(state: tuple) -> list:
    return [state[0], list(state[1]), state[2]]


def set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    """Inverse of :func:`rng_state`."""
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np_state[1].numpy().astype(np.uint32), *np_state[2:]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` atomically, keeping the previous checkpoint as ``*.prev.pt``."""
    buf = io.BytesIO()
    torch.save(payload, buf)
    path = Path(path)
    if path.exists():
        path.replace(path.with_suffix(".prev.pt"))
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, identity: dict[str, Any]) -> dict[str, Any] | None:
    """Load the last good checkpoint at ``path`` (or its ``.prev``) if it matches ``identity``.

    Returns:
        The payload, or ``None`` if there is no checkpoint.

    Raises:
        UsageError: the checkpoint belongs to another run; the message names what differs.
    """
    for candidate in (Path(path), Path(path).with_suffix(".prev.pt")):
        if not candidate.exists():
            continue
        try:
            payload = torch.load(candidate, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a torn or foreign file: try the previous one
            warnings.warn(
                f"ignoring unreadable checkpoint {candidate} ({type(exc).__name__}); "
                "trying the previous one or starting over",
                stacklevel=2,
            )
            continue
        theirs = payload.get("identity", {}) if isinstance(payload, dict) else {}
        if not isinstance(theirs, dict):
            theirs = {}
        diff = [k for k in identity if theirs.get(k) != identity[k]]
        if diff:
            raise UsageError(
                f"checkpoint {candidate} is from a different run or version "
                f"({', '.join(diff)} differ: "
                + "; ".join(f"{k}: {theirs.get(k)!r} vs {identity[k]!r}" for k in diff)
                + "); use --fresh to start over, or another --out"
            )
        return payload
    return None
