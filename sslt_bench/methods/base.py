"""What a method is: a typed config, the heads it needs, a plan of steps and its losses.

A method never runs a loop. It subclasses :class:`Method`, declares ``Config`` (a dataclass
whose defaults are the paper's values, with a ``quick`` profile of CPU-budget overrides),
and returns its :mod:`~sslt_bench.train.stages` from :meth:`Method.plan`. Loss functions are plain
methods ``loss(batch, ctx) -> Tensor`` referenced by the :class:`~sslt_bench.train.stages.Train`
steps; the runner does batching, augmentation, optimiser steps, EMA, checkpoints and
evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch.nn.functional as F

from ..config import in_range
from ..train.stages import Batch, PseudoRule, Step, StepContext, Train


@dataclass
class BaseConfig:
    """Settings every method has (paper Appendix A: SGD, lr 0.1 cosine, momentum 0.9, wd 5e-4).

    Attributes:
        backbone: registered backbone; ``None`` = the data set's default for the profile.
        batch_size: labeled batch size.
        lr: initial learning rate of embedding training.
        momentum: SGD momentum.
        weight_decay: SGD weight decay.
        epochs: epochs of embedding training on D.
        head_epochs: epochs of each classifier re-training on cached features.
    """

    backbone: str | None = None
    batch_size: int = in_range(128, "[1, inf)")
    lr: float = in_range(0.1, "(0, inf)")
    momentum: float = in_range(0.9, "[0, 1)")
    weight_decay: float = in_range(5e-4, "[0, inf)")
    epochs: int = in_range(200, "[1, inf)")
    head_epochs: int = in_range(10, "[0, inf)")

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {"quick": {"epochs": 30}}
    #: Overrides that make a run a few steps long: the registry-driven smoke test runs every
    #: method with these on a tiny split. Subclasses extend it with their own length fields.
    SMOKE: ClassVar[dict[str, Any]] = {"epochs": 1, "head_epochs": 1}

    def validate(self) -> None:
        """Cross-field checks (raise :class:`~sslt_bench.errors.UsageError`); none here.

        Ranges are declared on the fields (:func:`~sslt_bench.config.in_range`) and checked,
        with finiteness, by :func:`~sslt_bench.config.check_config` before this hook runs.
        Subclasses override it for checks that involve several fields.
        """


@dataclass(frozen=True)
class DataInfo:
    """What a method may know about the data: no images, no hidden labels."""

    num_classes: int
    labeled_counts: np.ndarray
    num_labeled: int
    num_unlabeled: int
    channels: int
    image_size: int


class Method:
    """Base class of all methods (override ``plan``; add loss functions as needed).

    Class attributes:
        Config: the config dataclass.
        heads: classifier heads to build, name -> ``linear`` or ``cosine``.
        extra_heads: auxiliary heads, name -> (kind, outputs).
        eval_head: head used for the final evaluation.
        eval_ema: evaluate the EMA model instead of the trained one.
    """

    Config: ClassVar[type] = BaseConfig
    heads: ClassVar[dict[str, str]] = {"random": "linear"}
    extra_heads: ClassVar[dict[str, tuple[str, int]]] = {}
    eval_head: ClassVar[str] = "random"
    eval_ema: ClassVar[bool] = False

    def __init__(self, cfg: Any, info: DataInfo) -> None:
        self.cfg = cfg
        self.info = info

    def plan(self) -> list[Step]:
        """The ordered steps of this method."""
        raise NotImplementedError

    def pseudo_rule(self, step: Train) -> PseudoRule | None:
        """How ``step``'s loss pseudo-labels U, for the runner's diagnostics; ``None``: it doesn't.

        Methods that label U on the fly (FixMatch, Mean Teacher) override it; labels a method
        stores for the ``labeled+pseudo`` pool are read by the runner without it.
        """
        return None

    def train_kwargs(self) -> dict[str, Any]:
        """The optimiser settings of embedding training from the config."""
        c = self.cfg
        return {
            "batch_size": c.batch_size,
            "lr": c.lr,
            "momentum": c.momentum,
            "weight_decay": c.weight_decay,
        }

    def head_kwargs(self) -> dict[str, Any]:
        """The optimiser settings of classifier re-training from the config."""
        c = self.cfg
        return {
            "batch_size": c.batch_size,
            "lr": c.lr,
            "momentum": c.momentum,
            "weight_decay": c.weight_decay,
            "epochs": c.head_epochs,
        }

    @staticmethod
    def ce_loss(batch: Batch, ctx: StepContext, head: str = "random") -> Any:
        """Cross-entropy of ``head`` on the labeled batch (random-sampling ERM)."""
        return F.cross_entropy(ctx.model(batch.x, head), batch.y)
