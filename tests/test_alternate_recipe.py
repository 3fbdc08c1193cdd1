"""alternate's ``recipe``: the paper's text vs the authors' released code, switch by switch."""

import numpy as np
import pytest
import torch
from torch import nn

from sslt_bench.config import build_config
from sslt_bench.methods.alternate import RECIPES, Alternate, AlternateConfig
from sslt_bench.methods.base import DataInfo
from sslt_bench.train.engine import lr_at
from sslt_bench.train.runner import Runner, RunSpec
from sslt_bench.train.stages import Batch, Call, PseudoLabel, StepContext, Train, TrainHead

INFO = DataInfo(10, np.arange(10, 0, -1), 55, 220, 1, 8)
TINY = ("epochs=1", "head_epochs=1", "loops=1", "loop_epochs=2", "stage3_epochs=2")


def _plan(profile="paper", **overrides):
    cfg = build_config(AlternateConfig, profile, {k: str(v) for k, v in overrides.items()})
    plan = Alternate(cfg, INFO).plan()
    stage2 = [s for s in plan if isinstance(s, Train) and s.name.startswith("loop")]
    stage3 = [s for s in plan if isinstance(s, TrainHead) and s.name.startswith("loop")]
    init = [s for s in plan if isinstance(s, TrainHead) and s.name == "classifier"]
    return cfg, stage2, stage3, init[0]


def test_paper_recipe_is_the_default_and_keeps_todays_plan():
    cfg, stage2, stage3, init = _plan()
    assert cfg.recipe == "paper" and cfg.first_epoch_target == "carry"
    for s in stage2:
        assert (s.epochs, s.lr, s.schedule, s.milestones, s.nesterov) == (
            40,
            0.1,
            "cosine",
            (),
            False,
        )
        assert s.params == ("embed", "heads.random")
    for s in stage3:  # the paper's stage 3 is decoupling's cRT, as the initialisation's
        assert (s.epochs, s.lr, s.schedule, s.features, s.bn_mode, s.reset) == (
            10,
            0.1,
            "cosine",
            "augmented",
            "train",
            False,
        )
        assert (s.features, s.bn_mode) == (init.features, init.bn_mode)
    assert init.epochs == 10
    pseudo = [s for s in Alternate(cfg, INFO).plan() if isinstance(s, PseudoLabel)]
    assert {s.view for s in pseudo} == {"none"}
    # the paper recipe follows lr and head_epochs when the user changes them
    cfg, stage2, stage3, init = _plan(lr=0.05, head_epochs=3)
    assert {s.lr for s in stage2} == {s.lr for s in stage3} == {0.05}
    assert {s.epochs for s in stage3} == {init.epochs} == {3}


def test_released_recipe_sets_every_difference():
    cfg, stage2, stage3, init = _plan(recipe="released")
    assert cfg.first_epoch_target == "uniform" and cfg.stage2_head == "balanced"
    for s in stage2:  # alternate.py: SGD(lr 0.01, nesterov), MultiStepLR([40], 0.1), 50 epochs
        assert (s.epochs, s.lr, s.schedule, s.milestones, s.step_gamma) == (
            50,
            0.01,
            "step",
            (0.8,),
            0.1,
        )
        assert s.nesterov and s.params == ("embed", "heads.balanced")
    for s in stage3:  # SGD(cls, lr 0.001), constant, 20 epochs, model.eval() on augmented images
        assert (s.epochs, s.lr, s.schedule) == (20, 0.001, "constant")
        assert (s.features, s.bn_mode, s.reset, s.head) == ("augmented", "eval", False, "balanced")
    assert (init.epochs, init.features, init.bn_mode) == (20, "augmented", "eval")
    pseudo = [s for s in Alternate(cfg, INFO).plan() if isinstance(s, PseudoLabel)]
    assert [s.view for s in pseudo] == ["weak"] * 5 + ["none"]  # final labelling: diagnostic


def test_user_values_win_over_the_recipe_one_switch_at_a_time():
    released = RECIPES["released"]
    for key, value in released.items():
        if key in ("loop_epochs", "init_head_epochs", "stage3_epochs"):
            continue
        paper = build_config(AlternateConfig, "paper")
        one = build_config(AlternateConfig, "paper", {key: value})
        assert getattr(one, key) == value
        follows = {"head_bn": {"stage3_bn"}}.get(key, set())  # paper: stage3_bn = head_bn
        others = [k for k in released if k != key and k not in follows]
        assert all(getattr(one, k) == getattr(paper, k) for k in others), key
    cfg = build_config(AlternateConfig, "paper", {"recipe": "released", "stage2_lr": "0.1"})
    assert cfg.stage2_lr == 0.1 and cfg.stage2_nesterov is True
    quick = build_config(AlternateConfig, "quick", {"recipe": "released"})
    assert quick.loop_epochs == 8  # the profile's budget wins over the recipe's 50


