"""FixMatch: the confidence mask, the pseudo-label target and where gradients flow."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sslt_bench.config import build_config
from sslt_bench.errors import UsageError
from sslt_bench.methods.base import DataInfo
from sslt_bench.methods.fixmatch import QUICK_EPOCHS, FixMatch, FixMatchConfig
from sslt_bench.models.wrapper import SSLTModel, make_head
from sslt_bench.train.losses import fixmatch_mask, fixmatch_unlabeled_loss
from sslt_bench.train.stages import Batch, StepContext, Train

# Softmax confidences: row 0 ~0.9999 (kept), row 1 e^3/(e^3+2) ~0.909 (dropped),
# row 2 e^4/(e^4+2) ~0.9647 (kept), row 3 1/3 (dropped, argmax of a tie = 0).
WEAK = torch.tensor([[10.0, 0, 0], [0, 3.0, 0], [0, 0, 4.0], [1.0, 1, 1]])
STRONG = torch.tensor([[0.5, 1.0, -1.0], [2.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.3, 0.2, 0.1]])


def test_mask_and_pseudo_labels_by_hand():
    labels, mask = fixmatch_mask(F.softmax(WEAK, dim=1), 0.95)
    assert labels.tolist() == [0, 1, 2, 0]
    assert mask.tolist() == [1.0, 0.0, 1.0, 0.0]
    _, edge = fixmatch_mask(torch.tensor([[0.95, 0.05], [0.9499, 0.0501]]), 0.95)
    assert edge.tolist() == [1.0, 0.0]  # kept at exactly tau


def test_unlabeled_loss_masks_and_uses_weak_argmax():
    strong = STRONG.clone().requires_grad_(True)
    loss, mask = fixmatch_unlabeled_loss(WEAK, strong, 0.95)
    ce0 = F.cross_entropy(STRONG[0:1], torch.tensor([0]))
    ce2 = F.cross_entropy(STRONG[2:3], torch.tensor([2]))
    expected = (ce0 + ce2) / 4  # the mean is over all items, masked ones counting zero
    assert math.isclose(loss.item(), expected.item(), rel_tol=1e-6)
    assert mask.mean().item() == 0.5
    loss.backward()
    assert torch.all(strong.grad[[1, 3]] == 0)  # below the threshold: no contribution
    assert torch.all(strong.grad[[0, 2]].abs().sum(1) > 0)


def test_unlabeled_loss_has_no_gradient_to_the_weak_view():
    weak = WEAK.clone().requires_grad_(True)
    strong = STRONG.clone().requires_grad_(True)
    loss, _ = fixmatch_unlabeled_loss(weak, strong, 0.0)
    loss.backward()
    assert weak.grad is None or torch.all(weak.grad == 0)
    assert strong.grad is not None and strong.grad.abs().sum() > 0


def _flat_model(seed: int = 0) -> SSLTModel:
    """A BatchNorm-free model (batch statistics would couple the three views)."""
    torch.manual_seed(seed)
    embed = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.Tanh())
    embed.out_dim = 8
    return SSLTModel(embed, {"random": make_head("linear", 8, 3)}, {"random": "linear"})


def _ctx(model: SSLTModel) -> StepContext:
    return StepContext(
        model=model,
        ema=None,
        state={},
        num_classes=3,
        labeled_counts=torch.tensor([4, 2, 1]),
        num_labeled=7,
        num_unlabeled=28,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
    )


def _method(**overrides) -> FixMatch:
    cfg = build_config(FixMatchConfig, "paper", overrides)
    return FixMatch(cfg, DataInfo(3, np.array([4, 2, 1]), 7, 28, 3, 2))


@pytest.mark.parametrize("threshold", [0.0, 1.0])
def test_method_loss_gradient_flows_through_strong_view_only(threshold):
    g = torch.Generator().manual_seed(1)
    x, weak, strong = (torch.randn(n, 3, 2, 2, generator=g) for n in (2, 6, 6))
    weak.requires_grad_(True)
    strong.requires_grad_(True)
    batch = Batch(x=x, y=torch.tensor([0, 2]), idx=torch.arange(2), num_labeled=7)
    batch.u = {"weak": weak, "strong": strong}
    model = _flat_model()
    loss, logs = _method(threshold=threshold, lambda_u=2.0).loss(batch, _ctx(model))
    loss.backward()
    assert weak.grad is None or torch.all(weak.grad == 0)
    assert logs["mask_rate"] == (1.0 if threshold == 0.0 else 0.0)
    assert math.isclose(loss.item(), logs["sup"] + 2.0 * logs["unsup"], rel_tol=1e-5)
    if threshold == 0.0:  # every item kept: the strong view gets gradient
        assert strong.grad.abs().sum() > 0
        with torch.no_grad():
            target = model(weak, "random").argmax(1)
            want = F.cross_entropy(model(strong, "random"), target).item()
        assert math.isclose(logs["unsup"], want, rel_tol=1e-5)
    else:  # nothing reaches probability 1: zero unlabeled loss, no gradient at all
        assert logs["unsup"] == 0.0
        assert strong.grad is None or torch.all(strong.grad == 0)


def test_plan_follows_the_paper_and_quick_keeps_tau_and_lambda():
    (step,) = _method().plan()
    assert isinstance(step, Train) and FixMatch.eval_ema
    assert step.unlabeled.mu == 7 and step.unlabeled.views == ("weak", "strong")
    assert step.unlabeled.include_labeled  # the official unlabeled set is all training data
    assert (step.lr, step.nesterov, step.weight_decay, step.ema_decay) == (0.03, True, 5e-4, 0.999)
    assert step.epochs * step.steps_per_epoch == 2**20 and step.batch_size == 64
    quick = build_config(FixMatchConfig, "quick")
    assert (quick.threshold, quick.lambda_u) == (0.95, 1.0)
    # quick trades the unlabeled ratio for labeled steps (see the module docstring)
    assert quick.mu == 2 and quick.epochs * quick.steps_per_epoch == 100 * QUICK_EPOCHS


FAMILY = ("fixmatch+darp", "fixmatch+abc", "fixmatch+saw", "acr", "simpro")


@pytest.mark.parametrize(
    "name", ["fixmatch", *FAMILY, "fixmatch+crest", "fixmatch+cossl", "fixmatch+daso"]
)
def test_quick_profile_of_the_family_trains_the_network_as_many_steps_as_fixmatch(name):
    """The quick board compares mechanisms at one budget: every variant's network steps."""
    from sslt_bench.registry import METHODS

    c = build_config(METHODS.get(name).Config, "quick")
    steps = {
        "fixmatch+crest": lambda: c.generations * c.epochs,
        "fixmatch+cossl": lambda: c.pretrain_epochs + c.epochs,  # + the head-only warm-up
    }.get(name, lambda: c.epochs)() * c.steps_per_epoch
    assert steps == 100 * QUICK_EPOCHS and (c.batch_size, c.mu, c.ema_decay) == (32, 2, 0.99)
    if name == "fixmatch+daso":
        assert c.pretrain_steps == round(steps * 2 / 7)  # DASO starts after 2/7 of the budget


@pytest.mark.parametrize("key,value", [("threshold", "1.5"), ("mu", "0"), ("ema_decay", "1")])
def test_bad_settings_are_usage_errors(key, value):
    with pytest.raises(UsageError, match=key):
        build_config(FixMatchConfig, "paper", {key: value})
