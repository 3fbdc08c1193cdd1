"""The configuration of ``alternate``: its fields and the two recipes (paper / released).

Kept apart from :mod:`~sslt_bench.methods.alternate` (the plan and losses) for length only;
that module re-exports everything here. ``RECIPES`` maps each recipe to the values it gives
the fields a profile and ``--set`` leave unset; docs/fidelity.md cites the lines of the
authors' code (github BoLiu-SVCL/SSLT) behind every ``released`` value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..config import in_range
from .base import BaseConfig
from .decoupling import Decoupling, DecouplingConfig

#: The initialisation's quick settings are decoupling's, so alternate vs decoupling is fair.
INIT_QUICK: dict[str, Any] = dict(Decoupling.Config.PROFILES.get("quick", {}))

Sampling = Literal["random", "class_balanced"]


class _Field(str):
    """A recipe value that is another config field's value (``lr``, ``head_epochs``)."""


#: What each recipe sets in the fields left unset (``None``) by profile and ``--set``.
#: ``paper``: the paper's text (Section 3.4, Appendix A). ``released``: the authors' code
#: (github BoLiu-SVCL/SSLT, alternate.py and init_train.py; docs/fidelity.md has the lines).
RECIPES: dict[str, dict[str, Any]] = {
    "paper": {
        "loop_epochs": 40,
        "first_epoch_target": "carry",
        "stage2_head": "random",
        "stage2_lr": _Field("lr"),
        "stage2_schedule": "cosine",
        "stage2_milestones": (),
        "stage2_nesterov": False,
        "stage3_lr": _Field("lr"),
        "stage3_epochs": _Field("head_epochs"),
        "stage3_schedule": "cosine",
        "head_bn": "train",
        "stage3_features": _Field("head_features"),
        "stage3_bn": _Field("head_bn"),
        "init_head_epochs": _Field("head_epochs"),
        "pseudo_label_view": "none",
    },
    "released": {
        "loop_epochs": 50,
        "first_epoch_target": "uniform",
        "stage2_head": "balanced",
        "stage2_lr": 0.01,
        "stage2_schedule": "step",
        "stage2_milestones": (0.8,),
        "stage2_nesterov": True,
        "stage3_lr": 0.001,
        "stage3_epochs": 20,
        "stage3_schedule": "constant",
        "head_bn": "eval",
        "stage3_features": "augmented",
        "stage3_bn": "eval",
        "init_head_epochs": 20,
        "pseudo_label_view": "weak",
    },
}


@dataclass
class AlternateConfig(DecouplingConfig):
    """Alternate-sampling settings (defaults: paper Appendix A).

    Fields marked *recipe* default to ``None`` and are filled from ``RECIPES[recipe]``; a
    profile's or the user's value wins, so each difference can be switched alone.

    Attributes:
        recipe: ``paper`` (the paper's text) or ``released`` (the authors' released code).
        loops: alternate-learning loops N.
        loop_epochs: stage-2 epochs per loop (recipe: 40 paper, 50 released).
        kl_weight: lambda of the KL temporal-consistency term (eq. 3).
        first_epoch_target: KL target in a loop's first stage-2 epoch: ``carry`` (the previous
            loop's last-epoch probabilities; term skipped in loop 1), ``uniform`` (reset at
            every loop start, released) or ``skip`` (recipe).
        stage2_head: head trained with f in stage 2 and given the KL term: ``random`` (a
            separate g', the paper) or ``balanced`` (one classifier for stages 2 and 3,
            released) (recipe).
        stage2_lr: stage-2 learning rate (recipe: ``lr``; released 0.01).
        stage2_schedule: ``cosine``, ``step`` or ``constant`` per loop (recipe).
        stage2_milestones: fractions of a loop's stage 2 where ``step`` decays (recipe:
            released (0.8,), epoch 40 of 50).
        stage2_gamma: factor of each ``step`` decay (released 0.1).
        stage2_nesterov: Nesterov momentum in stage 2 (recipe: released true).
        stage3_lr: stage-3 learning rate (recipe: ``lr``; released 0.001).
        stage3_epochs: stage-3 epochs (recipe: ``head_epochs``; released 20).
        stage3_schedule: ``cosine`` or ``constant`` (recipe).
        stage3_features: ``cached`` un-augmented features or ``augmented`` images through
            the frozen f (recipe: paper = decoupling's ``head_features``, so stage 3 is the
            same cRT as the initialisation's in every profile; released ``augmented``).
        stage3_bn: BatchNorm mode of f for ``augmented`` stage 3 (recipe: paper =
            ``head_bn``; released ``eval``).
        init_head_epochs: epochs of the initialisation's classifier g (recipe: ``head_epochs``;
            released 20).
        head_bn: BatchNorm of f in the initialisation's ``augmented`` cRT (decoupling's field;
            recipe: ``train`` as Kang et al.'s code, ``eval`` as the released SSLT code).
        pseudo_label_view: images stage 1 labels: ``none`` (un-augmented, the paper) or
            ``weak`` (the training augmentation, as the released code's ``ext`` loader) (recipe).
        stage2_sampling: sampling of stage 2 (``class_balanced`` balances on pseudo labels).
        stage3_sampling: sampling of stage 3 (classifier g).
        classifier_pool: stage-3 data: ``labeled`` (D, the paper) or ``labeled+pseudo``.
        embed_uses_unlabeled: train f and g' on D ∪ U' (True, the paper) or on D only.
        classifier_reset: re-initialise g before each stage 3 (paper: no).
    """

    recipe: Literal["paper", "released"] = "paper"
    loops: int = in_range(5, "[1, inf)")
    loop_epochs: int | None = in_range(None, "[1, inf)")
    kl_weight: float = in_range(1.0, "[0, inf)")
    first_epoch_target: Literal["carry", "uniform", "skip"] | None = None
    stage2_head: Literal["random", "balanced"] | None = None
    stage2_lr: float | None = in_range(None, "(0, inf)")
    stage2_schedule: Literal["cosine", "step", "constant"] | None = None
    stage2_milestones: tuple[float, ...] | None = in_range(None, "(0, 1]")
    stage2_gamma: float = in_range(0.1, "(0, 1]")
    stage2_nesterov: bool | None = None
    stage3_lr: float | None = in_range(None, "(0, inf)")
    stage3_epochs: int | None = in_range(None, "[0, inf)")
    stage3_schedule: Literal["cosine", "constant"] | None = None
    stage3_features: Literal["cached", "augmented"] | None = None
    stage3_bn: Literal["eval", "train"] | None = None
    init_head_epochs: int | None = in_range(None, "[0, inf)")
    head_bn: Literal["eval", "train"] | None = None
    pseudo_label_view: Literal["none", "weak"] | None = None
    stage2_sampling: Sampling = "random"
    stage3_sampling: Sampling = "class_balanced"
    classifier_pool: Literal["labeled", "labeled+pseudo"] = "labeled"
    embed_uses_unlabeled: bool = True
    classifier_reset: bool = False

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {**INIT_QUICK, "loops": 2, "loop_epochs": 8}
    }
    SMOKE: ClassVar[dict[str, Any]] = {**BaseConfig.SMOKE, "loops": 2, "loop_epochs": 1}

    def __post_init__(self) -> None:
        """Fill the recipe fields left ``None`` from ``RECIPES[recipe]``."""
        for name, value in RECIPES[self.recipe].items():
            if getattr(self, name) is None:
                setattr(self, name, getattr(self, value) if isinstance(value, _Field) else value)
