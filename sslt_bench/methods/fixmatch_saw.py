"""SAW on FixMatch (Lai et al., ICML 2022): smoothed adaptive weights on the losses.

Paper: "Smoothed Adaptive Weighting for Imbalanced Semi-Supervised Learning: Improve
Reliability Against Unknown Distribution Data"; official code ZJUJeffLai/SAW_SSL
(train_fix_cifar10.py, imbOptim/classWeights.py ``getClassWeights``; its train_example.sh:
``--effective 0.99 --normalize 1 --distbl gt_l --distbu pseudo``); cross-checked with USB's
``imb_algorithms/saw``.

What is new over FixMatch (:mod:`~sslt_bench.methods.fixmatch_core`): class weights on both
losses, smoothed by the effective number of samples, ``w_k = (1 - beta) / (1 - beta^{n_k})``
normalised to sum to C (:func:`~sslt_bench.train.losses.drw_weights`; beta 0.99 as the official
script; USB uses (N - 1) / N with N the mean count): the labeled CE of an item of class y is
weighted by ``w_y`` from D's counts; the unlabeled CE of an item pseudo-labelled k by ``u_k``
from the counts of U's current pseudo labels, re-estimated after every epoch from the latest
weak-view prediction of each U item (the code's ``pseudo_orig``; U's labels are never read;
items not yet seen are not counted, where the code counts their uniform initial row as class
0). The first epoch's unlabeled weights are 1, as the code's. Weighted CE is averaged over all
items (not divided by the weights' sum), as the code. Unlabeled batches come from U only.

Profiles. ``paper`` (:class:`~sslt_bench.methods.fixmatch.DarpCodeConfig`): 500 x 500 steps,
B = 64, mu = 1, two strong views, tau 0.95, EMA 0.999, beta 0.99, Adam lr 0.002 constant with
the code's per-step decay of 0.02 x lr (``decoupled_decay``). ``quick``: fixmatch's quick
profile (B 32, mu 2, 21 x 100 steps, EMA 0.99, SGD 0.03 cosine as fixmatch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import in_range
from ..registry import register_method
from ..train.losses import drw_weights
from ..train.ssl_parts import bank_counts, bank_update
from ..train.stages import Batch, StepContext
from .fixmatch import DarpCodeConfig
from .fixmatch_core import FixMatchFamily, Forward, PseudoTargets

BANK, WEIGHTS = "saw:bank", "saw:weights_u"


@dataclass
class SawConfig(DarpCodeConfig):
    """SAW settings (defaults: the official CIFAR-10 script).

    Attributes:
        beta: effective-number smoothing of the class weights (0.99 in the official script).
    """

    beta: float = in_range(0.99, "[0, 1)")


def saw_weights(counts: torch.Tensor, beta: float) -> torch.Tensor:
    """SAW's class weights: effective-number weights of ``counts``, summing to C."""
    return drw_weights(counts.cpu(), beta).to(counts.device)


@register_method(
    "fixmatch+saw",
    summary="Lai et al. 2022: FixMatch with smoothed (effective-number) class weights from D's "
    "counts and U's per-epoch pseudo-label counts on both losses",
)
class FixMatchSaw(FixMatchFamily):
    """FixMatch whose labeled and unlabeled losses carry SAW's smoothed class weights."""

    Config = SawConfig
    strong_views = ("strong", "strong:2")
    include_labeled = False

    def supervised(self, fw: Forward, batch: Batch, ctx: StepContext) -> torch.Tensor:
        """CE of the labeled batch weighted by D's smoothed class weights (mean over items)."""
        w = saw_weights(ctx.labeled_counts, self.cfg.beta).to(fw.logits.device)
        ce = F.cross_entropy(fw.labeled().float(), batch.y, reduction="none")
        return (ce * w[batch.y]).mean()

    def unlabeled_weight(self, targets: PseudoTargets, ctx: StepContext) -> torch.Tensor | None:
        """Weight of each unlabeled item: its pseudo label's class weight (1 before epoch 2)."""
        if WEIGHTS not in ctx.state:
            return None
        return ctx.state[WEIGHTS].to(targets.labels.device)[targets.labels]

    def observe(self, fw: Forward, targets: PseudoTargets, batch: Batch, ctx: StepContext) -> None:
        """Remember each U item's latest weak-view probabilities."""
        bank_update(ctx.state, BANK, batch.u_idx, targets.probs, self.state_size(ctx))

    def epoch_end(self) -> Callable[[StepContext], None]:
        """After every epoch: unlabeled weights from U's current pseudo-label counts."""

        def update(ctx: StepContext) -> None:
            counts = bank_counts(ctx.state, BANK, ctx.num_labeled, ctx.num_classes)
            ctx.state[WEIGHTS] = saw_weights(counts.to(ctx.device), self.cfg.beta)

        return update
