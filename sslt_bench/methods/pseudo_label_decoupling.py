"""Pseudo-Label + Decoupling: the paper's "Pseudo-Label + D" baseline (Table 1, Section 4.3).

Paper: "Semi-supervised Long-tailed Recognition using Alternate Sampling" (ICLR 2022
submission), Section 4.3, built from Pseudo-Label (Lee 2013) and Decoupling/cRT (Kang et al.
2020; github facebookresearch/classifier-balancing). Decoupling on D (f and g' random-sampled,
then g class-balanced on frozen f); U is pseudo-labelled once with f and g; f and g' are
fine-tuned on D ∪ U' with random sampling and cross-entropy; g is then re-trained
(re-initialised, as cRT does) class-balanced on ``classifier_pool``:

* ``labeled+pseudo`` (default): the paper's baseline, Decoupling applied to the combination
  of labeled and pseudo-labelled data (Section 4.3), class balance taken on the pseudo labels;
* ``labeled``: g on D only, alternate's own design choice (Section 3.5, Table 2), which makes
  this method ``alternate`` with one loop and no KL term.

The plan comes from :func:`~sslt_bench.methods.alternate.alternate_loops`; both classifier
re-trainings are decoupling's cRT (:func:`~sslt_bench.methods.decoupling.crt_kwargs`). Test
accuracy after the initialisation and pseudo-label accuracy on U are recorded as diagnostics.

Profiles: ``paper`` 200 init epochs + 10 classifier epochs, 200 fine-tuning epochs on D ∪ U'
(the paper: the same number of epochs on unlabeled data as its method's 5 x 40) + 10
classifier epochs; SGD lr 0.1 cosine per stage, momentum 0.9, wd 5e-4; cRT on augmented
images (decoupling's reference). ``quick``: decoupling's quick init (30 + 10 epochs, cRT on
cached features) and as many fine-tuning epochs as ``alternate``'s quick profile has stage-2
epochs in total (2 x 8 = 16), so the three methods compare at equal budgets: about 11 min
(10-13) on cifar10-sslt (imbalance 100, ResNet-20) on 2 CPU cores, seconds on digits-sslt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..config import in_range
from ..registry import register_method
from ..train.stages import Step
from .alternate import INIT_QUICK, AlternateConfig, alternate_loops
from .base import Method
from .decoupling import DecouplingConfig, crt_kwargs, decoupling_init

_ALT_QUICK = AlternateConfig.PROFILES["quick"]


@dataclass
class PseudoLabelDecouplingConfig(DecouplingConfig):
    """Pseudo-Label + Decoupling settings.

    Attributes:
        finetune_epochs: epochs of f and g' on D ∪ U' after pseudo-labelling.
        classifier_reset: re-initialise g before its class-balanced re-training (cRT: yes).
        classifier_pool: data of g's re-training: ``labeled+pseudo`` (D ∪ U', the paper's
            baseline) or ``labeled`` (D only, alternate's choice).
    """

    finetune_epochs: int = in_range(200, "[1, inf)")
    classifier_reset: bool = True
    classifier_pool: Literal["labeled+pseudo", "labeled"] = "labeled+pseudo"

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {
            **INIT_QUICK,
            "finetune_epochs": _ALT_QUICK["loops"] * _ALT_QUICK["loop_epochs"],
        }
    }
    SMOKE: ClassVar[dict[str, Any]] = {**DecouplingConfig.SMOKE, "finetune_epochs": 1}


@register_method(
    "pseudo-label+decoupling",
    summary="Decoupling on D, pseudo-label U, fine-tune f on D ∪ U', re-train g class-balanced "
    "on D ∪ U' (classifier_pool)",
)
class PseudoLabelDecoupling(Method):
    """Decoupling, one round of pseudo-labelling and fine-tuning, classifier re-training."""

    Config = PseudoLabelDecouplingConfig
    heads = {"random": "linear", "balanced": "linear"}
    eval_head = "balanced"

    def plan(self) -> list[Step]:
        """Decoupling, then one pseudo-label / fine-tune / re-train loop with plain CE."""
        c = self.cfg
        return decoupling_init(self) + alternate_loops(
            self,
            1,
            c.finetune_epochs,
            self.ce_loss,
            classifier_pool=c.classifier_pool,
            classifier_reset=c.classifier_reset,
        )

    def head_kwargs(self) -> dict[str, Any]:
        """Both classifier re-trainings are decoupling's cRT (the config's head options)."""
        return {**crt_kwargs(self.cfg), **super().head_kwargs()}
