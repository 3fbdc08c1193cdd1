import math

import pytest
import torch
import torch.nn.functional as F

from sslt_bench.train.losses import (
    drw_weights,
    ldam_loss,
    ldam_margins,
    mse_consistency,
    sigmoid_rampup,
)


def test_ldam_margins_hand_computed():
    # n^(-1/4): 16 -> 1/2, 1 -> 1; largest scaled to 0.5
    assert torch.allclose(ldam_margins([16, 1]), torch.tensor([0.25, 0.5]))
    # 100^(-1/4) = 0.316228, 10^(-1/4) = 0.562341, 1 -> 1
    m = ldam_margins(torch.tensor([100, 10, 1]), max_margin=0.5)
    assert torch.allclose(m, torch.tensor([0.158114, 0.281171, 0.5]), atol=1e-6)
    assert torch.allclose(ldam_margins([81, 1], max_margin=1.0), torch.tensor([1 / 3, 1.0]))


def test_ldam_margins_empty_class_is_finite():
    m = ldam_margins([0, 16])
    assert torch.isfinite(m).all() and m.max() == pytest.approx(0.5)


def test_drw_weights_hand_computed():
    # beta 0.5: (1-b)/(1-b^1) = 1, (1-b)/(1-b^2) = 2/3; normalised to sum to C=2 -> 1.2, 0.8
    assert torch.allclose(drw_weights([1, 2], beta=0.5), torch.tensor([1.2, 0.8]))
    # Cao et al.'s beta 0.9999, counts 5000/500/50 (computed with 30-digit arithmetic)
    w = drw_weights(torch.tensor([5000, 500, 50]), beta=0.9999)
    assert torch.allclose(w, torch.tensor([0.0341074, 0.2751672, 2.6907254]), atol=1e-6)
    assert w.sum().item() == pytest.approx(3.0, abs=1e-5)
    assert torch.equal(drw_weights([7, 3, 1], beta=0.0), torch.ones(3))


def test_drw_weights_bad_beta():
    with pytest.raises(ValueError):
        drw_weights([1, 2], beta=1.0)


def test_ldam_loss_is_cross_entropy_without_margin():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(6, 4, generator=g)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    assert torch.allclose(ldam_loss(z, y, torch.zeros(4), scale=1.0), F.cross_entropy(z, y))
    w = torch.tensor([1.0, 2.0, 0.5, 3.0])
    assert torch.allclose(
        ldam_loss(z, y, torch.zeros(4), scale=1.0, weight=w), F.cross_entropy(z, y, weight=w)
    )
    assert torch.allclose(ldam_loss(z, y, torch.zeros(4), scale=30.0), F.cross_entropy(30 * z, y))


def test_ldam_margin_only_on_true_class():
    z = torch.tensor([[0.5, 0.2, -0.1], [0.1, 0.3, 0.0]])
    y = torch.tensor([0, 1])
    m = torch.tensor([0.2, 0.4, 0.9])
    expected = F.cross_entropy(
        2.0 * torch.tensor([[0.5 - 0.2, 0.2, -0.1], [0.1, 0.3 - 0.4, 0.0]]), y
    )
    assert torch.allclose(ldam_loss(z, y, m, scale=2.0), expected)
    # the margin of class 2 (not a target here) does not matter
    m2 = torch.tensor([0.2, 0.4, 0.0])
    assert torch.allclose(ldam_loss(z, y, m, scale=2.0), ldam_loss(z, y, m2, scale=2.0))
    # a margin makes the loss larger than plain scaled cross-entropy
    assert ldam_loss(z, y, m, 2.0) > ldam_loss(z, y, torch.zeros(3), 2.0)


def test_mse_consistency():
    z = torch.randn(5, 7)
    assert mse_consistency(z, z.clone()).item() == 0.0
    s = torch.zeros(1, 2, requires_grad=True)
    t = torch.tensor([[math.log(3.0), 0.0]], requires_grad=True)  # softmax (0.75, 0.25)
    cost = mse_consistency(s, t)
    assert cost.item() == pytest.approx(0.0625)  # mean of 0.25^2 over 2 classes
    cost.backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None  # the teacher is a target
    with pytest.raises(ValueError):
        mse_consistency(torch.zeros(2, 3), torch.zeros(2, 4))


def test_sigmoid_rampup_endpoints():
    assert sigmoid_rampup(0, 10) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(5, 10) == pytest.approx(math.exp(-1.25))
    assert sigmoid_rampup(10, 10) == 1.0
    assert sigmoid_rampup(25, 10) == 1.0
    assert sigmoid_rampup(-3, 10) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(3, 0) == 1.0
