"""Exponential moving average of a model's weights (Mean Teacher; FixMatch's evaluation model)."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(model: nn.Module) -> nn.Module:
    """A frozen copy of ``model`` to be updated with :func:`ema_update`."""
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta; buffers (BN statistics) copied."""
    for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
        pe.mul_(decay).add_(pm.detach(), alpha=1.0 - decay)
    for be, bm in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(bm)


@torch.no_grad()
def decay_state(model: nn.Module, decay: float) -> None:
    """Multiply every floating-point entry of ``model``'s state by ``1 - decay``.

    The "customized weight decay" of the MixMatch/DARP code family's ``WeightEMA.step``
    (parameters and BatchNorm statistics alike, after the EMA update), 0.02 x lr with Adam.
    """
    for value in model.state_dict().values():
        if value.is_floating_point():
            value.mul_(1.0 - decay)
