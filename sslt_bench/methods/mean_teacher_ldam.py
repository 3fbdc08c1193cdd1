"""Mean Teacher (Tarvainen & Valpola, NeurIPS 2017) with an LDAM-DRW student.

The student is trained with LDAM-DRW (Cao et al. 2019) on labeled batches of D plus a
consistency cost: the mean squared difference between its softmax on one weak view and the
softmax of an exponential-moving-average teacher on a second, independent weak view, for
unlabeled batches drawn from D ∪ U (Mean Teacher applies consistency to labeled items too).
The cost's weight ramps up as 100 * exp(-5 (1 - t)^2) over the first 26.7% of training
(40k of 150k steps in the original); the teacher's EMA decay is 0.99 during the ramp-up and
0.999 after it (the original's values), capped at 1 - 1/(t + 1) at optimiser step t as in
the authors' PyTorch code (early on the teacher is the plain average of the student so far,
not biased towards the random initialisation). Student and teacher logits are cosine similarities
scaled by LDAM's s = 30 before the softmax. Labeled and unlabeled batches share one student
forward pass (as in the original); the teacher runs in training mode (batch statistics).
The teacher is evaluated.

Profiles: ``paper`` 200 epochs over D with LDAM-DRW's schedule (SGD lr 0.1, momentum 0.9,
wd 2e-4, 5 warm-up epochs, lr x0.01 at 80% and 90%, DRW from 80%), batch 128 labeled + 128
unlabeled (mu = 1: the original's half-labeled batches). ``quick``: batch 64 + 64 unlabeled
for 25 epochs (1 warm-up) = 800 SGD steps, as many as ldam-drw's quick run, so that the DRW
phase (the last fifth, at lr 0.001 then 1e-5) gets as many steps (a first quick profile of 24
epochs at batch 128, 384 steps, gave DRW 16 steps at lr 0.001 and 0% few-shot accuracy; this
one gives 1.6%, so the steps were not the whole story: see the README's methods section), and
EMA decays 0.9 / 0.97 (so the teacher averages a similar share of the far shorter run): about
51k labeled + 102k unlabeled-view images on cifar10-sslt (~2,000 labeled), compute like
~120k training images (teacher passes are forward-only), about 9 min for ResNet-20 on one
CPU thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import in_range
from ..registry import register_method
from ..train.losses import mse_consistency, sigmoid_rampup
from ..train.stages import Batch, EmaDecay, PseudoRule, Step, StepContext, Train, Unlabeled
from .ldam_drw import LDAMDRW, LDAMConfig

STUDENT_VIEW, TEACHER_VIEW = "weak", "weak:teacher"


@dataclass
class MeanTeacherLDAMConfig(LDAMConfig):
    """Mean Teacher + LDAM-DRW settings.

    Attributes:
        mu: unlabeled batch size as a multiple of the labeled batch size.
        consistency: maximum weight of the consistency cost.
        rampup: fraction of training over which the consistency weight ramps up.
        ema_decay: teacher EMA decay after the ramp-up.
        ema_decay_rampup: teacher EMA decay during the ramp-up.
    """

    mu: int = in_range(1, "[1, inf)")
    consistency: float = in_range(100.0, "[0, inf)")
    rampup: float = in_range(40_000 / 150_000, "[0, 1]")
    ema_decay: float = in_range(0.999, "[0, 1)")
    ema_decay_rampup: float = in_range(0.99, "[0, 1)")

    PROFILES = {
        "quick": {
            "batch_size": 64,
            "epochs": 25,
            "warmup_epochs": 1,
            "ema_decay": 0.97,
            "ema_decay_rampup": 0.9,
        }
    }
    SMOKE = {**LDAMConfig.SMOKE}


@register_method(
    "mean-teacher+ldam",
    summary="Tarvainen & Valpola 2017: LDAM-DRW student, softmax-MSE consistency to EMA teacher",
)
class MeanTeacherLDAM(LDAMDRW):
    """LDAM-DRW student plus consistency to an EMA teacher; the teacher is evaluated."""

    Config = MeanTeacherLDAMConfig
    eval_ema = True

    def loss(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        """LDAM-DRW on the labeled batch + ramped softmax-MSE consistency on the unlabeled one."""
        c = self.cfg
        ramp_len = c.rampup * ctx.epochs
        n = len(batch.x)
        logits = ctx.model(torch.cat([batch.x, batch.u[STUDENT_VIEW]]), "random")
        sup, logs = self.ldam_drw(logits[:n], batch.y, ctx)
        if ctx.ema is None:
            raise RuntimeError("mean-teacher+ldam needs the runner's EMA model")
        ctx.ema.train()
        with torch.no_grad():
            teacher = ctx.ema(batch.u[TEACHER_VIEW], "random")
        cons = mse_consistency(c.scale * logits[n:], c.scale * teacher)
        weight = c.consistency * sigmoid_rampup(ctx.epoch, ramp_len)
        logs.update(sup=float(sup.detach()), consistency=float(cons.detach()), cons_weight=weight)
        return sup + weight * cons, logs

    def pseudo_rule(self, step: Train) -> PseudoRule | None:
        """For diagnostics: the teacher's argmax on U (its soft targets; no threshold)."""
        return PseudoRule("random", ema=True)

    def plan(self) -> list[Step]:
        """One student stage on D with unlabeled batches from D ∪ U and an EMA teacher."""
        c = self.cfg
        teacher = EmaDecay(c.ema_decay, c.ema_decay_rampup, c.rampup, warm_cap=True)
        return [
            Train(
                "student",
                c.epochs,
                self.loss,
                unlabeled=Unlabeled(
                    mu=c.mu, views=(STUDENT_VIEW, TEACHER_VIEW), include_labeled=True
                ),
                ema_decay=teacher,
                **self.ldam_train_kwargs(),
            )
        ]
