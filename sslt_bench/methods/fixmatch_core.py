"""The FixMatch family's shared step: one forward pass, a loss split into typed pieces.

``fixmatch`` and every class-imbalanced variant (``fixmatch+darp``, ``fixmatch+abc``,
``fixmatch+saw``, ``acr``, ...) subclass :class:`FixMatchFamily` and override only the pieces
that make them different. No variant re-implements the step. Interface, in call order of
:meth:`FixMatchFamily.loss` (all plain methods; ``fw`` is a :class:`Forward`):

1. :meth:`~FixMatchFamily.forward` ``(batch, ctx) -> Forward``: labeled, weak and every strong
   view in ONE pass through the embedding (BatchNorm sees them together, as in FixMatch's code)
   and the main head; ``fw.logits_of(head)`` gives another head's logits on the same features
   (ABC's auxiliary head, ACR's balanced branch). ``fw.labeled / fw.weak / fw.strong`` slice.
2. :meth:`~FixMatchFamily.supervised` ``(fw, batch, ctx) -> Tensor``: CE on the labeled batch.
3. :meth:`~FixMatchFamily.pseudo_label` ``(probs, fw, batch, ctx) -> PseudoTargets``: from the
   weak view's probabilities (softmax, no gradient) to hard targets and a confidence mask
   (FixMatch: argmax, kept if >= tau). DARP refines, ACR adjusts logits here.
4. :meth:`~FixMatchFamily.unlabeled_weight` ``(targets, ctx) -> Tensor | None``: per-item
   weights of the unlabeled loss (SAW's class weights); ``None`` = 1.
5. :meth:`~FixMatchFamily.unlabeled` ``(fw, targets, batch, ctx) -> Tensor``: the masked CE of
   each strong view to the targets, averaged over the strong views.
6. :meth:`~FixMatchFamily.extra` ``(fw, targets, batch, ctx) -> (Tensor | None, logs)``: extra
   heads' losses (ABC's balanced head, ACR's second branch); ``None`` = none.
7. :meth:`~FixMatchFamily.observe` ``(fw, targets, batch, ctx) -> None``: state updates from
   this batch's predictions (prediction bank, EMA of class priors), in ``ctx.state`` so they
   are checkpointed and resumed.
8. :meth:`~FixMatchFamily.epoch_end` ``-> Callable | None``: a function run after every epoch
   (SAW's weights, ACR's adjustment strength); ``None`` for FixMatch.

Total loss: ``supervised + lambda_u * unlabeled (+ extra)``; logs ``sup``, ``unsup``,
``mask_rate`` and the extra's. Class attributes: ``strong_views`` (the names of the strong
views, e.g. ``("strong", "strong:2")`` for the DARP/ABC/ACR codes' two strong views),
``include_labeled`` (unlabeled batches from D ∪ U as FixMatch's code, or from U only),
``main_head``. The config is :class:`~sslt_bench.methods.fixmatch.FixMatchConfig` or a subclass.
Shared mechanisms live in :mod:`sslt_bench.train.ssl_parts` (logit adjustment, prediction bank,
Bernoulli masks, masked CE) and :mod:`sslt_bench.train.losses`; U's hidden labels are never read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from ..train.losses import fixmatch_mask
from ..train.ssl_parts import masked_ce
from ..train.stages import Batch, PseudoRule, Step, StepContext, Train, Unlabeled
from .base import Method

#: Config fields a variant may add that the Train step takes as they are (DARP-code Adam).
OPTIMISER_FIELDS = ("optimizer", "schedule", "decoupled_decay")


@dataclass
class Forward:
    """One batch's forward pass: features and main-head logits of [labeled, weak, strong...]."""

    model: torch.nn.Module
    feats: torch.Tensor
    logits: torch.Tensor
    n: int
    m: int
    strong_count: int

    def logits_of(self, head: str) -> torch.Tensor:
        """Logits of another head on the same features (all rows)."""
        return self.model.heads[head](self.feats)

    def labeled(self, t: torch.Tensor | None = None) -> torch.Tensor:
        """Rows of the labeled batch (of ``t``, default the main logits)."""
        return (self.logits if t is None else t)[: self.n]

    def weak(self, t: torch.Tensor | None = None) -> torch.Tensor:
        """Rows of the weak view."""
        return (self.logits if t is None else t)[self.n : self.n + self.m]

    def strong(self, t: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Rows of each strong view, in ``strong_views`` order."""
        t = self.logits if t is None else t
        start = self.n + self.m
        return [t[start + i * self.m : start + (i + 1) * self.m] for i in range(self.strong_count)]


@dataclass
class PseudoTargets:
    """What the pseudo-label rule returns.

    Attributes:
        labels: [M] hard targets.
        mask: [M] float mask (1 = used).
        probs: [M, C] the weak view's probabilities the rule started from.
    """

    labels: torch.Tensor
    mask: torch.Tensor
    probs: torch.Tensor


class FixMatchFamily(Method):
    """FixMatch's step with overridable pieces (see the module docstring for the interface)."""

    eval_ema = True
    strong_views: ClassVar[tuple[str, ...]] = ("strong",)
    include_labeled: ClassVar[bool] = True
    main_head: ClassVar[str] = "random"

    def forward(self, batch: Batch, ctx: StepContext) -> Forward:
        """Labeled, weak and strong views through the embedding and main head in one pass."""
        views = [batch.u["weak"], *(batch.u[v] for v in self.strong_views)]
        feats = ctx.model.embed(torch.cat([batch.x, *views]))
        logits = ctx.model.heads[self.main_head](feats)
        return Forward(ctx.model, feats, logits, len(batch.x), len(views[0]), len(views) - 1)

    def supervised(self, fw: Forward, batch: Batch, ctx: StepContext) -> torch.Tensor:
        """Cross-entropy of the main head on the labeled batch."""
        return F.cross_entropy(fw.labeled(), batch.y)

    def pseudo_label(
        self, probs: torch.Tensor, fw: Forward, batch: Batch, ctx: StepContext
    ) -> PseudoTargets:
        """FixMatch's rule: argmax of the weak view, kept if its probability is >= tau."""
        labels, mask = fixmatch_mask(probs, self.cfg.threshold)
        return PseudoTargets(labels, mask, probs)

    def unlabeled_weight(self, targets: PseudoTargets, ctx: StepContext) -> torch.Tensor | None:
        """Per-item weights of the unlabeled loss; ``None`` = all ones (FixMatch)."""
        return None

    def unlabeled(
        self, fw: Forward, targets: PseudoTargets, batch: Batch, ctx: StepContext
    ) -> torch.Tensor:
        """Masked CE of every strong view to the targets, averaged over the strong views."""
        weight = self.unlabeled_weight(targets, ctx)
        losses = [masked_ce(s, targets.labels, targets.mask, weight) for s in fw.strong()]
        return losses[0] if len(losses) == 1 else sum(losses) / len(losses)

    def extra(
        self, fw: Forward, targets: PseudoTargets, batch: Batch, ctx: StepContext
    ) -> tuple[torch.Tensor | None, dict[str, float]]:
        """Losses of extra heads and their logs; FixMatch has none."""
        return None, {}

    def observe(self, fw: Forward, targets: PseudoTargets, batch: Batch, ctx: StepContext) -> None:
        """Update ``ctx.state`` from this batch's predictions; FixMatch keeps no state."""

    def pseudo_rule(self, step: Train) -> PseudoRule | None:
        """For diagnostics: the weak view's pseudo labels by this method's own rule.

        FixMatch's rule (argmax, kept if >= tau) is the plain :class:`PseudoRule`; a variant
        that overrides :meth:`pseudo_label` (DARP, ACR, DASO, SimPro, CReST+) is scored by
        that override, through :meth:`diagnostic_labels`.
        """
        if step.unlabeled is None:
            return None
        own = type(self).pseudo_label is not FixMatchFamily.pseudo_label
        return PseudoRule(
            self.main_head,
            view="weak",
            threshold=self.cfg.threshold,
            labels=self.diagnostic_labels if own else None,
        )

    def diagnostic_labels(
        self, feats: torch.Tensor, u_ids: torch.Tensor, ctx: StepContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`pseudo_label` on U's weak-view features as if they were one batch.

        Returns hard labels (the argmax of soft targets) and the kept mask. The runner restores
        ``ctx.state`` afterwards, so a rule that also updates state (DARP's bank) is safe.
        """
        logits = ctx.model.heads[self.main_head](feats)
        fw = Forward(ctx.model, feats, logits, 0, len(feats), 0)
        empty = feats.new_zeros((0,), dtype=torch.long)
        batch = Batch(feats[:0], empty, empty, u={}, u_idx=u_ids, num_labeled=ctx.num_labeled)
        probs = F.softmax(logits.float(), dim=1)
        targets = self.pseudo_label(probs, fw, batch, ctx)
        labels = targets.labels.argmax(1) if targets.labels.dim() == 2 else targets.labels
        return labels, targets.mask > 0

    def epoch_end(self) -> Callable[[StepContext], None] | None:
        """A function to run after every epoch, or ``None`` (FixMatch)."""
        return None

    def loss(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        """``supervised + lambda_u * unlabeled (+ extra)`` for one batch, with its logs."""
        weak = batch.u.get("weak")
        if weak is None or len(weak) == 0:  # no unlabeled data at all
            sup = F.cross_entropy(ctx.model(batch.x, self.main_head), batch.y)
            return sup, {"sup": float(sup.detach()), "unsup": 0.0, "mask_rate": 0.0}
        fw = self.forward(batch, ctx)
        sup = self.supervised(fw, batch, ctx)
        probs = F.softmax(fw.weak().detach().float(), dim=1)
        targets = self.pseudo_label(probs, fw, batch, ctx)
        unsup = self.unlabeled(fw, targets, batch, ctx)
        extra, extra_logs = self.extra(fw, targets, batch, ctx)
        self.observe(fw, targets, batch, ctx)
        logs = {
            "sup": float(sup.detach()),
            "unsup": float(unsup.detach()),
            "mask_rate": float(targets.mask.mean()),
            **extra_logs,
        }
        total = sup + self.cfg.lambda_u * unsup
        return (total if extra is None else total + extra), logs

    def plan(self) -> list[Step]:
        """One training stage: D + mu x (D ∪ U or U) batches in a weak and the strong views."""
        c = self.cfg
        hook = self.epoch_end()
        return [
            Train(
                "train",
                c.epochs,
                self.loss,
                unlabeled=Unlabeled(
                    mu=c.mu,
                    views=("weak", *self.strong_views),
                    include_labeled=self.include_labeled,
                ),
                nesterov=c.nesterov,
                steps_per_epoch=c.steps_per_epoch,
                ema_decay=c.ema_decay,
                no_decay=c.no_decay,
                **{k: getattr(c, k) for k in OPTIMISER_FIELDS if hasattr(c, k)},
                **({"on_epoch_end": hook} if hook is not None else {}),
                **self.train_kwargs(),
            )
        ]

    def state_size(self, ctx: StepContext) -> int:
        """Rows of a per-item bank: every item of D ∪ U (ids are positions in D ∪ U)."""
        return ctx.num_labeled + ctx.num_unlabeled


def unlabeled_only(batch: Batch, ctx: StepContext) -> torch.Tensor:
    """Mask of the unlabeled batch's items that belong to U (not D), by item id only."""
    assert batch.u_idx is not None
    return batch.u_idx >= ctx.num_labeled


__all__ = ["FixMatchFamily", "Forward", "PseudoTargets", "unlabeled_only"]
