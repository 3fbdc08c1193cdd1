"""A small CNN for tiny images (8x8 digits up to 32x32): 3 conv blocks, 128-d feature."""

from __future__ import annotations

import torch
from torch import nn

from ..registry import register_model


class SmallCNN(nn.Module):
    """conv(32)-conv(64)-pool-conv(128)-global pool; about 0.1M parameters."""

    def __init__(self, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
            )

        self.body = nn.Sequential(
            block(in_channels, width),
            block(width, 2 * width),
            nn.MaxPool2d(2),
            block(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.out_dim = 4 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of a float batch."""
        return self.body(x)


@register_model("small-cnn", summary="small 3-block CNN for tiny images (8x8 to 32x32), 128-d")
def build(in_channels: int, image_size: int) -> SmallCNN:
    """Build the small CNN."""
    return SmallCNN(in_channels)
