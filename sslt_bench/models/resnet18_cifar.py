"""CIFAR ResNet-18: ResNet-18's four stages on a 3x3 stride-1 stem without max-pool.

The paper's Tables 1 and 5 train "ResNet-18" on 32x32 CIFAR-10-SSLT; the ImageNet layout
(7x7 stride-2 stem and max-pool, timm's ``resnet18``) would shrink a 32x32 image to 1x1
before the last stage. Two registered variants, both 64-128-256-512 channels x 2 basic blocks,
global average pooling, 512-d feature:

* ``resnet18-cifar``: the authors' released model (github BoLiu-SVCL/SSLT,
  models/ResNetCifar.py, ``ResNet18CifarBlock``): a down-sampling block's shortcut is a 2x2
  average pool with the new channels zero-filled (no parameters); PyTorch's default
  initialisation (they add none).
* ``resnet18-cifar-proj``: the common CIFAR ResNet-18 (He et al. 2016 option B: 1x1
  convolution + BatchNorm projection shortcuts), for comparison with other CIFAR work.

Pooling is adaptive (the released code's fixed 4x4 pool is the same at 32x32 input).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, shortcut: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.extra = cout - cin
        self.down = stride != 1 or cin != cout
        self.proj = None
        if self.down and shortcut == "proj":
            self.proj = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output."""
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        if self.proj is not None:
            short = self.proj(x)
        elif self.down:  # released: 2x2 average pool, new channels zero
            short = F.pad(F.avg_pool2d(x, 2), (0, 0, 0, 0, 0, self.extra))
        else:
            short = x
        return F.relu(out + short)


class CifarResNet18(nn.Module):
    """ResNet-18 for small images; ``forward`` returns the pooled 512-d feature.

    Args:
        in_channels: image channels.
        shortcut: ``pool`` (the released SSLT model) or ``proj`` (1x1 conv projections).
    """

    def __init__(self, in_channels: int = 3, shortcut: str = "pool") -> None:
        super().__init__()
        if shortcut not in ("pool", "proj"):
            raise ValueError(f"unknown shortcut {shortcut!r}; choose from: pool, proj")
        self.conv = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(64)
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [_Basic(cin, cout, stride, shortcut), _Basic(cout, cout, 1, shortcut)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.out_dim = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of a float batch."""
        x = self.layers(F.relu(self.bn(self.conv(x))))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


@register_model(
    "resnet18-cifar",
    summary="CIFAR ResNet-18 of the released SSLT code (3x3 stem, pool shortcuts), 512-d",
)
def _released(in_channels: int, image_size: int) -> CifarResNet18:
    return CifarResNet18(in_channels, "pool")


@register_model(
    "resnet18-cifar-proj",
    summary="CIFAR ResNet-18 (3x3 stem, no max-pool, 1x1 projection shortcuts), 512-d",
)
def _projection(in_channels: int, image_size: int) -> CifarResNet18:
    return CifarResNet18(in_channels, "proj")
