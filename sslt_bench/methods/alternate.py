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
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from ..config import in_range
from ..losses import kl_consistency
from ..registry import register_method
from ..stages import Batch, Call, Evaluate, PseudoLabel, Step, StepContext, Train, TrainHead
from .base import BaseConfig, Method
from .decoupling import Decoupling, DecouplingConfig, decoupling_init

#: The initialisation's quick settings are decoupling's, so alternate vs decoupling is fair.
INIT_QUICK: dict[str, Any] = dict(Decoupling.Config.PROFILES.get("quick", {}))

Sampling = Literal["random", "class_balanced"]


@dataclass
class AlternateConfig(DecouplingConfig):
    """Alternate-sampling settings (defaults: paper Appendix A).

    Attributes:
        loops: alternate-learning loops N.
        loop_epochs: stage-2 (f and g' on D ∪ U') epochs per loop.
        kl_weight: lambda of the KL temporal-consistency term (eq. 3).
        first_epoch_target: KL target in a loop's first stage-2 epoch: ``carry`` (the previous
            loop's last-epoch probabilities; term skipped in loop 1), ``uniform`` or ``skip``.
        stage2_sampling: sampling of stage 2 (``class_balanced`` balances on pseudo labels).
        stage3_sampling: sampling of stage 3 (classifier g).
        classifier_pool: stage-3 data: ``labeled`` (D, the paper) or ``labeled+pseudo``.
        embed_uses_unlabeled: train f and g' on D ∪ U' (True, the paper) or on D only.
        classifier_reset: re-initialise g before each stage 3 (paper: no).
    """

    loops: int = in_range(5, "[1, inf)")
    loop_epochs: int = in_range(40, "[1, inf)")
    kl_weight: float = in_range(1.0, "[0, inf)")
    first_epoch_target: Literal["carry", "uniform", "skip"] = "carry"
    stage2_sampling: Sampling = "random"
    stage3_sampling: Sampling = "class_balanced"
    classifier_pool: Literal["labeled", "labeled+pseudo"] = "labeled"
    embed_uses_unlabeled: bool = True
    classifier_reset: bool = False

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {**INIT_QUICK, "loops": 2, "loop_epochs": 8}
    }
    SMOKE: ClassVar[dict[str, Any]] = {**BaseConfig.SMOKE, "loops": 2, "loop_epochs": 1}


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
) -> list[Step]:
    """The steps after a Decoupling initialisation: ``loops`` x (pseudo-label, f+g', g).

    Shared by ``alternate`` and ``pseudo-label+decoupling`` (one loop, CE only). Adds a test
    evaluation of f and g after the initialisation and after every loop, and a final
    pseudo-labelling of U into ``state["pseudo_final"]`` (diagnostics only, never trained on).
    """
    steps: list[Step] = [Evaluate("init/eval", "balanced")]
    for k in range(1, loops + 1):
        steps.append(PseudoLabel(f"loop{k}/pseudo", "balanced"))
        if loop_start is not None:
            steps.append(Call(f"loop{k}/start", loop_start))
        steps += [
            Train(
                f"loop{k}/embed",
                loop_epochs,
                loss,
                params=("embed", "heads.random"),
                pool="labeled+pseudo" if embed_uses_unlabeled else "labeled",
                sampling=stage2_sampling,
                on_epoch_end=on_epoch_end,
                **method.train_kwargs(),
            ),
            TrainHead(
                f"loop{k}/classifier",
                "balanced",
                pool=classifier_pool,
                sampling=stage3_sampling,
                reset=classifier_reset,
                **method.head_kwargs(),
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
        return decoupling_init(self) + alternate_loops(
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
        """Eq. 3: CE of g' on D ∪ U' + lambda * KL(previous-epoch || this-epoch) of g'."""
        logits = ctx.model(batch.x, "random")
        ce = F.cross_entropy(logits, batch.y)
        s, idx = ctx.state, batch.idx
        kl = kl_consistency(logits, s["tc_prev"][idx], s["tc_has_prev"][idx])
        with torch.no_grad():
            s["tc_cur"][idx] = F.softmax(logits.detach().float(), dim=1)
            s["tc_seen"][idx] = True
        return ce + self.cfg.kl_weight * kl, {"ce": ce.detach(), "kl": kl.detach()}
