import math

import numpy as np
import pytest
import torch

from sslt_bench.config import build_config
from sslt_bench.data.augment import Augmenter
from sslt_bench.errors import UsageError
from sslt_bench.methods.base import DataInfo
from sslt_bench.methods.ldam_drw import LDAMDRW, LDAMConfig
from sslt_bench.methods.mean_teacher_ldam import MeanTeacherLDAM, MeanTeacherLDAMConfig
from sslt_bench.methods.pseudo_label_ldam import (
    PseudoLabelLDAM,
    PseudoLabelLDAMConfig,
    restore_weights,
    snapshot_weights,
)
from sslt_bench.models import build_model
from sslt_bench.train.ema import make_ema
from sslt_bench.train.engine import ema_decay_at
from sslt_bench.train.losses import drw_weights, ldam_loss, ldam_margins
from sslt_bench.train.stages import Batch, Call, EmaDecay, PseudoLabel, StepContext, Train

COUNTS = np.array([40, 12, 4])


def _info():
    return DataInfo(3, COUNTS, int(COUNTS.sum()), 100, 1, 8)


def _ctx(model=None, ema=None, epochs=10):
    model = model or build_model("small-cnn", 1, 8, 3, {"random": "cosine"})
    return StepContext(
        model=model,
        ema=ema,
        state={},
        num_classes=3,
        labeled_counts=torch.as_tensor(COUNTS),
        num_labeled=int(COUNTS.sum()),
        num_unlabeled=100,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        epochs=epochs,
    )


def test_drw_switches_on_for_last_fifth():
    method = LDAMDRW(LDAMConfig(), _info())
    ctx = _ctx(epochs=10)
    z = torch.randn(6, 3)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    margins = ldam_margins(COUNTS, 0.5)
    for epoch in range(10):
        ctx.epoch = epoch
        loss, logs = method.ldam_drw(z, y, ctx)
        on = epoch >= 8
        assert logs["drw"] == float(on)
        weight = drw_weights(COUNTS, 0.9999) if on else None
        assert torch.allclose(loss, ldam_loss(z, y, margins, 30.0, weight))
    ctx.epoch = 7
    off, _ = method.ldam_drw(z, y, ctx)
    ctx.epoch = 8
    on_, _ = method.ldam_drw(z, y, ctx)
    assert not torch.allclose(off, on_)


def test_ldam_drw_plan_and_head():
    method = LDAMDRW(build_config(LDAMConfig, "paper"), _info())
    assert method.heads == {"random": "cosine"}
    (step,) = method.plan()
    assert isinstance(step, Train) and step.epochs == 200 and step.pool == "labeled"
    assert step.schedule == "step" and step.milestones == (0.8, 0.9) and step.warmup_epochs == 5
    assert step.weight_decay == 2e-4 and step.batch_size == 128 and step.lr == 0.1


def test_config_validation():
    with pytest.raises(UsageError, match="drw_start"):
        build_config(LDAMConfig, "paper", {"drw_start": "1.5"})
    with pytest.raises(UsageError, match="ema_decay"):
        build_config(MeanTeacherLDAMConfig, "paper", {"ema_decay": "1.0"})
    cfg = build_config(PseudoLabelLDAMConfig, "quick")
    # quick: step 1 is exactly ldam-drw's quick run, so its pseudo labels match that row's model
    ldam = build_config(LDAMConfig, "quick")
    assert (cfg.epochs, cfg.warmup_epochs) == (ldam.epochs, ldam.warmup_epochs)


def test_pseudo_label_union_counts():
    method = PseudoLabelLDAM(PseudoLabelLDAMConfig(), _info())
    ctx = _ctx()
    ctx.state["pseudo"] = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    union = torch.as_tensor(COUNTS) + torch.tensor([50, 30, 20])
    x = torch.randn(4, 1, 8, 8)
    batch = Batch(x=x, y=torch.tensor([0, 1, 2, 2]), idx=torch.tensor([0, 1, 60, 100]))
    batch.num_labeled = ctx.num_labeled
    loss, logs = method.union_loss(batch, ctx)
    with torch.no_grad():
        ref = ldam_loss(ctx.model(x, "random"), batch.y, ldam_margins(union, 0.5), 30.0)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert logs["labeled_frac"] == 0.5


