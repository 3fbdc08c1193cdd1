"""CIFAR ResNet-18: stem, shortcuts and sizes of the two registered variants."""

import torch
import torch.nn.functional as F

from sslt_bench.models import build_model
from sslt_bench.models.resnet18_cifar import CifarResNet18
from sslt_bench.registry import DATASETS


def _embed_params(name):
    return sum(
        p.numel() for p in build_model(name, 3, 32, 10, {"random": "linear"}).embed.parameters()
    )


def test_parameter_counts_match_the_reference_layouts():
    # kuangliu-style CIFAR ResNet-18 has 11,173,962 parameters with its 512x10 fc (5,130)
    assert _embed_params("resnet18-cifar-proj") == 11_173_962 - 5_130
    # the released model drops the three 1x1 projections (conv + BN): 173,824 parameters
    assert _embed_params("resnet18-cifar") == 11_173_962 - 5_130 - 173_824


def test_stem_keeps_32px_and_last_stage_is_4x4():
    net = CifarResNet18(3, "pool").eval()
    sizes = []
    for block in net.layers:
        block.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 512)
    assert sizes[0] == (64, 32, 32) and sizes[-1] == (512, 4, 4)


def test_released_shortcut_is_avg_pool_with_zero_channels():
    net = CifarResNet18(3, "pool").eval()
    block = net.layers[2]  # 64 -> 128, stride 2
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
    x = torch.randn(2, 64, 8, 8)
    want = F.relu(torch.cat([F.avg_pool2d(x, 2), torch.zeros(2, 64, 4, 4)], 1))
    assert torch.allclose(block(x), want)


def test_cifar10_paper_profile_uses_it():
    assert DATASETS.get("cifar10-sslt").hints["paper"]["backbone"] == "resnet18-cifar"
