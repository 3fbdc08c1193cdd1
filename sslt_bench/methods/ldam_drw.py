"""LDAM-DRW (Cao et al., NeurIPS 2019): label-distribution-aware margins, deferred re-weighting.

A cosine-normalised classifier is trained on D with the LDAM loss: the true-class logit loses
a margin proportional to n_j^(-1/4) (largest 0.5), logits are scaled by s = 30. For the last
fifth of training (epoch >= 0.8 * epochs, epoch 160 of 200 in the original) the loss is
re-weighted with effective-number class weights (beta = 0.9999), normalised to sum to C.

Profile decision: the paper's Appendix A prescribes, for comparison methods, "the
hyper-parameters in their papers", so ``paper`` follows Cao et al.'s CIFAR recipe: 200 epochs,
batch 128, SGD lr 0.1, momentum 0.9, weight decay 2e-4, 5 linear warm-up epochs, lr x0.01 at
80% and again at 90% of training (epochs 160, 180), DRW from epoch 160 (with the lr drop it is
designed around). ``--set schedule=cosine weight_decay=5e-4 warmup_epochs=0`` gives the
Appendix A optimiser instead.
``quick``: 50 epochs (1 warm-up, DRW from epoch 40): about 100k training images on
cifar10-sslt (~2,000 labeled), roughly 3.5-5.5 min for ResNet-20 on 2 CPU cores at 300-500 img/s.

The class here is also the base of ``pseudo-label+ldam`` and ``mean-teacher+ldam``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..config import in_range
from ..registry import register_method
from ..train.losses import drw_weights, ldam_loss, ldam_margins
from ..train.stages import Batch, Pool, Step, StepContext, Train
from .base import BaseConfig, Method


@dataclass
class LDAMConfig(BaseConfig):
    """LDAM-DRW settings (defaults: Cao et al. 2019, CIFAR).

    Attributes:
        schedule: learning-rate schedule (``step``: x0.01 at every milestone).
        milestones: fractions of training at which the step schedule decays.
        warmup_epochs: linear learning-rate warm-up epochs.
        max_margin: the largest LDAM margin (of the rarest class).
        scale: logit scale s of the cosine classifier.
        drw_beta: effective-number beta of the deferred class weights.
        drw_start: fraction of a training stage after which DRW weights are on.
    """

    weight_decay: float = 2e-4
    schedule: Literal["step", "cosine", "constant"] = "step"
    milestones: tuple[float, ...] = in_range((0.8, 0.9), "(0, 1]")
    warmup_epochs: int = in_range(5, "[0, inf)")
    max_margin: float = in_range(0.5, "(0, inf)")
    scale: float = in_range(30.0, "(0, inf)")
    drw_beta: float = in_range(0.9999, "[0, 1)")
    drw_start: float = in_range(0.8, "[0, 1]")

    PROFILES = {"quick": {"epochs": 50, "warmup_epochs": 1}}
    SMOKE = {**BaseConfig.SMOKE, "warmup_epochs": 0, "drw_start": 0.0}


def drw_active(ctx: StepContext, start: float) -> bool:
    """Whether deferred re-weighting is on: epoch >= ``start`` * epochs of the current stage."""
    return ctx.epoch >= start * ctx.epochs


@register_method(
    "ldam-drw",
    summary="Cao et al. 2019: LDAM margin loss, cosine classifier, deferred re-weighting (D only)",
)
class LDAMDRW(Method):
    """LDAM loss on a cosine classifier with deferred re-weighting, labeled data only."""

    Config = LDAMConfig
    heads = {"random": "cosine"}

    def ldam_train_kwargs(self) -> dict[str, Any]:
        """Optimiser and schedule settings of an LDAM-DRW training stage."""
        c = self.cfg
        return {
            **self.train_kwargs(),
            "schedule": c.schedule,
            "milestones": tuple(c.milestones),
            "warmup_epochs": c.warmup_epochs,
        }

    def ldam_drw(
        self, logits: torch.Tensor, y: torch.Tensor, ctx: StepContext, pool: Pool = "labeled"
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """LDAM loss with margins (and, once DRW is on, class weights) from ``pool``'s counts."""
        c = self.cfg
        counts = ctx.pool_counts(pool)
        on = drw_active(ctx, c.drw_start)
        weight = drw_weights(counts, c.drw_beta) if on else None
        loss = ldam_loss(logits, y, ldam_margins(counts, c.max_margin), c.scale, weight)
        return loss, {"drw": float(on)}

    def loss(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        """LDAM-DRW on the labeled batch."""
        return self.ldam_drw(ctx.model(batch.x, "random"), batch.y, ctx)

    def plan(self) -> list[Step]:
        """One LDAM-DRW stage on D."""
        return [Train("ldam", self.cfg.epochs, self.loss, **self.ldam_train_kwargs())]
