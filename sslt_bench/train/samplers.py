"""Random and class-balanced samplers over a labeled pool, as index batches.

* ``random``: every item once per epoch in a seeded random order (instance-balanced).
* ``class_balanced``: each draw picks a class uniformly among the classes present, then an
  item of that class uniformly (Kang et al. 2020, "class-balanced sampling"); an epoch has as
  many draws as the pool has items, or ``size`` draws (:func:`balanced_epoch_size`: the
  largest class times the number of classes, the length of Kang et al.'s ClassAwareSampler).

With ``world_size > 1`` each rank takes a disjoint, equal share of the same global stream
(every rank draws the same permutation from the same generator state).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

Sampling = Literal["random", "class_balanced"]


def balanced_epoch_size(labels: torch.Tensor, num_classes: int) -> int:
    """Largest class count times the number of classes present in ``labels``."""
    counts = torch.bincount(labels.cpu().clamp_min(0), minlength=num_classes)
    return int(counts.max()) * int((counts > 0).sum()) if len(labels) else 0


def epoch_order(
    labels: torch.Tensor,
    sampling: str,
    gen: torch.Generator,
    num_classes: int,
    size: int | None = None,
) -> torch.Tensor:
    """Positions into the pool for one epoch, in training order.

    Args:
        labels: labels of the pool's items (``-1`` allowed only with ``random``).
        sampling: ``random`` or ``class_balanced``.
        gen: the run's sampling generator (CPU).
        num_classes: C.
        size: draws in the epoch (default: the pool's size); ``random`` then concatenates
            fresh permutations.
    """
    n = len(labels) if size is None else size
    if sampling == "random":
        if size is None:
            return torch.randperm(n, generator=gen)
        reps = -(-n // max(len(labels), 1))
        perms = [torch.randperm(len(labels), generator=gen) for _ in range(reps)]
        return torch.cat(perms)[:n] if perms else torch.empty(0, dtype=torch.long)
    if sampling == "class_balanced":
        labels = labels.cpu()
        order = torch.argsort(labels, stable=True)
        counts = torch.bincount(labels, minlength=num_classes)
        present = torch.nonzero(counts).flatten()
        starts = torch.cumsum(counts, 0) - counts
        cls = present[torch.randint(len(present), (n,), generator=gen)]
        offset = (torch.rand(n, generator=gen) * counts[cls]).long()
        return order[starts[cls] + offset]
    raise ValueError(f"unknown sampling {sampling!r}; choose from: random, class_balanced")


def to_batches(
    order: torch.Tensor,
    batch_size: int,
    rank: int = 0,
    world_size: int = 1,
    num_batches: int | None = None,
) -> list[np.ndarray]:
    """Cut a global order into per-rank batches of ``batch_size // world_size`` items.

    A last partial batch is kept if it holds at least two items per rank (BatchNorm needs 2).
    ``num_batches`` cycles or truncates the order to exactly that many global batches.
    """
    order = order.numpy()
    if num_batches is not None:
        need = num_batches * batch_size
        reps = int(np.ceil(need / max(len(order), 1)))
        order = np.tile(order, max(reps, 1))[:need]
    per_rank = batch_size // world_size
    out = []
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        share = chunk[rank::world_size][:per_rank]
        if len(chunk) < batch_size and len(chunk) // world_size < 2:
            break
        out.append(share)
    return out