def test_pseudo_label_plan_restart_and_finetune():
    steps = PseudoLabelLDAM(PseudoLabelLDAMConfig(), _info()).plan()
    kinds = [type(s) for s in steps]
    assert kinds == [Call, Train, PseudoLabel, Call, Train]
    assert steps[-1].pool == "labeled+pseudo" and steps[-1].batch_size == 256
    assert steps[-1].epochs == 200 and steps[1].epochs == 200
    steps = PseudoLabelLDAM(PseudoLabelLDAMConfig(restart=False), _info()).plan()
    assert [type(s) for s in steps] == [Train, PseudoLabel, Train]


def test_snapshot_restore_roundtrip():
    ctx = _ctx()
    before = {k: v.clone() for k, v in ctx.model.state_dict().items()}
    snapshot_weights(ctx)
    with torch.no_grad():
        for p in ctx.model.parameters():
            p.add_(1.0)
    restore_weights(ctx)
    after = ctx.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not ctx.state  # snapshot dropped after use
    with pytest.raises(RuntimeError):
        restore_weights(ctx)


def test_two_independent_weak_views():
    aug = Augmenter((0.5,), (0.25,), padding=2, flip=True, device=torch.device("cpu"))
    x = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    a, b = aug(x, "weak", gen), aug(x, "weak:teacher", gen)
    assert a.shape == b.shape == (16, 1, 8, 8)
    assert not torch.equal(a, b)
    with pytest.raises(ValueError):
        aug(x, "bogus:teacher", gen)


def test_mean_teacher_loss_and_ema_schedule():
    cfg = MeanTeacherLDAMConfig()
    method = MeanTeacherLDAM(cfg, _info())
    (step,) = method.plan()
    assert method.eval_ema and step.unlabeled.include_labeled
    assert len(set(step.unlabeled.views)) == 2
    assert step.ema_decay == EmaDecay(0.999, 0.99, cfg.rampup, warm_cap=True)
    model = build_model("small-cnn", 1, 8, 3, {"random": "cosine"})
    ctx = _ctx(model, make_ema(model), epochs=30)
    g = torch.Generator().manual_seed(1)
    batch = Batch(
        x=torch.randn(4, 1, 8, 8, generator=g), y=torch.tensor([0, 1, 2, 0]), idx=torch.arange(4)
    )
    batch.u = {v: torch.randn(8, 1, 8, 8, generator=g) for v in step.unlabeled.views}
    loss, logs = step.loss(batch, ctx)
    assert torch.isfinite(loss)
    assert logs["cons_weight"] == pytest.approx(100 * math.exp(-5))
    assert loss.item() == pytest.approx(
        logs["sup"] + logs["cons_weight"] * logs["consistency"], rel=1e-5
    )
    loss.backward()
    assert all(p.grad is None for p in ctx.ema.parameters())
    assert any(p.grad is not None for p in ctx.model.parameters())
    # the runner applies the step's declared schedule (ema_decay_at), never the loss
    assert ema_decay_at(step, ctx) == 0.0  # step 0: bias-corrected, teacher becomes student
    ctx.step = 9
    assert ema_decay_at(step, ctx) == pytest.approx(0.9)  # 1 - 1/(t + 1) below the ramp-up
    ctx.epoch, ctx.step = 8, 5000  # 8 >= 30 * 0.267: ramp-up over
    _, logs = step.loss(batch, ctx)
    assert logs["cons_weight"] == pytest.approx(100.0) and ema_decay_at(step, ctx) == 0.999
    ctx.epoch = 7
    assert ema_decay_at(step, ctx) == 0.99
