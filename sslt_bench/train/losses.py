"""Shared loss functions and loss schedules (one implementation each; a flat module).

* :func:`ldam_margins`, :func:`ldam_loss`: label-distribution-aware margins (Cao et al. 2019).
* :func:`drw_weights`: effective-number class weights of deferred re-weighting (Cao et al.
  2019, after Cui et al. 2019).
* :func:`mse_consistency`, :func:`sigmoid_rampup`: Mean Teacher's consistency cost and its
  ramp-up (Tarvainen & Valpola 2017, after Laine & Aila 2017).
* :func:`kl_consistency`: KL temporal consistency to previous-epoch probabilities (the
  alternate-sampling paper's eq. 2, after Laine & Aila 2017).
* :func:`fixmatch_mask`, :func:`fixmatch_unlabeled_loss`: confidence-masked hard pseudo-label
  cross-entropy between a weak and a strong view (Sohn et al. 2020).

Methods add their shared losses here as further functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

Counts = torch.Tensor | np.ndarray | Sequence[int]


def _counts(counts: Counts) -> torch.Tensor:
    """Per-class counts as float64, clamped to >= 1 (an empty class is treated as one item)."""
    c = torch.as_tensor(counts).to(torch.float64)
    if c.ndim != 1 or len(c) == 0:
        raise ValueError(f"counts must be a non-empty 1-d sequence, got shape {tuple(c.shape)}")
    return c.clamp(min=1.0)


def ldam_margins(counts: Counts, max_margin: float = 0.5) -> torch.Tensor:
    """LDAM per-class margins Delta_j = K / n_j^(1/4), with K such that max_j Delta_j = max_margin.

    Classes with zero count are treated as having one item (they never occur as targets, but
    keep the scale defined).

    Args:
        counts: n_j, the training count of every class.
        max_margin: the largest margin (the rarest class's); Cao et al. use 0.5.

    Returns:
        float32 margins of shape [C], on the device of ``counts`` if it is a tensor.
    """
    c = _counts(counts)
    m = c.pow(-0.25)
    m = m * (max_margin / m.max())
    device = counts.device if isinstance(counts, torch.Tensor) else None
    return m.to(dtype=torch.float32, device=device)


def ldam_loss(
    logits: torch.Tensor,
    y: torch.Tensor,
    margins: torch.Tensor,
    scale: float = 30.0,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """LDAM loss: cross-entropy of ``scale * (z - Delta_y e_y)`` (margin on the true class only).

    Args:
        logits: [B, C] logits (cosine similarities for LDAM's normalised classifier).
        y: [B] integer targets.
        margins: [C] per-class margins (see :func:`ldam_margins`).
        scale: the logit scale s (30 in Cao et al. with a cosine classifier).
        weight: optional [C] class weights (DRW); the weighted mean as in
            :func:`torch.nn.functional.cross_entropy`.

    Returns:
        The scalar loss.
    """
    m = margins.to(device=logits.device, dtype=logits.dtype)[y]
    shifted = logits - F.one_hot(y, logits.shape[1]).to(logits.dtype) * m[:, None]
    if weight is not None:
        weight = weight.to(device=logits.device, dtype=logits.dtype)
    return F.cross_entropy(scale * shifted, y, weight=weight)


def drw_weights(counts: Counts, beta: float = 0.9999) -> torch.Tensor:
    """Effective-number class weights w_j = (1 - beta) / (1 - beta^n_j), normalised to sum to C.

    ``beta = 0`` gives all-ones weights (no re-weighting). Zero counts are treated as one.

    Args:
        counts: n_j, the training count of every class.
        beta: the effective-number hyper-parameter (0.9999 in Cao et al.'s DRW).

    Returns:
        float32 weights of shape [C], on the device of ``counts`` if it is a tensor.
    """
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    c = _counts(counts)
    w = (1.0 - beta) / (1.0 - torch.pow(torch.tensor(beta, dtype=torch.float64), c))
    w = w / w.sum() * len(c)
    device = counts.device if isinstance(counts, torch.Tensor) else None
    return w.to(dtype=torch.float32, device=device)


def mse_consistency(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the softmax outputs, averaged over items and classes.

    This is Mean Teacher's consistency cost (per item: the squared distance of the two class
    distributions divided by C). Gradients flow to the student only.

    Args:
        student_logits: [B, C] logits of the trained model.
        teacher_logits: [B, C] logits of the target model (detached here).

    Returns:
        The scalar cost.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"shape mismatch: {tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}"
        )
    p = F.softmax(student_logits.float(), dim=1)
    q = F.softmax(teacher_logits.detach().float(), dim=1)
    return F.mse_loss(p, q)


def sigmoid_rampup(step: float, length: float) -> float:
    """Sigmoid-shaped ramp exp(-5 (1 - t)^2), t = clip(step / length, 0, 1); 1 if length <= 0.

    Args:
        step: current position (epoch or optimiser step).
        length: ramp-up length in the same unit.

    Returns:
        A factor in (0, 1]: exp(-5) at ``step = 0``, 1 from ``step = length`` on.
    """
    if length <= 0:
        return 1.0
    t = min(max(float(step) / float(length), 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def kl_consistency(
    logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """KL(target || softmax(logits)) per sample, averaged over the batch.

    The temporal-consistency term of the alternate-sampling paper (eq. 2, after Laine & Aila
    2017): ``target`` holds each sample's class probabilities from the previous epoch (fixed,
    no gradient), ``logits`` this epoch's. Zero-probability target entries contribute 0.

    Args:
        logits: this epoch's logits ``[B, C]``.
        target: previous-epoch probabilities ``[B, C]`` (rows sum to 1).
        mask: samples that have a target ``[B]``; the others contribute 0 (the mean is still
            over all ``B``, so the term's weight matches a sum over samples as in eq. 2).

    Returns:
        Scalar loss.
    """
    target = target.detach().float()
    log_p = F.log_softmax(logits.float(), dim=1)
    kl = (torch.xlogy(target, target) - target * log_p).sum(1)
    if mask is not None:
        kl = torch.where(mask, kl, torch.zeros_like(kl))
    return kl.sum() / max(len(kl), 1)


def fixmatch_mask(probs: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard pseudo-labels and their confidence mask (FixMatch, Sohn et al. 2020).

    Args:
        probs: [B, C] class probabilities (of the weak view).
        threshold: confidence tau; an item is kept if its largest probability is >= tau.

    Returns:
        ``(labels, mask)``: the [B] argmax classes and a [B] float mask (1 = kept, 0 = not).
    """
    conf, labels = probs.max(dim=1)
    return labels, (conf >= threshold).to(probs.dtype)


def fixmatch_unlabeled_loss(
    weak_logits: torch.Tensor, strong_logits: torch.Tensor, threshold: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """FixMatch's unlabeled term: masked CE of the strong view to the weak view's hard label.

    ``(1 / B) * sum_b 1[max p_b >= tau] * CE(strong_b, argmax p_b)`` with ``p = softmax(weak)``
    computed without gradient: the weak view only supplies targets. The mean is over all ``B``
    items (masked ones count as zero), as in the paper.

    Args:
        weak_logits: [B, C] logits of the weakly augmented view (detached here).
        strong_logits: [B, C] logits of the strongly augmented view of the same images.
        threshold: confidence tau (0.95 in the paper).

    Returns:
        ``(loss, mask)``: the scalar loss and the [B] float mask (its mean is the mask rate).
    """
    if weak_logits.shape != strong_logits.shape:
        raise ValueError(
            f"shape mismatch: {tuple(weak_logits.shape)} vs {tuple(strong_logits.shape)}"
        )
    probs = F.softmax(weak_logits.detach().float(), dim=1)
    labels, mask = fixmatch_mask(probs, threshold)
    ce = F.cross_entropy(strong_logits.float(), labels, reduction="none")
    return (ce * mask).sum() / max(len(ce), 1), mask
