"""Salsa (Rebuffi et al. 2020, "Semi-supervised learning with scarce annotations").

Facts from the paper and the authors' public code (``srebuffi/semisup_scarse``):

1. Self-supervised initialisation: rotation prediction (RotNet) on D ∪ U. Every image of a
   batch is shown at 0/90/180/270 degrees (``torch.rot90``) and a 4-way ``rotation`` head
   predicts which; the weights of f are then snapshotted (in ``ctx.state``, so resumable).
2. Supervised phase, loop 1: a fresh classifier g and the upper half of f are fine-tuned on D
   (CE, lr 0.005 constant), the lower half of f frozen at the self-supervised weights.
3. Each loop k: pseudo-label U with f and g; then the *re-initialisation step*: f is reset to
   the self-supervised snapshot (all layers, BN statistics included) and g to fresh random
   weights; then the semi-supervised phase trains the upper half of f and g on D ∪ U' (true
   labels on D) with self-distillation: target = 0.5 one-hot(label) + 0.5 the item's softmax
   from the previous epoch (uniform in a loop's first epoch); minimised as KL(target || p),
   which has the CE's gradient. Only labels flow between the phases.
4. Supervised phase, loops k >= 2: the classifier g alone is fine-tuned on D (lr 0.001, BN
   frozen), then back to step 3. The model after the last semi-supervised phase is evaluated.

"Lower half of f": the leading ``freeze_fraction`` of f's parameterised layers in module order
(for ResNet-18 exactly the stem and the first two of four stages, the original's choice).
Simplifications: the loop-k>=2 classifier fine-tuning runs on cached features of un-augmented
images (the shared TrainHead step); every loop trains on all of D ∪ U' (the original uses
rotating two-thirds subsets for its first 60 loops); schedules are cosine per phase (the
alternate-sampling paper's Appendix A; the original decays in steps).

Profiles. ``paper`` (the original's CIFAR-10 settings): RotNet 200 epochs (lr 0.1, Nesterov,
batch 128 images x 4 rotations), 100 loops; loop-1 fine-tuning 100 epochs; 10 semi-supervised
epochs per loop (lr 0.01, Nesterov); 100 classifier epochs (lr 0.001); momentum 0.9, wd 5e-4.
``quick``: RotNet 1 epoch (4 x |D ∪ U| = ~49k images on cifar10-sslt), 10 loop-1 fine-tuning
epochs (~21k), 2 loops x 3 semi-supervised epochs (~74k), 10 classifier epochs and per-loop
pseudo-labelling + test diagnostics (forward only): ~145k image-passes, about 10 min for
ResNet-20 on cifar10-sslt (imbalance 100) on one CPU thread at ~230 img/s. Two departures
from the original, both because one RotNet epoch is not a pre-trained network: nothing is
frozen (``freeze_fraction`` 0; the original keeps the lower half of f at its RotNet weights)
and the fine-tuning learning rates are x10 (``refine_lr`` = ``semi_lr`` = 0.05). With the
original's values the quick run collapsed to the head classes (cifar10-sslt seed 0: 11.6%
overall, the loop-1 model pseudo-labelled no medium or few-shot image correctly after 160
steps at lr 0.005 on frozen one-epoch RotNet features).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..config import in_range
from ..registry import register_method
from ..train.losses import kl_consistency
from ..train.stages import (
    Batch,
    Call,
    Evaluate,
    PseudoLabel,
    Step,
    StepContext,
    Train,
    TrainHead,
    Unlabeled,
)
from .base import BaseConfig, Method

SNAP = "salsa_ssl/"  # ctx.state prefix of the self-supervised snapshot of f


@dataclass
class SalsaConfig(BaseConfig):
    """Salsa settings; ``epochs``/``lr`` are the RotNet stage's, ``head_*`` loop k >= 2's g.

    Attributes:
        refine_epochs: loop-1 supervised fine-tuning epochs (upper f and g on D).
        refine_lr: its learning rate (constant).
        loops: alternating loops (pseudo-label, re-initialise, semi-supervised training).
        semi_epochs: semi-supervised epochs per loop.
        semi_lr: their initial learning rate.
        head_lr: learning rate of the loop k >= 2 classifier fine-tuning.
        distill: weight of the one-hot label in the target (the rest: previous-epoch softmax).
        freeze_fraction: leading fraction of f's layers kept at the self-supervised weights.
    """

    epochs: int = 200
    head_epochs: int = 100
    refine_epochs: int = in_range(100, "[1, inf)")
    refine_lr: float = in_range(0.005, "(0, inf)")
    loops: int = in_range(100, "[1, inf)")
    semi_epochs: int = in_range(10, "[1, inf)")
    semi_lr: float = in_range(0.01, "(0, inf)")
    head_lr: float = in_range(0.001, "(0, inf)")
    distill: float = in_range(0.5, "[0, 1]")
    freeze_fraction: float = in_range(0.5, "[0, 1]")

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {
            "epochs": 1,
            "refine_epochs": 10,
            "refine_lr": 0.05,
            "loops": 2,
            "semi_epochs": 3,
            "semi_lr": 0.05,
            "head_epochs": 10,
            "freeze_fraction": 0.0,
        }
    }
    SMOKE: ClassVar[dict[str, Any]] = {
        **BaseConfig.SMOKE,
        "refine_epochs": 1,
        "loops": 2,
        "semi_epochs": 1,
    }


def rotate_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The four rotations of a square batch: images rotated by k * 90 degrees, labels k."""
    rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4, device=x.device).repeat_interleave(len(x))
    return rotated, labels


