"""DARP's code (bbuing9/DARP) meets our run: model, data, optimiser and compatibility parts.

The pieces :mod:`peers.darp` patches into the code's modules at run time; each is listed with
its reason in that module's docstring and in the record's ``patches``.
"""

from __future__ import annotations

import copy
import itertools
import types
from typing import Any

import numpy as np
import torch
from torch import nn

from sslt_bench.train.engine import lr_at
from sslt_bench.train.session import decay_groups

from .common import Ours, PilItems, hwc, unlabeled_pool


class CodeModel(nn.Module):
    """Our model in the code's interface: ``forward`` -> (logits of our head, no rotation)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """The ``random`` head's logits (the code's ``output``); no rotation logits."""
        return self.net(x, "random"), None


class IndexedItems(PilItems):
    """Items as the code's datasets give them: ``(image, target, position)``; ``data``."""

    @property
    def data(self) -> np.ndarray:
        """The item ids (the code reads ``len(dataset.data)``)."""
        return self.ids

    def __getitem__(self, i: int):
        img, target = super().__getitem__(i)
        return img, target, i


class Bar:
    """``progress.bar.Bar``, silent (the code's console progress)."""

    suffix = elapsed_td = eta_td = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def next(self) -> None:
        """One step (nothing shown)."""

    def finish(self) -> None:
        """End of the bar (nothing shown)."""


class OneHot:
    """``torch.zeros(n, C)`` in the code's idiom ``.scatter_(1, idx, 1)``: ``len(idx)`` rows.

    ``train_fix`` sizes the unlabeled one-hot by the labeled batch (it assumes mu = 1,
    training_functions.py:442); sized by its index, mu x B unlabeled items work.
    """

    def __init__(self, *size: int, **kw: Any) -> None:
        self.size, self.kw = size, kw

    def cuda(self, *args: Any, **kwargs: Any) -> OneHot:
        """The CPU: itself."""
        return self

    def scatter_(self, dim: int, index: torch.Tensor, value: float) -> torch.Tensor:
        """The one-hot rows of ``index``."""
        return torch.zeros(len(index), *self.size[1:], **self.kw).scatter_(dim, index, value)


def topk(output: torch.Tensor, target: torch.Tensor, topk=(1,)) -> list[torch.Tensor]:
    """The code's ``accuracy``: percent of rows whose target is among the top k."""
    top = output.topk(max(topk), 1).indices
    return [(top[:, :k] == target[:, None]).any(1).float().mean() * 100 for k in topk]


def getter(ours: Ours, ds, seen: dict, union: bool = True):
    """The code's ``get_cifar10`` / ``get_cifar100`` on our split, through its transforms.

    ``union``: the unlabeled set is D ∪ U (DARP's rule for ``fix``) or U alone (ABC's);
    every unlabeled target is -1 (U's labels are never handed over).
    """
    split = ours.split
    train, test = hwc(ours.data.train), hwc(ours.data.test)

    def get(root: str, l_samples, u_samples, name: str = "fix", **kw: Any):
        assert "fix" in name, "only --semi_method fix is adapted"
        if union:
            u_ids, u_marks = unlabeled_pool(split, labeled_mark=-1)  # all_cifar10.py:86-87
        else:
            u_ids = split.unlabeled_idx
            u_marks = np.full(len(u_ids), -1, dtype=np.int64)
        strong = ds.TransformTwice(ds.transform_train, ds.transform_strong)
        seen["unlabeled"] = IndexedItems(train, u_ids, u_marks, strong)
        labeled = IndexedItems(train, split.labeled_idx, split.labeled_y, ds.transform_train)
        seen["test"] = IndexedItems(test, split.test_idx, split.test_y, ds.transform_val)
        return labeled, seen["unlabeled"], seen["test"]

    return get


def models(ours: Ours, seen: dict, wrap: type[nn.Module] = CodeModel):
    """``models.wrn.WRN``: our model (first call), a copy of its initial weights (the EMA).

    ``wrap``: the code's model interface around ours (DARP's: :class:`CodeModel`); the
    builder's arguments (width, classes, rotation) are ignored: our backbone is used.
    """

    def build(*args: Any, **kw: Any) -> nn.Module:
        if "model" in seen:  # the second call builds the EMA model
            return wrap(copy.deepcopy(ours.model))
        seen["model"] = wrap(ours.model)
        return seen["model"]

    return build


def loader(mu: int, seen: dict):
    """``DataLoader``: the unlabeled batch mu x B, one process."""

    def make(dataset, batch_size: int = 1, shuffle: bool = False, **kw: Any):
        kw["num_workers"] = 0
        if dataset is seen.get("unlabeled"):
            batch_size *= mu
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, **kw)

    return make


def optimiser(ours: Ours, seen: dict):
    """``optim.Adam``: our optimiser, its lr set before every step by our engine's ``lr_at``."""
    c = ours.cfg
    plan = types.SimpleNamespace(lr=c.lr, schedule=getattr(c, "schedule", "cosine"))
    total = c.epochs * c.steps_per_epoch

    def build(params, lr: float | None = None, **kw: Any) -> torch.optim.Optimizer:
        groups = decay_groups(seen["model"], list(params), c.no_decay)
        if getattr(c, "optimizer", "sgd") == "adam":
            opt = torch.optim.Adam(groups, lr=c.lr, weight_decay=c.weight_decay)
        else:
            opt = torch.optim.SGD(
                groups, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay,
                nesterov=c.nesterov,
            )  # fmt: skip
        step, count = opt.step, itertools.count()

        def scheduled(closure=None):
            now = lr_at(plan, next(count), total, c.steps_per_epoch)  # our engine's lr
            for group in opt.param_groups:
                group["lr"] = now
            return step(closure)

        opt.step = scheduled
        return opt

    return build


def weight_ema(base: type, decay: float) -> type:
    """The code's ``WeightEMA`` with our decoupled decay, over float state entries only."""

    class OurDecay(base):
        """The code's WeightEMA (EMA of every float state entry) with our decoupled decay."""

        def __init__(self, model, ema_model, *args: Any, **kw: Any):  # lr (DARP's), alpha
            super().__init__(model, ema_model, *args, **kw)
            self.wd = decay
            keep = [i for i, a in enumerate(self.params) if a.is_floating_point()]
            self.params = [self.params[i] for i in keep]
            self.ema_params = [self.ema_params[i] for i in keep]

    return OurDecay