def test_stage2_lr_equals_the_released_multistep_schedule():
    _, stage2, _, _ = _plan(recipe="released")
    step, spe = stage2[0], 7
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.01, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[40], gamma=0.1)
    for epoch in range(50):
        want = opt.param_groups[0]["lr"]
        for i in range(spe):
            assert lr_at(step, epoch * spe + i, 50 * spe, spe) == pytest.approx(want, rel=1e-12)
        opt.step()
        sched.step()
    assert lr_at(step, 39 * spe, 50 * spe, spe) == 0.01
    assert lr_at(step, 40 * spe, 50 * spe, spe) == pytest.approx(0.001)


class _Heads(nn.Module):
    def __init__(self, want):
        super().__init__()
        self.want = want

    def forward(self, x, head="random"):
        assert head == self.want
        return x


@pytest.mark.parametrize("recipe,head", [("paper", "random"), ("released", "balanced")])
def test_stage2_loss_uses_the_recipes_head_and_uniform_reset(recipe, head):
    cfg = build_config(AlternateConfig, "paper", {"recipe": recipe})
    method = Alternate(cfg, DataInfo(3, np.array([2, 1, 1]), 2, 2, 1, 8))
    ctx = StepContext(
        model=_Heads(head),
        ema=None,
        state={},
        num_classes=3,
        labeled_counts=torch.tensor([2, 1, 1]),
        num_labeled=2,
        num_unlabeled=2,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
    )
    method.loop_start(ctx)
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    batch = Batch(x=logits, y=torch.zeros(2, dtype=torch.long), idx=torch.tensor([0, 3]))
    _, logs = method.semi_loss(batch, ctx)
    if recipe == "released":  # KL to uniform in the loop's first epoch
        want = (torch.log_softmax(logits, 1).mul(-1 / 3).sum(1) - np.log(3)).mean()
        assert logs["kl"].item() == pytest.approx(want.item(), rel=1e-5)
    else:  # carry: no previous epoch in loop 1
        assert logs["kl"].item() == 0.0


@pytest.mark.parametrize("bn", ["eval", "train"])
def test_released_stage3_trains_g_on_augmented_images_through_frozen_f(tmp_path, monkeypatch, bn):
    snaps: dict[str, dict] = {}
    original = Alternate.plan

    def snap(name):
        def fn(ctx):
            snaps[name] = {k: v.clone() for k, v in ctx.model.state_dict().items()}

        return fn

    def traced(self):
        out = []
        for s in original(self):
            if isinstance(s, TrainHead) and s.name == "loop1/classifier":
                out += [Call("before", snap("before")), s, Call("after", snap("after"))]
            else:
                out.append(s)
        return out

    monkeypatch.setattr(Alternate, "plan", traced)
    spec = RunSpec(
        method="alternate",
        dataset="digits-sslt",
        out=tmp_path,
        progress=False,
        device="cpu",
        overrides=(*TINY, "recipe=released", f"stage3_bn={bn}"),
    )
    rec = Runner(spec).run()
    assert rec["status"] == "ok"
    head_epochs = [e for e in rec["history"]["epochs"] if e["step"] == "loop1/classifier"]
    assert [e["epoch"] for e in head_epochs] == [1, 2] and {e["lr"] for e in head_epochs} == {0.001}
    before, after = snaps["before"], snaps["after"]
    assert not torch.equal(before["heads.balanced.weight"], after["heads.balanced.weight"])
    stats_moved = False
    for key, value in before.items():
        if key.startswith("heads.balanced."):
            continue
        if key.startswith("embed.") and ("running_" in key or "num_batches" in key):
            stats_moved |= not torch.equal(value, after[key])
            continue
        assert torch.equal(value, after[key]), key  # f's weights and g' never change
    assert stats_moved == (bn == "train")


def test_pseudo_labelling_view_is_seeded_and_augmented():
    from sslt_bench.data.augment import Augmenter
    from sslt_bench.data.source import TensorSource
    from sslt_bench.train.engine import embed_items

    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Flatten()
            self.feat_dim = 3 * 8 * 8

    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    src, aug, cpu = TensorSource(images), Augmenter((0.5,) * 3, (0.25,) * 3, 2, True, "cpu"), "cpu"
    idx = np.arange(6)
    plain = embed_items(Flat(), src, idx, aug, torch.device(cpu))
    assert torch.allclose(plain, aug(images, "none", torch.Generator()).flatten(1))
    weak = embed_items(Flat(), src, idx, aug, torch.device(cpu), view="weak", seed=3)
    again = embed_items(Flat(), src, idx, aug, torch.device(cpu), view="weak", seed=3)
    assert torch.equal(weak, again) and not torch.equal(weak, plain)
