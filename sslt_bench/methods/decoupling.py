"""Decoupling, classifier re-training (cRT) variant (Kang et al., ICLR 2020).

Paper: Kang et al., "Decoupling Representation and Classifier for Long-Tailed Recognition"
(ICLR 2020); code: github facebookresearch/classifier-balancing. Stage 1 trains embedding f
and classifier g' on D with random sampling; stage 2 re-initialises a classifier g and trains
it alone, class-balanced, with f frozen. Evaluation uses f and g. This is also the
initialisation of ``alternate`` and ``pseudo-label+decoupling`` (:func:`decoupling_init`).

Stage 2 has two implementations (:class:`~sslt_bench.train.stages.TrainHead`):

* ``head_features=augmented`` (the reference, default of the ``paper`` profile): every batch's
  augmented images go through the frozen f. The reference code (run_networks.py) puts every
  network in ``train()`` mode, so f's BatchNorm uses batch statistics and updates its running
  ones (``head_bn=train``); its epoch stops after int(|D| / batch) steps although its
  class-aware sampler has largest-class x C draws (``head_epoch_size=pool``; ``balanced``
  gives largest-class x C draws).
* ``head_features=cached`` (the ``quick`` profile, a fast option): features of un-augmented
  images are extracted once in eval mode and g is trained on them (|D| draws per epoch).

Differences from the reference kept in both: our class-balanced sampler draws class and item
i.i.d. uniformly (theirs cycles shuffled classes and items, 4 items of a class in a row), and
lr / batch follow the paper's Appendix A (0.1, 128; theirs 0.2, 512 on ImageNet-LT).
Profiles: ``paper`` 200 + 10 epochs (paper Appendix A), cRT on augmented images;
``quick`` 30 + 10 epochs, cRT on cached features.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from ..registry import register_method
from ..train.stages import Step, Train, TrainHead
from .base import BaseConfig, Method


@dataclass
class DecouplingConfig(BaseConfig):
    """Decoupling (cRT) settings; shared by the methods that start from it.

    Attributes:
        head_features: classifier re-training on ``augmented`` images through the frozen f
            (the reference) or on ``cached`` un-augmented features (fast).
        head_bn: BatchNorm of f during ``augmented`` re-training: ``train`` (the reference:
            batch statistics, running statistics updated) or ``eval``.
        head_epoch_size: draws per classifier epoch: ``pool`` (|D|, the reference's steps)
            or ``balanced`` (largest class x C, its sampler's length).
    """

    head_features: Literal["cached", "augmented"] = "augmented"
    head_bn: Literal["eval", "train"] = "train"
    head_epoch_size: Literal["pool", "balanced"] = "pool"

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {**BaseConfig.PROFILES["quick"], "head_features": "cached"}
    }


def crt_kwargs(cfg: DecouplingConfig) -> dict[str, Any]:
    """The :class:`~sslt_bench.train.stages.TrainHead` options of cRT from a config."""
    return {
        "features": cfg.head_features,
        "bn_mode": cfg.head_bn,
        "epoch_size": cfg.head_epoch_size,
    }


def decoupling_init(method: Method, **head: Any) -> list[Step]:
    """Decoupling on D: random-sampling training of f and g', then class-balanced g.

    Args:
        method: a method whose config is a :class:`DecouplingConfig`.
        **head: overrides of the classifier step's options (e.g. a recipe's ``epochs``);
            ``method.head_kwargs()`` also overrides the config's cRT options.
    """
    kwargs = {**crt_kwargs(method.cfg), **method.head_kwargs(), **head}
    return [
        Train("embed", method.cfg.epochs, method.ce_loss, **method.train_kwargs()),
        TrainHead("classifier", "balanced", sampling="class_balanced", **kwargs),
    ]


@register_method(
    "decoupling",
    summary="Kang et al. 2020 cRT: random-sampled embedding, class-balanced classifier re-training",
)
class Decoupling(Method):
    """Random-sampled embedding, then class-balanced classifier re-training (cRT)."""

    Config = DecouplingConfig
    heads = {"random": "linear", "balanced": "linear"}
    eval_head = "balanced"

    def plan(self) -> list[Step]:
        """Embedding stage, then classifier re-training."""
        return decoupling_init(self)
