"""Train(no_decay=...): biases and normalisation parameters without weight decay (FixMatch)."""

import torch
from torch import nn

from sslt_bench.config import build_config
from sslt_bench.methods.base import DataInfo
from sslt_bench.methods.fixmatch import FixMatch, FixMatchConfig
from sslt_bench.train.session import decay_groups


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.BatchNorm2d(2), nn.Flatten(),
                         nn.LazyLinear(3))  # fmt: skip


def _step_with_zero_grads(groups):
    opt = torch.optim.SGD(groups, lr=1.0, momentum=0.0, weight_decay=0.5)
    for g in opt.param_groups:
        for p in g["params"]:
            p.grad = torch.zeros_like(p)
    opt.step()


def test_exempt_parameters_do_not_shrink_and_the_rest_do():
    net = _net()
    net(torch.zeros(1, 1, 5, 5))
    before = {k: v.clone() for k, v in net.named_parameters()}
    _step_with_zero_grads(decay_groups(net, list(net.parameters()), ("bias", "norm")))
    after = dict(net.named_parameters())
    for name in ("1.weight", "1.bias", "3.bias"):  # BN weight and bias, linear bias
        assert torch.equal(after[name], before[name]), name
    for name in ("0.weight", "3.weight"):  # decay only: p <- p - lr * wd * p = p / 2
        assert torch.allclose(after[name], before[name] * 0.5), name


def test_nothing_exempt_is_one_group_with_decay_everywhere():
    net = _net()
    net(torch.zeros(1, 1, 5, 5))
    groups = decay_groups(net, list(net.parameters()), ())
    assert len(groups) == 1
    before = {k: v.clone() for k, v in net.named_parameters()}
    _step_with_zero_grads(groups)
    assert torch.allclose(dict(net.named_parameters())["1.bias"], before["1.bias"] * 0.5)


def test_bias_only_keeps_decay_on_bn_weight():
    net = _net()
    net(torch.zeros(1, 1, 5, 5))
    free = {id(p) for p in decay_groups(net, list(net.parameters()), ("bias",))[1]["params"]}
    names = {n for n, p in net.named_parameters() if id(p) in free}
    assert names == {"1.bias", "3.bias"}


def test_fixmatch_asks_for_the_reference_rule():
    info = DataInfo(10, torch.arange(10, 0, -1).numpy(), 55, 220, 1, 8)
    (step,) = FixMatch(build_config(FixMatchConfig, "quick"), info).plan()
    assert step.no_decay == ("bias", "norm")
    cfg = build_config(FixMatchConfig, "quick", {"no_decay": ""})
    assert FixMatch(cfg, info).plan()[0].no_decay == ()
