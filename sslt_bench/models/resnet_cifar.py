"""CIFAR ResNets (He et al. 2016, Section 4.2): ResNet-20/32/44/56 with option-A shortcuts.

ResNet-32 has 0.46M parameters, the backbone of LDAM-DRW (Cao et al. 2019) and of the
paper's Table 4. Kaiming-normal initialisation; returns the 64-d pooled feature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_model


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = cout - cin if (stride != 1 or cin != cout) else 0
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x
        if self.pad or self.stride != 1:  # option A: subsample and zero-pad channels
            short = x[:, :, :: self.stride, :: self.stride]
            short = F.pad(short, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + short)


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs; ``forward`` returns the pooled 64-d feature."""

    def __init__(self, depth: int, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError("depth must be 6n+2")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                layers.append(_Block(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.layers = nn.Sequential(*layers)
        self.out_dim = 64
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of a float batch."""
        x = F.relu(self.bn(self.conv(x)))
        x = self.layers(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


def _register(depth: int) -> None:
    @register_model(f"resnet{depth}", summary=f"CIFAR ResNet-{depth} (He et al. 2016), 64-d")
    def build(in_channels: int, image_size: int) -> CifarResNet:
        return CifarResNet(depth, in_channels)


for _d in (20, 32, 44, 56):
    _register(_d)
