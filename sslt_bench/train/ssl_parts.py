"""Shared pieces of the class-imbalanced semi-supervised methods (one implementation each).

* :func:`class_prior`, :func:`reversed_prior`, :func:`logit_adjustment`: class priors from
  counts and the logit adjustment ``tau * log prior`` (Menon et al. 2021; ACR's form).
* :func:`symmetric_kl`: ``(KL(p||q) + KL(q||p)) / 2`` between two class distributions.
* :func:`bank_update`, :func:`bank_counts`: a per-item bank of the latest weak-view class
  probabilities of the unlabeled items, kept in the method state (DARP's and SAW's
  ``pseudo_orig``); :func:`class_histogram`, :func:`ema_histogram`: an EMA of the histogram of
  predicted classes (ACR).
  Both are estimates of the unlabeled class distribution from predictions, never from labels.
* :func:`balanced_keep_prob`, :func:`bernoulli_mask`: the Bernoulli masks of a class-balanced
  auxiliary head (ABC: class k kept with probability n_min / n_k).
* :func:`window_push`, :func:`window_mean`, :func:`align_distribution`: the mean of the last
  K batch-mean predictions kept in the method state (p_model), and distribution alignment
  ``p * target / p_model`` renormalised (ReMixMatch's, CReST+'s with ``target ** t``).
* :func:`queue_push`, :func:`queue_prototypes`: a class-wise FIFO queue of the last L
  features of each class in the method state, and the class prototypes (per-class means) it
  gives (DASO's balanced feature queue).
* :func:`masked_ce`: cross-entropy to hard or soft targets, times a per-item mask (and weight),
  averaged over all items (masked ones count zero), FixMatch's reduction.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F


def class_prior(counts: torch.Tensor) -> torch.Tensor:
    """Class frequencies ``n_k / sum n`` as float32 (on the counts' device)."""
    c = torch.as_tensor(counts).to(torch.float32)
    return c / c.sum().clamp_min(1.0)


def reversed_prior(prior: torch.Tensor) -> torch.Tensor:
    """The prior with its values reversed by rank: the most frequent class gets the rarest value.

    For classes sorted from head to tail this is ``flip(prior)`` (ACR's "reversed" anchor); ties
    keep their order (stable sort).
    """
    order = torch.sort(prior, descending=True, stable=True).indices
    out = torch.empty_like(prior)
    out[order] = prior[order].flip(0)
    return out


def logit_adjustment(prior: torch.Tensor, tau: float) -> torch.Tensor:
    """Logit adjustment ``log(prior ** tau + 1e-12)`` (subtract to debias, add inside a loss)."""
    return torch.log(prior.to(torch.float32) ** tau + 1e-12)


def symmetric_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``0.5 * KL(p || q) + 0.5 * KL(q || p)`` of two distributions (no smoothing: both > 0)."""
    p, q = p.double(), q.double()
    return 0.5 * (p * (p.log() - q.log())).sum() + 0.5 * (q * (q.log() - p.log())).sum()


def bank_update(
    state: dict[str, torch.Tensor], key: str, ids: torch.Tensor, probs: torch.Tensor, size: int
) -> None:
    """Store ``probs`` as the latest predictions of items ``ids`` in ``state[key]`` ([size, C]).

    The bank starts uniform (1/C per row); ``state[key + ":seen"]`` marks rows written at least
    once. Rows are item ids in D ∪ U (the unlabeled ones are ``num_labeled..``).
    """
    c = probs.shape[1]
    if key not in state:
        state[key] = torch.full((size, c), 1.0 / c, device=probs.device)
        state[key + ":seen"] = torch.zeros(size, dtype=torch.uint8, device=probs.device)
    state[key][ids] = probs.detach().to(state[key].dtype)
    state[key + ":seen"][ids] = 1


def bank_counts(
    state: dict[str, torch.Tensor], key: str, start: int, num_classes: int
) -> torch.Tensor:
    """Per-class counts of the argmax of the bank's seen rows from ``start`` on (float)."""
    if key not in state:
        return torch.zeros(num_classes)
    rows = state[key][start:]
    seen = state[key + ":seen"][start:].bool()
    return torch.bincount(rows[seen].argmax(1), minlength=num_classes).float()


def class_histogram(
    labels: torch.Tensor,
    weights: torch.Tensor,
    num_classes: int,
    count: Literal["items", "last"] = "items",
) -> torch.Tensor:
    """Weighted histogram of ``labels`` over ``num_classes`` (unnormalised, float32).

    ``count="items"`` sums every item's weight per class; ``count="last"`` gives each class the
    weight of its last item in batch order (:func:`last_item_weights`), what the indexed
    assignment ``h[labels] += weights`` computes on the CPU (ACR's code, train.py:560).
    """
    w = weights.to(torch.float32)
    if count == "last":
        return last_item_weights(labels, w, num_classes)
    return torch.zeros(num_classes, device=labels.device).index_add_(0, labels, w)


def ema_histogram(prev: torch.Tensor, hist: torch.Tensor, momentum: float) -> torch.Tensor:
    """``momentum * prev + (1 - momentum) * hist / sum(hist)``; ``prev`` if ``hist`` is empty.

    No host synchronisation: the empty case is a ``torch.where``, not a Python branch.
    """
    total = hist.sum()
    new = momentum * prev + (1.0 - momentum) * hist.to(prev.dtype) / total.clamp_min(1e-12)
    return torch.where(total > 0, new, prev)


def last_item_weights(
    labels: torch.Tensor, weights: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Per class, the weight of the last item (in batch order) labelled with it; 0 if none.

    The deterministic form of ``h = zeros(C); h[labels] += weights``: indexed assignment with
    repeated indices writes each class once, and PyTorch's CPU kernel keeps the last write.
    """
    if len(labels) == 0:
        return torch.zeros(num_classes, dtype=weights.dtype, device=weights.device)
    pos = torch.arange(len(labels), device=labels.device)
    last = torch.full((num_classes,), -1, dtype=torch.long, device=labels.device)
    last = last.scatter_reduce(0, labels, pos, reduce="amax")
    return torch.where(last >= 0, weights[last.clamp_min(0)], torch.zeros_like(weights[:1]))


def balanced_keep_prob(counts: torch.Tensor) -> torch.Tensor:
    """ABC's per-class keep probability ``n_min / n_k`` (empty classes count as one item)."""
    c = torch.as_tensor(counts).to(torch.float32).clamp_min(1.0)
    return c.min() / c


def bernoulli_mask(keep: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A float 0/1 mask, item i kept with probability ``keep[i]`` (drawn from ``generator``).

    The draws come from the run's seeded CPU generator, so a run is reproducible and resumable.
    """
    u = torch.rand(len(keep), generator=generator).to(keep.device)
    return (u < keep).to(torch.float32)


def masked_ce(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(1 / B) * sum_b mask_b * weight_b * CE(logits_b, target_b)``.

    Args:
        logits: [B, C] logits.
        targets: [B] class ids or [B, C] soft targets (no gradient flows into them).
        mask: [B] float mask.
        weight: optional [B] per-item weights.

    Returns:
        The scalar loss (mean over all B items, masked ones counting zero).
    """
    if targets.ndim == 2:
        ce = -(targets.detach() * F.log_softmax(logits.float(), dim=1)).sum(1)
    else:
        ce = F.cross_entropy(logits.float(), targets, reduction="none")
    w = mask if weight is None else mask * weight
    return (ce * w).sum() / max(len(ce), 1)


def window_push(state: dict[str, torch.Tensor], key: str, probs: torch.Tensor, size: int) -> None:
    """Push the batch mean of ``probs`` into ``state[key]``, the window of the last ``size`` means.

    The window ([size, C]) starts as ``size`` uniform rows (CReST's ``PMovingAverage``), so
    early estimates lean towards uniform.
    """
    c = probs.shape[1]
    if key not in state:
        state[key] = torch.full((size, c), 1.0 / c, device=probs.device)
    state[key] = torch.cat([state[key][1:], probs.detach().mean(0, keepdim=True).to(state[key])])


def window_mean(state: dict[str, torch.Tensor], key: str, num_classes: int) -> torch.Tensor:
    """The mean of the window :func:`window_push` keeps (uniform before the first push)."""
    if key not in state:
        return torch.full((num_classes,), 1.0 / num_classes)
    return state[key].mean(0)


def align_distribution(
    probs: torch.Tensor, target: torch.Tensor, p_model: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """``p * (eps + target) / (eps + p_model)``, each row renormalised to sum 1."""
    out = probs * (eps + target.to(probs.device)) / (eps + p_model.to(probs.device))
    return out / out.sum(1, keepdim=True)


def queue_push(
    state: dict[str, torch.Tensor],
    key: str,
    feats: torch.Tensor,
    labels: torch.Tensor,
    size: int,
    num_classes: int,
) -> None:
    """Append ``feats`` to their classes' FIFO queues ``state[key]`` ([C, size, D]).

    Each class keeps its ``size`` most recent features (older ones drop out first);
    ``state[key + ":fill"]`` counts the valid rows of each class (at most ``size``).
    """
    feats = feats.detach()
    if key not in state:
        state[key] = torch.zeros(num_classes, size, feats.shape[1], device=feats.device)
        state[key + ":fill"] = torch.zeros(num_classes, dtype=torch.long, device=feats.device)
    bank, fill = state[key], state[key + ":fill"]
    for c in labels.unique().tolist():
        new = feats[labels == c].to(bank.dtype)[-size:]
        k = len(new)
        bank[c] = torch.cat([bank[c, k:], new])
        fill[c] = min(int(fill[c]) + k, size)


def queue_prototypes(state: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    """Per-class mean of the queued features ([C, D]); zeros for a class never seen."""
    bank, fill = state[key], state[key + ":fill"]
    size = bank.shape[1]
    valid = (torch.arange(size, device=bank.device)[None] >= size - fill[:, None]).to(bank.dtype)
    return (bank * valid[..., None]).sum(1) / fill.clamp_min(1)[:, None].to(bank.dtype)
