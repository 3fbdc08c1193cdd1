"""ImageNet-style backbones through timm, by name (ResNet-18/50, or ``timm:<any name>``).

Weights are random (no hub download: the benchmark trains from scratch, as the paper does).
"""

from __future__ import annotations

from torch import nn

from ..errors import UsageError
from ..registry import MODELS, register_model


class TimmBackbone(nn.Module):
    """A timm model with its classifier removed; ``forward`` returns pooled features."""

    def __init__(self, name: str, in_channels: int) -> None:
        super().__init__()
        import timm

        self.net = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels)
        self.out_dim = self.net.num_features

    def forward(self, x):  # noqa: D102
        return self.net(x)


def timm_backbone(name: str):
    """The backbone factory of ``timm:<name>`` (any model timm can build, random weights).

    Raises:
        UsageError: if timm has no model ``name`` (one line, naming how to list them).
    """
    import timm

    if not timm.is_model(name):
        raise UsageError(
            f"unknown timm model {name!r}; timm.list_models() lists the names "
            "(e.g. timm:resnet10t, timm:mobilenetv3_small_050)"
        )
    return lambda in_channels, image_size: TimmBackbone(name, in_channels)


MODELS.register_prefix("timm:", timm_backbone)

for _name in ("resnet18", "resnet50"):
    register_model(_name, summary=f"{_name} from timm (ImageNet layout, random init)")(
        lambda in_channels, image_size, _n=_name: TimmBackbone(_n, in_channels)
    )
