"""Alternate sampling for semi-supervised long-tailed recognition (the benchmark's paper).

Paper: "Semi-supervised Long-tailed Recognition using Alternate Sampling" (ICLR 2022
submission), Section 3 and Appendix A. Initialisation is Decoupling on D (Kang et al. 2020):
f and g' trained with random sampling, then g trained class-balanced on frozen f; both heads
are kept (``random`` = g', ``balanced`` = g). Then N loops of three stages:

1. pseudo-label all of U with f and g;
2. train f and g' on D ∪ U' with random sampling, loss CE + lambda * KL temporal consistency
   (eq. 2): per sample, KL(p^{e-1} || p^e) between its g' probabilities of the previous and
   this epoch, kept in a |D ∪ U| x C memory in ``ctx.state`` (checkpointed with the run);
3. fine-tune g alone, class-balanced, on D only, f frozen (no re-initialisation: the paper
   "updates" g and says Salsa's re-initialisation is not needed).

The first epoch of a loop has no previous-epoch probabilities; ``first_epoch_target`` chooses
(default ``carry``): f and g' do not change between loop k's last stage-2 epoch and loop k+1's
first (stages 1 and 3 leave them untouched), so the stored probabilities *are* epoch e-1 in the
paper's sense; in loop 1 none exist for U and the term is skipped there, as Temporal Ensembling
(Laine & Aila 2017, the paper's source for the term) starts its consistency weight at zero.
``uniform`` (the target of a public implementation at every loop start) pulls the first epoch
towards uniform predictions, a regulariser the paper does not describe; ``skip`` drops the term
in every loop's first epoch. Test accuracy after initialisation and after every loop, and
pseudo-label accuracy on U per loop (per many/medium/few), are recorded as diagnostics only.
Table 2 ablations are config fields (``stage2_sampling``, ``stage3_sampling``,
``classifier_pool``, ``embed_uses_unlabeled``).

``recipe``: ``paper`` (default) follows the paper's text as above; ``released`` follows the
authors' code (github BoLiu-SVCL/SSLT, alternate.py / init_train.py): one classifier g trained
in stage 2 (no separate g') and stage 3; U labelled through the training augmentation (their
``ext`` loader uses the training transform); KL target reset to uniform at every loop start;
stage 2 SGD lr 0.01 Nesterov, x0.1 at 80% (epoch 40 of 50); stage 3 lr 0.001 constant for 20
epochs on augmented images through f in eval mode; init classifier 20 epochs with f's BN in
eval mode. Each difference is its own field (``RECIPES``; docs/fidelity.md lists them with
the reference lines), and a profile's or ``--set`` value wins over the recipe's.

Profiles: ``paper`` 200 init epochs + 10 classifier epochs, 5 loops x (40 stage-2 epochs + 10
classifier epochs), SGD lr 0.1 cosine per stage, momentum 0.9, wd 5e-4, lambda 1.
``quick``: the same init as ``decoupling``'s quick profile (30 + 10 epochs), then 2 loops x 8
stage-2 epochs (the effect grows with stage-2 epochs per loop at CPU scale). On cifar10-sslt
(imbalance 100: 2,063 labeled + 10,315 unlabeled, ResNet-20) that is 62k + 198k training
images plus ~75k inference images (pseudo-labels, evaluations): about 11 min on 2 CPU cores at
400 img/s (10-13 min at 350-450); seconds on digits-sslt.
Memory: two |D ∪ U| x C float32 buffers (fine for CIFAR/ImageNet-SSLT; too large for
iNaturalist-SSLT).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..registry import register_method
from ..train.losses import kl_consistency
from ..train.stages import Batch, Call, Evaluate, PseudoLabel, Step, StepContext, Train, TrainHead
from ._alternate_config import INIT_QUICK, RECIPES, AlternateConfig, Sampling
from .base import Method
from .decoupling import decoupling_init

__all__ = ["INIT_QUICK", "RECIPES", "Alternate", "AlternateConfig", "Sampling", "alternate_loops"]


def alternate_loops(
    method: Method,
    loops: int,
    loop_epochs: int,
    loss: Callable[[Batch, StepContext], Any],
    *,
    stage2_sampling: str = "random",
    stage3_sampling: str = "class_balanced",
    classifier_pool: str = "labeled",
    embed_uses_unlabeled: bool = True,
    classifier_reset: bool = False,
    loop_start: Callable[[StepContext], None] | None = None,
    on_epoch_end: Callable[[StepContext], None] | None = None,
    stage2_head: str = "random",
    pseudo_view: str = "none",
    stage2_kwargs: dict[str, Any] | None = None,
    stage3_kwargs: dict[str, Any] | None = None,
) -> list[Step]:
    """The steps after a Decoupling initialisation: ``loops`` x (pseudo-label, f+g', g).

    Shared by ``alternate`` and ``pseudo-label+decoupling`` (one loop, CE only). Adds a test
    evaluation of f and g after the initialisation and after every loop, and a final
    pseudo-labelling of U into ``state["pseudo_final"]`` (diagnostics only, never trained on).
    ``stage2_head`` is the head trained with f (``balanced``: one classifier in both stages);
    ``pseudo_view`` the view of U that stage 1 labels;
    ``stage2_kwargs``/``stage3_kwargs`` replace the method's ``train_kwargs()``/
    ``head_kwargs()`` (per-stage optimiser settings).
    """
    embed_kw = method.train_kwargs() if stage2_kwargs is None else stage2_kwargs
    head_kw = method.head_kwargs() if stage3_kwargs is None else stage3_kwargs
    steps: list[Step] = [Evaluate("init/eval", "balanced")]
    for k in range(1, loops + 1):
        steps.append(PseudoLabel(f"loop{k}/pseudo", "balanced", view=pseudo_view))
        if loop_start is not None:
            steps.append(Call(f"loop{k}/start", loop_start))
        steps += [
            Train(
                f"loop{k}/embed",
                loop_epochs,
                loss,
                params=("embed", f"heads.{stage2_head}"),
                pool="labeled+pseudo" if embed_uses_unlabeled else "labeled",
                sampling=stage2_sampling,
                on_epoch_end=on_epoch_end,
                **embed_kw,
            ),
            TrainHead(
                f"loop{k}/classifier",
                "balanced",
                pool=classifier_pool,
                sampling=stage3_sampling,
                reset=classifier_reset,
                **head_kw,
            ),
            Evaluate(f"loop{k}/eval", "balanced"),
        ]
    steps.append(PseudoLabel("final/pseudo", "balanced", key="pseudo_final"))
    return steps


@register_method(
    "alternate",
    summary="the paper: Decoupling init, then loops of pseudo-label / f+g' with KL consistency "
    "on D ∪ U' / class-balanced g on D",
)
class Alternate(Method):
    """Alternate sampling: random-sampled f and g' on D ∪ U', class-balanced g on D."""

    Config = AlternateConfig
    heads = {"random": "linear", "balanced": "linear"}
    eval_head = "balanced"

    def plan(self) -> list[Step]:
        """Decoupling initialisation, then ``loops`` alternate-learning loops."""
        c = self.cfg
        return decoupling_init(self, epochs=c.init_head_epochs) + alternate_loops(
            self,
            c.loops,
            c.loop_epochs,
            self.semi_loss,
            stage2_sampling=c.stage2_sampling,
            stage3_sampling=c.stage3_sampling,
            classifier_pool=c.classifier_pool,
            embed_uses_unlabeled=c.embed_uses_unlabeled,
            classifier_reset=c.classifier_reset,
            loop_start=self.loop_start,
            on_epoch_end=self.roll_epoch,
            stage2_head=c.stage2_head,
            pseudo_view=c.pseudo_label_view,
            stage2_kwargs={
                **self.train_kwargs(),
                "lr": c.stage2_lr,
                "schedule": c.stage2_schedule,
                "milestones": tuple(c.stage2_milestones),
                "step_gamma": c.stage2_gamma,
                "nesterov": c.stage2_nesterov,
            },
            stage3_kwargs={
                **self.head_kwargs(),
                "epochs": c.stage3_epochs,
                "lr": c.stage3_lr,
                "schedule": c.stage3_schedule,
                "features": c.stage3_features,
                "bn_mode": c.stage3_bn,
            },
        )

    def loop_start(self, ctx: StepContext) -> None:
        """Create the probability memory once; set the first epoch's KL target of a loop."""
        s, n, c = ctx.state, ctx.num_labeled + ctx.num_unlabeled, ctx.num_classes
        if "tc_prev" not in s:
            s["tc_prev"] = torch.zeros(n, c, device=ctx.device)
            s["tc_cur"] = torch.zeros(n, c, device=ctx.device)
            s["tc_has_prev"] = torch.zeros(n, dtype=torch.bool, device=ctx.device)
            s["tc_seen"] = torch.zeros(n, dtype=torch.bool, device=ctx.device)
        if self.cfg.first_epoch_target == "uniform":
            s["tc_prev"].fill_(1.0 / c)
            s["tc_has_prev"].fill_(True)
        elif self.cfg.first_epoch_target == "skip":
            s["tc_has_prev"].fill_(False)
        s["tc_seen"].fill_(False)

    @staticmethod
    def roll_epoch(ctx: StepContext) -> None:
        """End of a stage-2 epoch: this epoch's probabilities become the previous epoch's."""
        s = ctx.state
        seen = s["tc_seen"]
        s["tc_prev"][seen] = s["tc_cur"][seen]
        s["tc_has_prev"] |= seen
        seen.fill_(False)

    def semi_loss(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, Any]]:
        """Eq. 3: CE of the stage-2 head on D ∪ U' + lambda * KL(previous || this epoch).

        The head is g' (paper) or g (released). The released code's soft cross-entropy to the
        previous predictions differs from this KL by the target's entropy: same gradients.
        """
        logits = ctx.model(batch.x, self.cfg.stage2_head)
        ce = F.cross_entropy(logits, batch.y)
        s, idx = ctx.state, batch.idx
        kl = kl_consistency(logits, s["tc_prev"][idx], s["tc_has_prev"][idx])
        with torch.no_grad():
            s["tc_cur"][idx] = F.softmax(logits.detach().float(), dim=1)
            s["tc_seen"][idx] = True
        return ce + self.cfg.kl_weight * kl, {"ce": ce.detach(), "kl": kl.detach()}
