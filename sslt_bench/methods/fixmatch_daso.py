"""DASO on FixMatch (Oh et al., CVPR 2022): distribution-aware semantics-oriented pseudo labels.

Paper: "DASO: Distribution-Aware Semantics-Oriented Pseudo-label for Imbalanced Semi-Supervised
Learning"; official code ytaek-oh/daso (lib/models/daso_model.py, feature_queue.py,
lib/utils/dist_logger.py, configs/cifar10/fixmatch_daso.yaml); cross-checked with USB's
``imb_algorithms/daso``.

What is new over FixMatch (the rest is :mod:`~sslt_bench.methods.fixmatch_core`):

* A class-wise queue of the last ``queue_size`` (256) features of each class, pushed every step
  from the labeled batch through the EMA model (BatchNorm on batch statistics, as the code's EMA
  in train mode); the class prototypes are their means
  (:func:`~sslt_bench.train.ssl_parts.queue_push`).
* Semantic pseudo labels ``q = softmax(cos(f(weak), prototypes) / T_proto)`` (T_proto 0.05).
* Distribution-aware blending: ``v = pl_dist ** (1 / T_dist)`` normalised to sum 1 then divided
  by its maximum, where ``pl_dist`` is the histogram of the final pseudo labels of the last
  ``dist_period`` (100) steps (all U items of those batches, from the method's own predictions);
  the target is ``(1 - w) p + w q`` with ``w = v[argmax p]`` (:func:`blend_weights`), then
  FixMatch's argmax and tau mask. T_dist 1.5 when the labeled and unlabeled distributions are
  alike, 0.3 otherwise (the code's comment); the default is 1.5.
* Semantic alignment loss: CE of ``softmax(cos(f(strong), prototypes) / T_proto)`` to ``q``
  (weight ``lambda_align`` 1).
* The first ``pretrain_steps`` (5000) steps are plain FixMatch.

Profiles. ``paper`` (the code's CIFAR-10-LT config, n1 1500 / m1 3000): 250k steps (500 x
500), B 64, mu 2, tau 0.95, SGD lr 0.03 constant (the code applies no scheduler), momentum 0.9
Nesterov, wd 5e-4, EMA 0.999 with the code's warm-up (decay <= 1 - 1/(t+1)), unlabeled batches
from U only. ``quick``: fixmatch's quick profile (B 32, mu 2, 21 x 100 steps, EMA 0.99,
cosine as fixmatch's quick for comparability) with ``pretrain_steps`` 600 (2/7 of the
budget, as the first quick profile's 200 of 700) and ``dist_period`` 20.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from ..config import in_range
from ..registry import register_method
from ..train.losses import fixmatch_mask
from ..train.ssl_parts import queue_prototypes, queue_push
from ..train.stages import Batch, EmaDecay, Step, StepContext
from .fixmatch import QUICK_EPOCHS, FixMatchConfig
from .fixmatch_core import FixMatchFamily, Forward, PseudoTargets

QUEUE, PL_ACC, PL_DIST = "daso:queue", "daso:pl_acc", "daso:pl_dist"


@dataclass
class DasoConfig(FixMatchConfig):
    """DASO settings (defaults: the official CIFAR-10-LT config).

    Attributes:
        queue_size: features kept per class in the prototype queue.
        proto_temp: temperature T_proto of the cosine similarities.
        dist_temp: temperature T_dist of the distribution-aware weights.
        dist_aware: blend with the distribution-aware weights (else the fixed ``interp_alpha``).
        interp_alpha: the fixed blend weight when ``dist_aware`` is off.
        lambda_align: weight of the semantic alignment loss.
        pretrain_steps: steps of plain FixMatch before DASO starts.
        dist_period: steps between updates of the pseudo-label distribution.
        constant_lr: no learning-rate decay (the code's ``APPLY_SCHEDULER: False``).
    """

    epochs: int = 500
    steps_per_epoch: int = in_range(500, "[1, inf)")
    mu: int = in_range(2, "[1, inf)")
    queue_size: int = in_range(256, "[1, inf)")
    proto_temp: float = in_range(0.05, "(0, inf)")
    dist_temp: float = in_range(1.5, "(0, inf)")
    dist_aware: bool = True
    interp_alpha: float = in_range(0.5, "[0, 1]")
    lambda_align: float = in_range(1.0, "[0, inf)")
    pretrain_steps: int = in_range(5000, "[0, inf)")
    dist_period: int = in_range(100, "[1, inf)")
    constant_lr: bool = True

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {
            **FixMatchConfig.PROFILES["quick"],
            "pretrain_steps": round(QUICK_EPOCHS * 100 * 2 / 7),
            "dist_period": 20,
            "constant_lr": False,
        }
    }
    SMOKE: ClassVar[dict[str, Any]] = {
        **FixMatchConfig.SMOKE,
        "pretrain_steps": 1,
        "dist_period": 1,
    }


def blend_weights(pl_dist: torch.Tensor, temperature: float) -> torch.Tensor:
    """DASO's distribution-aware weight of the semantic pseudo label, per predicted class.

    ``v = pl_dist ** (1 / T)``, normalised to sum 1, then divided by its maximum: the class
    predicted most often gets weight 1 (its pseudo labels lean on the semantic one), rarer
    predicted classes smaller weights (they keep more of the linear one).
    """
    v = pl_dist.double().clamp_min(0) ** (1.0 / temperature)
    v = v / v.sum()
    return (v / v.max()).float()


def blend(p_linear: torch.Tensor, q_semantic: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``(1 - w) p + w q`` with ``w = weights[argmax p]`` per row."""
    w = weights.to(p_linear.device)[p_linear.argmax(1)].unsqueeze(1)
    return (1.0 - w) * p_linear + w * q_semantic


def semantic_logits(feats: torch.Tensor, prototypes: torch.Tensor, temp: float) -> torch.Tensor:
    """Cosine similarity of each feature to each class prototype, divided by ``temp``."""
    return F.cosine_similarity(feats.unsqueeze(1), prototypes.unsqueeze(0), dim=2) / temp


@register_method(
    "fixmatch+daso",
    summary="Oh et al. 2022: FixMatch whose pseudo labels blend in semantic ones (cosine to "
    "class prototypes of a feature queue) by the pseudo-label distribution; alignment loss",
)
class FixMatchDaso(FixMatchFamily):
    """FixMatch with DASO's blended pseudo labels and semantic alignment loss."""

    Config = DasoConfig
    include_labeled = False

    def active(self, ctx: StepContext) -> bool:
        """DASO's parts are on after the FixMatch pre-training steps."""
        return ctx.step >= self.cfg.pretrain_steps

    def forward(self, batch: Batch, ctx: StepContext) -> Forward:
        """Push the labeled batch's EMA features to the queue, then FixMatch's forward pass."""
        net = ctx.ema if ctx.ema is not None else ctx.model
        was = net.training
        net.train()  # the code's EMA model runs in train mode: BatchNorm on batch statistics
        with torch.no_grad():
            feats = net.embed(batch.x).float()
        net.train(was)
        c = self.cfg
        queue_push(ctx.state, QUEUE, feats, batch.y, c.queue_size, ctx.num_classes)
        return super().forward(batch, ctx)

    def semantic(self, fw: Forward, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
        """Semantic probabilities of the weak view (no gradient) and logits of the strong view."""
        protos = queue_prototypes(ctx.state, QUEUE)
        strong = semantic_logits(fw.strong(fw.feats)[0].float(), protos, self.cfg.proto_temp)
        return self.semantic_probs(fw, ctx), strong

    def semantic_probs(self, fw: Forward, ctx: StepContext) -> torch.Tensor:
        """Softmax of the weak view's cosine similarities to the prototypes (no gradient)."""
        protos = queue_prototypes(ctx.state, QUEUE)
        with torch.no_grad():
            logits = semantic_logits(fw.weak(fw.feats).float(), protos, self.cfg.proto_temp)
            return F.softmax(logits, dim=1)

    def pseudo_label(
        self, probs: torch.Tensor, fw: Forward, batch: Batch, ctx: StepContext
    ) -> PseudoTargets:
        """After pre-training: the linear probabilities blended with the semantic ones."""
        if self.active(ctx):
            q = self.semantic_probs(fw, ctx)
            c = self.cfg
            if c.dist_aware:
                dist = ctx.state.get(PL_DIST, torch.ones(ctx.num_classes, device=probs.device))
                weights = blend_weights(dist, c.dist_temp)
            else:
                weights = torch.full((ctx.num_classes,), c.interp_alpha)
            probs = blend(probs, q, weights)
        labels, mask = fixmatch_mask(probs, self.cfg.threshold)
        return PseudoTargets(labels, mask, probs)

    def extra(
        self, fw: Forward, targets: PseudoTargets, batch: Batch, ctx: StepContext
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """The semantic alignment loss: CE of the strong view's similarities to ``q``."""
        if not self.active(ctx) or self.cfg.lambda_align == 0:
            return None, {}
        q, strong = self.semantic(fw, ctx)
        align = -(q * F.log_softmax(strong, dim=1)).sum(1).mean()
        return self.cfg.lambda_align * align, {"align": float(align.detach())}

    def observe(self, fw: Forward, targets: PseudoTargets, batch: Batch, ctx: StepContext) -> None:
        """Count the final pseudo labels; every ``dist_period`` steps they become pl_dist."""
        counts = torch.bincount(targets.labels, minlength=ctx.num_classes).float()
        ctx.state[PL_ACC] = ctx.state.get(PL_ACC, torch.zeros_like(counts)) + counts
        if (ctx.step + 1) % self.cfg.dist_period == 0:
            acc = ctx.state[PL_ACC]
            ctx.state[PL_DIST] = acc / acc.sum().clamp_min(1.0)
            ctx.state[PL_ACC] = torch.zeros_like(acc)

    def plan(self) -> list[Step]:
        """FixMatch's step with a constant learning rate and the code's EMA warm-up."""
        c = self.cfg
        (train,) = super().plan()
        decay = EmaDecay(final=c.ema_decay, warm_cap=True)
        schedule = "constant" if c.constant_lr else train.schedule
        return [dataclasses.replace(train, ema_decay=decay, schedule=schedule)]
