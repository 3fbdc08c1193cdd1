"""Decoupling, classifier re-training (cRT) variant (Kang et al., ICLR 2020).

Stage 1 trains embedding f and classifier g' on D with random sampling; stage 2 re-initialises
a classifier g and trains it alone, class-balanced, on cached features of the frozen f.
Evaluation uses f and g. This is also the initialisation of the alternate method.
Profiles: ``paper`` 200 + 10 epochs (paper Appendix A); ``quick`` 30 + 10 epochs.
"""

from __future__ import annotations

from ..registry import register_method
from ..stages import Step, Train, TrainHead
from .base import Method


def decoupling_init(method: Method) -> list[Step]:
    """Decoupling on D: random-sampling training of f and g', then class-balanced g."""
    return [
        Train("embed", method.cfg.epochs, method.ce_loss, **method.train_kwargs()),
        TrainHead("classifier", "balanced", sampling="class_balanced", **method.head_kwargs()),
    ]


@register_method(
    "decoupling",
    summary="Kang et al. 2020 cRT: random-sampled embedding, class-balanced classifier re-training",
)
class Decoupling(Method):
    """Random-sampled embedding, then class-balanced classifier re-training (cRT)."""

    heads = {"random": "linear", "balanced": "linear"}
    eval_head = "balanced"

    def plan(self) -> list[Step]:
        """Embedding stage, then classifier re-training."""
        return decoupling_init(self)
