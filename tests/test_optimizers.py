"""Train steps with Adam and the DARP code family's decoupled weight decay (known answers)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sslt_bench.config import build_config
from sslt_bench.methods.base import DataInfo
from sslt_bench.registry import METHODS
from sslt_bench.train.engine import FeatureLoader, train_epoch
from sslt_bench.train.session import Session, head_ce_loss
from sslt_bench.train.stages import StepContext, Train


def _setup():
    from sslt_bench.models.wrapper import SSLTModel, make_head

    torch.manual_seed(0)
    model = SSLTModel(nn.Identity(), {"h": make_head("linear", 5, 3)}, {"h": "linear"})
    feats, labels = torch.randn(8, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    ctx = StepContext(
        model=model,
        ema=None,
        state={},
        num_classes=3,
        labeled_counts=torch.tensor([3, 3, 2]),
        num_labeled=8,
        num_unlabeled=0,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(1),
    )
    return model, feats, labels, ctx


@pytest.mark.parametrize("decay", [0.0, 0.1])
def test_adam_step_then_decoupled_decay(decay):
    """One step: torch's Adam update, then every weight times (1 - decay), as WeightEMA."""
    model, feats, labels, ctx = _setup()
    reference = {k: v.clone() for k, v in model.heads["h"].state_dict().items()}
    step = Train(
        "t",
        1,
        lambda b, c: head_ce_loss(b, c, "h"),
        params=("heads.h",),
        batch_size=8,
        lr=0.01,
        weight_decay=0.0,
        schedule="constant",
        optimizer="adam",
        decoupled_decay=decay,
    )
    runner_side = SimpleNamespace(ctx=ctx, opt_state=None, amp="none")
    opt = Session._optimiser(runner_side, step)
    assert isinstance(opt.opt, torch.optim.Adam)
    ids = torch.arange(8)
    train_epoch(step, ctx, FeatureLoader(feats, ids, ctx.device), (ids, labels), ids[:0], opt)

    head = nn.Linear(5, 3)
    head.load_state_dict(reference)
    adam = torch.optim.Adam(head.parameters(), lr=0.01)
    F.cross_entropy(head(feats), labels).backward()
    adam.step()
    for name, value in head.state_dict().items():
        want = value * (1 - decay)
        assert torch.allclose(model.heads["h"].state_dict()[name], want, atol=1e-6), name
        assert not torch.allclose(reference[name], want)  # the step did move it


def _plan(method: str, profile: str):
    cls = METHODS.get(method)
    info = DataInfo(10, np.full(10, 20), 200, 1000, 3, 32)
    return cls(build_config(cls.Config, profile, {}), info).plan()


@pytest.mark.parametrize("method", ["fixmatch+darp", "fixmatch+abc", "fixmatch+saw"])
def test_darp_code_family_trains_with_adam_as_its_code_and_sgd_at_quick(method):
    (step,) = [s for s in _plan(method, "paper") if isinstance(s, Train)]
    assert (step.optimizer, step.lr, step.weight_decay, step.schedule) == (
        "adam",
        0.002,
        0.0,
        "constant",
    )
    assert step.decoupled_decay == pytest.approx(0.02 * 0.002)
    (quick,) = [s for s in _plan(method, "quick") if isinstance(s, Train)]
    assert (quick.optimizer, quick.lr, quick.schedule, quick.decoupled_decay) == (
        "sgd",
        0.03,
        "cosine",
        0.0,
    )


def test_acr_keeps_sgd_and_cossl_moves_the_decay_into_adam_l2_when_co_learning():
    (acr,) = _plan("acr", "paper")
    assert (acr.optimizer, acr.lr, acr.decoupled_decay) == ("sgd", 0.03, 0.0)
    steps = {s.name: s for s in _plan("fixmatch+cossl", "paper") if isinstance(s, Train)}
    assert steps["pretrain"].optimizer == "adam" and steps["pretrain"].decoupled_decay > 0
    assert steps["colearn"].decoupled_decay == 0.0
    assert steps["colearn"].weight_decay == pytest.approx(0.02 * 0.002)
    (fm,) = _plan("fixmatch", "paper")
    assert fm.optimizer == "sgd" and fm.decoupled_decay == 0.0  # FixMatch's own settings