def frozen_params(embed: nn.Module, fraction: float) -> list[nn.Parameter]:
    """Parameters of the leading ``fraction`` of ``embed``'s parameterised layers."""
    layers = [m for m in embed.modules() if any(True for _ in m.parameters(recurse=False))]
    return [p for m in layers[: round(fraction * len(layers))] for p in m.parameters(False)]


@register_method(
    "salsa",
    summary="Rebuffi et al. 2020: RotNet init on D ∪ U, then loops of supervised / pseudo-label "
    "+ reset to the self-supervised weights + self-distilled training on D ∪ U'",
)
class Salsa(Method):
    """Rotation self-supervision, then alternating supervised and semi-supervised phases."""

    Config = SalsaConfig
    extra_heads = {"rotation": ("linear", 4)}

    def rotation_loss(self, batch: Batch, ctx: StepContext) -> torch.Tensor:
        """CE of the 4-way rotation head on all rotations of the D ∪ U batch (labels unused)."""
        x, y = rotate_batch(batch.u["weak"])
        return F.cross_entropy(ctx.model(x, "rotation"), y)

    def frozen(self, model: nn.Module) -> list[nn.Parameter]:
        """The lower layers of f kept at their self-supervised weights (``Train.frozen``)."""
        return frozen_params(model.embed, self.cfg.freeze_fraction)

    def refine_loss(self, batch: Batch, ctx: StepContext) -> torch.Tensor:
        """Loop-1 supervised phase: CE on D (the lower layers frozen by the step)."""
        return F.cross_entropy(ctx.model(batch.x, "random"), batch.y)

    def semi_loss(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, Any]]:
        """Self-distillation on D ∪ U': KL(distill * one-hot + (1 - distill) * previous || p)."""
        logits = ctx.model(batch.x, "random")
        prev = ctx.state["salsa_prev"]
        onehot = F.one_hot(batch.y, ctx.num_classes).float()
        target = self.cfg.distill * onehot + (1.0 - self.cfg.distill) * prev[batch.idx]
        loss = kl_consistency(logits, target)
        with torch.no_grad():
            prev[batch.idx] = F.softmax(logits.detach().float(), dim=1)
        return loss, {"ce": float(F.cross_entropy(logits.detach(), batch.y))}

    def snapshot(self, ctx: StepContext) -> None:
        """Keep the self-supervised weights and buffers of f (checkpointed with the run)."""
        for k, v in ctx.model.embed.state_dict().items():
            ctx.state[SNAP + k] = v.detach().clone()

    def reinit(self, ctx: StepContext) -> None:
        """Reset f to the self-supervised snapshot and g to fresh weights; uniform targets."""
        snap = {k[len(SNAP) :]: v for k, v in ctx.state.items() if k.startswith(SNAP)}
        ctx.model.embed.load_state_dict(snap)
        ctx.model.reset_head("random", ctx.generator)
        n = ctx.num_labeled + ctx.num_unlabeled
        c = ctx.num_classes
        ctx.state["salsa_prev"] = torch.full((n, c), 1.0 / c, device=ctx.device)

    def plan(self) -> list[Step]:
        """RotNet on D ∪ U, loop-1 fine-tuning, then ``loops`` x (label, reset, train)."""
        c, info = self.cfg, self.info
        kw = {**self.train_kwargs(), "nesterov": True}
        steps: list[Step] = [
            Train(
                "ssl/rotation",
                c.epochs,
                self.rotation_loss,
                params=("embed", "heads.rotation"),
                unlabeled=Unlabeled(mu=1, views=("weak",), include_labeled=True),
                steps_per_epoch=math.ceil((info.num_labeled + info.num_unlabeled) / c.batch_size),
                **kw,
            ),
            Call("ssl/snapshot", self.snapshot),
            Train(
                "loop1/supervised",
                c.refine_epochs,
                self.refine_loss,
                params=("embed", "heads.random"),
                frozen=self.frozen,
                **{**self.train_kwargs(), "lr": c.refine_lr, "schedule": "constant"},
            ),
        ]
        for k in range(1, c.loops + 1):
            if k > 1:
                steps.append(
                    TrainHead(
                        f"loop{k}/supervised",
                        "random",
                        sampling="random",
                        reset=False,
                        **{**self.head_kwargs(), "lr": c.head_lr},
                    )
                )
            steps += [
                PseudoLabel(f"loop{k}/pseudo", "random"),
                Call(f"loop{k}/reinit", self.reinit),
                Train(
                    f"loop{k}/semi",
                    c.semi_epochs,
                    self.semi_loss,
                    params=("embed", "heads.random"),
                    pool="labeled+pseudo",
                    frozen=self.frozen,
                    **{**kw, "lr": c.semi_lr},
                ),
                Evaluate(f"loop{k}/eval", "random"),
            ]
        return steps
