"""ERM: cross-entropy with random (instance-balanced) sampling on the labeled set D only.

The reference row of every table: no long-tail correction, no unlabeled data.
Profiles: ``paper`` 200 epochs, SGD lr 0.1 cosine, momentum 0.9, wd 5e-4, batch 128 (paper
Appendix A); ``quick`` 30 epochs (about 2 min for ResNet-20 on cifar10-sslt on 2 CPU cores,
seconds on digits-sslt).
"""

from __future__ import annotations

from ..registry import register_method
from ..train.stages import Step, Train
from .base import Method


@register_method("erm", summary="cross-entropy, random sampling, labeled data only (reference)")
class ERM(Method):
    """Cross-entropy, random sampling, labeled data only."""

    def plan(self) -> list[Step]:
        """One training stage on D."""
        return [Train("train", self.cfg.epochs, self.ce_loss, **self.train_kwargs())]
