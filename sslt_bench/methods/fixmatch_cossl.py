"""CoSSL on FixMatch (Fan et al., CVPR 2022): co-learning of representation and classifier.

Paper: "CoSSL: Co-Learning of Representation and Classifier for Imbalanced Semi-Supervised
Learning"; official code YUE-FAN/CoSSL (train_cifar_fix.py, train_cifar_fix_cossl.py,
utils/tfe_init.py, run_cifar10.sh); cross-checked with USB's ``imb_algorithms/cossl``.

What is new over FixMatch (the rest is :mod:`~sslt_bench.methods.fixmatch_core`). Three
phases, as the code's two scripts:

1. ``pretrain``: FixMatch (two strong views, unlabeled batches from U).
2. ``tfe/warmup``: a new linear classifier, the TFE head, trains alone on the EMA model's
   features with tail-class feature enhancement (below); then the EMA copies it.
3. ``colearn``: every step (a) trains the TFE head on a class-balanced labeled batch (strong
   view) through the EMA embedding with TFE; (b) FixMatch trains the network with pseudo labels
   from the EMA embedding of the weak view and the current TFE head (argmax, >= tau).
   The evaluated classifier is the EMA embedding with the EMA of the TFE head.

Tail-class feature enhancement (:func:`tfe_mix`): a labeled feature of class k is, with
probability ``(n_max - n_k) / n_max``, replaced by ``lam x + (1 - lam) u`` with ``lam ~
U(max_lam, 1)`` (0.6) and u the feature of an unlabeled image; its label stays k.

Profiles. ``paper`` (run_cifar10.sh, n1 1500, gamma 100): FixMatch 400 x 500 steps (the
checkpoint CoSSL resumes from), TFE warm-up 10 x 500 steps, co-learning 100 x 500 steps, B 64,
mu 1, tau 0.95, EMA 0.999, max_lam 0.6, Adam lr 0.002 constant as the code: pre-training with
the per-step decay of 0.02 x lr (train_cifar_fix.py ``WeightEMA``), co-learning with it as
Adam's L2 term instead (train_cifar_fix_cossl.py: ``WeightEMA(wd=False)``, ``weight_decay =
0.02 * lr``); one optimiser for network and TFE head (the code: a second Adam for the head, wd
5e-4). ``quick``: fixmatch's quick profile (B 32, mu 2, EMA 0.99, 100 steps per epoch, SGD
0.03 cosine as fixmatch) as 17 pretrain + 1 TFE warm-up + 4 co-learning epochs: the network
trains fixmatch's 21 x 100 steps, split about as the paper's 400 + 100 epochs.
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
from ..train.stages import (
    Batch,
    Call,
    LabeledViews,
    PseudoRule,
    Step,
    StepContext,
    Train,
    Unlabeled,
)
from .fixmatch import FIXMATCH_SGD, QUICK_EPOCHS, DarpCodeConfig, FixMatchConfig
from .fixmatch_core import FixMatchFamily, Forward, PseudoTargets

PHASE, TFE = "cossl:colearn", "tfe"


@dataclass
class CosslConfig(DarpCodeConfig):
    """CoSSL settings (defaults: the official CIFAR-10-LT runs).

    Attributes:
        pretrain_epochs: epochs of FixMatch before co-learning.
        tfe_warmup_epochs: epochs of the TFE head's warm-up on frozen EMA features.
        epochs: epochs of co-learning.
        max_lam: lower end of the TFE mixing weight lam ~ U(max_lam, 1).
    """

    pretrain_epochs: int = in_range(400, "[1, inf)")
    tfe_warmup_epochs: int = in_range(10, "[0, inf)")
    epochs: int = 100
    max_lam: float = in_range(0.6, "[0, 1]")

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {
            **FixMatchConfig.PROFILES["quick"],
            **FIXMATCH_SGD,
            "pretrain_epochs": QUICK_EPOCHS - round(QUICK_EPOCHS / 5),
            "tfe_warmup_epochs": 1,
            "epochs": round(QUICK_EPOCHS / 5),
        }
    }
    SMOKE: ClassVar[dict[str, Any]] = {
        **FixMatchConfig.SMOKE,
        "pretrain_epochs": 1,
        "tfe_warmup_epochs": 1,
    }


def tfe_probabilities(labeled_counts: torch.Tensor) -> torch.Tensor:
    """Per-class probability that TFE enhances a labeled feature: ``(n_max - n_k) / n_max``."""
    n = labeled_counts.double()
    return ((n.max() - n) / n.max()).float()


def tfe_mix(
    feats: torch.Tensor,
    labels: torch.Tensor,
    partners: torch.Tensor,
    probs: torch.Tensor,
    max_lam: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tail-class feature enhancement of labeled features ``feats`` with ``partners``.

    Item i is enhanced with probability ``probs[labels[i]]``: ``lam x_i + (1 - lam) u_i``,
    ``lam ~ U(max_lam, 1)``, u_i the i-th partner (an unlabeled image's feature); the others
    stay as they are. Draws come from ``gen``. Returns the features and the enhanced mask.
    """
    n = len(feats)
    mixed = torch.rand(n, generator=gen).to(feats.device) < probs.to(feats.device)[labels]
    lam = max_lam + (1.0 - max_lam) * torch.rand(n, generator=gen).to(feats.device)
    lam = torch.where(mixed, lam, torch.ones_like(lam)).unsqueeze(1)
    return lam * feats + (1.0 - lam) * partners[:n], mixed


