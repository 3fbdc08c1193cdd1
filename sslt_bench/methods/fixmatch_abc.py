"""ABC on FixMatch (Lee et al., NeurIPS 2021): an auxiliary balanced classifier.

Paper: "ABC: Auxiliary Balanced Classifier for Class-imbalanced Semi-supervised Learning";
official code LeeHyuck/ABC (ABCcode0920/ABCfix.py); cross-checked with USB's
``imb_algorithms/abc``.

What is new over FixMatch (:mod:`~sslt_bench.methods.fixmatch_core`): a second linear head
(``balanced``, the code's ``classify2``) on the shared features, trained with Bernoulli masks
that make its training data class-balanced in expectation: a labeled item of class k enters its
loss with probability ``n_min / n_k`` (:func:`~sslt_bench.train.ssl_parts.balanced_keep_prob`: the
code's ``ir2 = N_min / N_k``); an unlabeled item enters if the auxiliary head's own weak-view
confidence is >= 0.95 and a Bernoulli draw with probability ``1 - (e / E)(1 - n_min / n_k)``
succeeds (k its auxiliary prediction, e / E the progress through training: every unlabeled
item at first, the balanced rate at the end). The unlabeled targets are the auxiliary head's
soft weak-view probabilities (the code; USB uses hard labels), for each of the two strong
views (losses summed, as the code). Loss = FixMatch's + the auxiliary loss; the masks are drawn
from the run's generator. The auxiliary head of the EMA model is the one evaluated.
Unlabeled batches come from U only (the code's unlabeled set).

Profiles. ``paper`` (:class:`~sslt_bench.methods.fixmatch.DarpCodeConfig`): 500 x 500 steps,
B = 64, mu = 1, two strong views, tau 0.95 for both heads, EMA 0.999, Adam lr 0.002 constant
with the code's per-step decay of 0.02 x lr (``decoupled_decay``). ``quick``: fixmatch's quick
profile (B 32, mu 2, 21 x 100 steps, EMA 0.99, SGD 0.03 cosine as fixmatch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import in_range
from ..registry import register_method
from ..train.ssl_parts import balanced_keep_prob, bernoulli_mask, masked_ce
from ..train.stages import Batch, StepContext
from .fixmatch import DarpCodeConfig
from .fixmatch_core import FixMatchFamily, Forward, PseudoTargets


@dataclass
class AbcConfig(DarpCodeConfig):
    """ABC settings (defaults: the official CIFAR-10 runs).

    Attributes:
        abc_threshold: confidence of the auxiliary head above which U items may enter its loss.
        abc_weight: weight of the auxiliary loss (1 in the code).
    """

    abc_threshold: float = in_range(0.95, "[0, 1]")
    abc_weight: float = in_range(1.0, "[0, inf)")


def unlabeled_keep_prob(keep: torch.Tensor, progress: float) -> torch.Tensor:
    """Keep probability of unlabeled items per class: ``1 - progress * (1 - n_min / n_k)``."""
    return 1.0 - progress * (1.0 - keep)


@register_method(
    "fixmatch+abc",
    summary="Lee et al. 2021: FixMatch + an auxiliary balanced head trained with Bernoulli "
    "masks n_min/n_k; the auxiliary head is evaluated",
)
class FixMatchAbc(FixMatchFamily):
    """FixMatch plus ABC's auxiliary class-balanced head (evaluated)."""

    Config = AbcConfig
    heads = {"random": "linear", "balanced": "linear"}
    eval_head = "balanced"
    strong_views = ("strong", "strong:2")
    include_labeled = False

    def extra(
        self, fw: Forward, targets: PseudoTargets, batch: Batch, ctx: StepContext
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The auxiliary head's Bernoulli-masked loss on labeled and unlabeled items."""
        aux = fw.logits_of("balanced")
        keep = balanced_keep_prob(ctx.labeled_counts).to(aux.device)
        mask_l = bernoulli_mask(keep[batch.y], ctx.generator)
        loss_l = masked_ce(fw.labeled(aux), batch.y, mask_l)
        probs = F.softmax(fw.weak(aux).detach().float(), dim=1)
        conf, pred = probs.max(1)
        keep_u = unlabeled_keep_prob(keep, ctx.epoch / ctx.epochs)[pred]
        mask_u = (conf >= self.cfg.abc_threshold).float() * bernoulli_mask(keep_u, ctx.generator)
        loss_u = sum(masked_ce(s, probs, mask_u) for s in fw.strong(aux))
        loss = loss_l + loss_u
        logs = {"abc": float(loss.detach()), "abc_mask_rate": float(mask_u.mean())}
        return self.cfg.abc_weight * loss, logs
