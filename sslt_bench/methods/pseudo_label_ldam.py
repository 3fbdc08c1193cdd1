"""Pseudo-Label + LDAM-DRW, the semi-supervised method of Yang & Xu (NeurIPS 2020).

1. LDAM-DRW (Cao et al. 2019) on D; 2. hard pseudo labels for all of U from its cosine
classifier (their accuracy per split is logged from U's hidden labels); 3. LDAM-DRW on
D ∪ U', with margins and DRW weights from the counts of D ∪ U' (pseudo labels included).

Restart or fine-tune: Yang & Xu train a new model on the union (their ``train_semi.py``
builds a fresh network), so by default step 3 restarts from the run's initial weights
(snapshotted before step 1); ``--set restart=false`` fine-tunes the step-1 model instead.
Step 3 uses batch 256 (Yang & Xu), i.e. ``semi_batch_factor`` = 2 x the step-1 batch.

Profiles: ``paper`` 200 epochs on D + 200 epochs on D ∪ U', each with LDAM-DRW's own
schedule (SGD lr 0.1, momentum 0.9, wd 2e-4, 5 warm-up epochs, lr x0.01 at 80% and 90%, DRW
from 80%; see :mod:`~sslt_bench.methods.ldam_drw`). ``quick``: step 1 is exactly ldam-drw's
quick run (50 epochs, 1 warm-up), so the pseudo labels come from a model as good as the
ldam-drw leaderboard row (an earlier 8-epoch step 1 labelled no medium/few-shot image
correctly); then 8 epochs on D ∪ U' from the restart at batch 256 (~380 steps): about
103k + 97k = 200k training images on cifar10-sslt (~2,000 labeled + ~10,000 unlabeled),
about 14 min for ResNet-20 on one CPU thread at ~230 img/s.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import in_range
from ..registry import register_method
from ..train.stages import Batch, Call, PseudoLabel, Step, StepContext, Train
from .ldam_drw import LDAMDRW, LDAMConfig

_INIT = "init_weights."


@dataclass
class PseudoLabelLDAMConfig(LDAMConfig):
    """Pseudo-Label + LDAM-DRW settings.

    Attributes:
        semi_epochs: epochs of LDAM-DRW on D ∪ U'.
        semi_batch_factor: batch size on D ∪ U' as a multiple of ``batch_size``.
        restart: re-initialise the model before training on D ∪ U' (else fine-tune).
    """

    semi_epochs: int = in_range(200, "[1, inf)")
    semi_batch_factor: int = in_range(2, "[1, inf)")
    restart: bool = True

    PROFILES = {"quick": {**LDAMConfig.PROFILES["quick"], "semi_epochs": 8}}
    SMOKE = {**LDAMConfig.SMOKE, "semi_epochs": 1}


def snapshot_weights(ctx: StepContext) -> None:
    """Store a copy of the model's weights and buffers in ``ctx.state`` (checkpointed)."""
    for name, value in ctx.model.state_dict().items():
        ctx.state[_INIT + name] = value.detach().clone()


def restore_weights(ctx: StepContext) -> None:
    """Load the weights stored by :func:`snapshot_weights` and drop them from ``ctx.state``."""
    keys = [k for k in ctx.state if k.startswith(_INIT)]
    if not keys:
        raise RuntimeError("restore_weights needs a snapshot_weights step before it")
    ctx.model.load_state_dict({k[len(_INIT) :]: ctx.state.pop(k) for k in keys})


@register_method(
    "pseudo-label+ldam",
    summary="Yang & Xu 2020: LDAM-DRW on D, hard pseudo labels on U, LDAM-DRW on D + U'",
)
class PseudoLabelLDAM(LDAMDRW):
    """LDAM-DRW on D, pseudo-label U, LDAM-DRW on D ∪ U' with the union's counts."""

    Config = PseudoLabelLDAMConfig

    def union_loss(self, batch: Batch, ctx: StepContext) -> tuple[torch.Tensor, dict[str, float]]:
        """LDAM-DRW on a batch of D ∪ U', margins and weights from the counts of D ∪ U'."""
        loss, logs = self.ldam_drw(ctx.model(batch.x, "random"), batch.y, ctx, "labeled+pseudo")
        return loss, {**logs, "labeled_frac": float(batch.is_labeled.float().mean())}

    def plan(self) -> list[Step]:
        """[snapshot], LDAM-DRW on D, pseudo-label U, [restart], LDAM-DRW on D ∪ U'."""
        c = self.cfg
        kw = self.ldam_train_kwargs()
        semi_kw = {**kw, "batch_size": c.batch_size * c.semi_batch_factor}
        steps: list[Step] = [Call("snapshot-init", snapshot_weights)] if c.restart else []
        steps += [
            Train("ldam", c.epochs, self.loss, **kw),
            PseudoLabel("pseudo-label", "random"),
        ]
        if c.restart:
            steps.append(Call("restart", restore_weights))
        steps.append(
            Train("ldam-union", c.semi_epochs, self.union_loss, pool="labeled+pseudo", **semi_kw)
        )
        return steps