def ema_features(ctx: StepContext, images: torch.Tensor) -> torch.Tensor:
    """Features of the EMA embedding in eval mode (the code's ``ema_model.eval()``)."""
    net = ctx.ema if ctx.ema is not None else ctx.model
    was = net.training
    net.eval()
    with torch.no_grad():
        feats = net.embed(images).float()
    net.train(was)
    return feats


@register_method(
    "fixmatch+cossl",
    summary="Fan et al. 2022: FixMatch, then co-learning with a TFE classifier (tail features "
    "mixed with unlabeled ones) on EMA features that also pseudo-labels U; TFE head evaluated",
)
class FixMatchCossl(FixMatchFamily):
    """FixMatch pre-training, TFE warm-up, then co-learning with the TFE classifier."""

    Config = CosslConfig
    heads = {"random": "linear", TFE: "linear"}
    eval_head = TFE
    include_labeled = False
    strong_views = ("strong", "strong:2")

    def tfe_loss(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        """CE of the TFE head on TFE-enhanced EMA features of the class-balanced batch."""
        fx = ema_features(ctx, batch.lx["strong"])
        fu = ema_features(ctx, batch.u["strong"][: len(fx)])
        probs = tfe_probabilities(ctx.labeled_counts)
        feats, mixed = tfe_mix(fx, batch.ly, fu, probs, self.cfg.max_lam, ctx.generator)
        loss = F.cross_entropy(ctx.model.heads[TFE](feats), batch.ly)
        return loss, {"tfe": float(loss.detach()), "tfe_mixed": float(mixed.float().mean())}

    def colearning(self, ctx: StepContext) -> bool:
        """Whether the co-learning phase has started."""
        return bool(ctx.state.get(PHASE, torch.tensor(0)))

    def pseudo_label(
        self, probs: torch.Tensor, fw: Forward, batch: Batch, ctx: StepContext
    ) -> PseudoTargets:
        """In co-learning: the TFE head on the EMA embedding of the weak view."""
        if self.colearning(ctx):
            with torch.no_grad():
                logits = ctx.model.heads[TFE](ema_features(ctx, batch.u["weak"]))
            probs = F.softmax(logits.float(), dim=1)
        labels, mask = fixmatch_mask(probs, self.cfg.threshold)
        return PseudoTargets(labels, mask, probs)

    def pseudo_rule(self, step: Train) -> PseudoRule | None:
        """For diagnostics, in co-learning: the TFE head on the EMA embedding's weak view."""
        if step.name != "colearn":
            return super().pseudo_rule(step)

        def tfe_labels(feats: torch.Tensor, u_ids: torch.Tensor, ctx: StepContext):
            probs = F.softmax(ctx.model.heads[TFE](feats).float(), dim=1)
            labels, mask = fixmatch_mask(probs, self.cfg.threshold)
            return labels, mask > 0

        return PseudoRule(
            TFE, ema=True, view="weak", threshold=self.cfg.threshold, labels=tfe_labels
        )

    def extra(
        self, fw: Forward, targets: PseudoTargets, batch: Batch, ctx: StepContext
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """In co-learning, the TFE head's loss (its gradient reaches only the TFE head)."""
        return self.tfe_loss(batch, ctx) if self.colearning(ctx) else (None, {})

    def start_colearning(self, ctx: StepContext) -> None:
        """After the warm-up: the EMA takes the warmed-up TFE head; co-learning begins."""
        if ctx.ema is not None:
            ctx.ema.heads[TFE].load_state_dict(ctx.model.heads[TFE].state_dict())
        ctx.state[PHASE] = torch.tensor(1)

    def plan(self) -> list[Step]:
        """Pre-training, TFE warm-up on frozen EMA features, co-learning."""
        c = self.cfg
        (train,) = super().plan()
        balanced = LabeledViews(("strong",), "class_balanced")
        warmup = Train(
            "tfe/warmup",
            c.tfe_warmup_epochs,
            self.tfe_loss,
            params=(f"heads.{TFE}",),
            unlabeled=Unlabeled(mu=1, views=("strong",)),
            labeled_views=balanced,
            nesterov=c.nesterov,
            steps_per_epoch=c.steps_per_epoch,
            no_decay=c.no_decay,
            optimizer=c.optimizer,
            schedule=c.schedule,
            **self.train_kwargs(),
        )
        # the code's co-learning turns the 0.02 x lr decay into Adam's L2 term (no WeightEMA
        # decay); with SGD (quick) the step keeps the pre-training settings
        colearn_decay = (
            {"weight_decay": c.decoupled_decay, "decoupled_decay": 0.0}
            if c.optimizer == "adam"
            else {}
        )
        return [
            dataclasses.replace(train, name="pretrain", epochs=c.pretrain_epochs),
            *([warmup] if c.tfe_warmup_epochs else []),
            Call("colearn/start", self.start_colearning),
            dataclasses.replace(train, name="colearn", labeled_views=balanced, **colearn_decay),
        ]
