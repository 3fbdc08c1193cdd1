"""Salsa: rotation batches, the frozen lower layers, the re-initialisation and the plan."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sslt_bench.config import build_config
from sslt_bench.methods.base import DataInfo
from sslt_bench.methods.salsa import SNAP, Salsa, SalsaConfig, frozen_params, rotate_batch
from sslt_bench.models import build_model
from sslt_bench.train.stages import (
    Batch,
    Call,
    Evaluate,
    PseudoLabel,
    StepContext,
    Train,
    TrainHead,
)


def test_rotate_batch_by_hand():
    x = torch.arange(2 * 9, dtype=torch.float32).reshape(2, 1, 3, 3)
    rotated, labels = rotate_batch(x)
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    a = x[0, 0]  # [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert torch.equal(rotated[0, 0], a)
    # 90 degrees counter-clockwise: the last column becomes the first row.
    assert rotated[2, 0].tolist() == [[2, 5, 8], [1, 4, 7], [0, 3, 6]]
    assert torch.equal(rotated[4, 0], a.flip(0).flip(1))  # 180 degrees
    assert rotated[6, 0].tolist() == [[6, 3, 0], [7, 4, 1], [8, 5, 2]]  # 270 degrees
    assert torch.equal(rotated[3], torch.rot90(x[1], 1, dims=(1, 2)))  # second image, k = 1


def _setup(loops: int = 2, freeze: float = 0.5):
    cfg = build_config(SalsaConfig, "paper", {"loops": loops, "freeze_fraction": freeze})
    info = DataInfo(3, np.array([6, 3, 1]), 10, 30, 1, 8)
    method = Salsa(cfg, info)
    torch.manual_seed(0)
    model = build_model("small-cnn", 1, 8, 3, {"random": "linear"}, Salsa.extra_heads)
    ctx = StepContext(
        model=model,
        ema=None,
        state={},
        num_classes=3,
        labeled_counts=torch.tensor([6, 3, 1]),
        num_labeled=10,
        num_unlabeled=30,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
    )
    return method, model, ctx


def _clone(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_frozen_params_are_a_prefix_of_whole_layers():
    _, model, _ = _setup()
    body = model.embed.body  # conv, bn, conv, bn, (pool), conv, bn
    frozen = frozen_params(model.embed, 0.5)
    want = [body[0][0].weight, body[0][1].weight, body[0][1].bias, body[1][0].weight]
    assert [id(p) for p in frozen] == [id(p) for p in want]
    assert frozen_params(model.embed, 0.0) == []
    assert len(frozen_params(model.embed, 1.0)) == len(list(model.embed.parameters()))


def test_reinit_resets_embedding_and_classifier_only():
    method, model, ctx = _setup()
    method.snapshot(ctx)
    ssl = _clone(model.embed)
    with torch.no_grad():  # stand-in for the phases after the snapshot
        for t in [*model.parameters(), *model.embed.buffers()]:
            t.add_(torch.rand_like(t.float()).to(t.dtype) + 1)
    trained_embed, trained_cls = _clone(model.embed), _clone(model.heads["random"])
    rotation = _clone(model.heads["rotation"])
    method.reinit(ctx)
    for k, v in model.embed.state_dict().items():  # back to the self-supervised weights
        assert torch.equal(v, ssl[k]) and not torch.equal(v, trained_embed[k]), k
    for k, v in model.heads["random"].state_dict().items():  # fresh classifier
        assert not torch.equal(v, trained_cls[k]) and v.abs().max() < 1, k
    for k, v in model.heads["rotation"].state_dict().items():  # untouched
        assert torch.equal(v, rotation[k]), k
    assert torch.equal(ctx.state["salsa_prev"], torch.full((40, 3), 1 / 3))
    assert all(torch.equal(ctx.state[SNAP + k], v) for k, v in ssl.items())


@pytest.mark.parametrize("step_name", ["loop1/supervised", "loop1/semi"])
def test_training_phases_leave_the_frozen_layers_bit_identical(step_name):
    """The steps declare the frozen layers; the runner's parameter choice keeps them fixed."""
    from sslt_bench.train.session import trained_params

    method, model, ctx = _setup()
    step = next(s for s in method.plan() if s.name == step_name)
    if step_name == "loop1/semi":  # the semi-supervised phase starts after a re-initialisation
        method.snapshot(ctx)
        method.reinit(ctx)
    everything = [*model.embed.parameters(), *model.heads["random"].parameters()]
    before = {id(p): p.detach().clone() for p in everything}
    frozen = {id(p) for p in frozen_params(model.embed, 0.5)}
    assert frozen and step.frozen is not None
    params = trained_params(model, step)  # what the runner does at the Train step's start
    assert {id(p) for p in params} == {id(p) for p in everything} - frozen
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    g = torch.Generator().manual_seed(2)
    batch = Batch(
        x=torch.randn(8, 1, 8, 8, generator=g),
        y=torch.tensor([0, 1, 2, 0] * 2),
        idx=torch.tensor([0, 3, 9, 12, 20, 25, 33, 39]),
        num_labeled=10,
    )
    for _ in range(2):
        out = step.loss(batch, ctx)
        loss = out[0] if isinstance(out, tuple) else out
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    for p in everything:
        same = torch.equal(p.detach(), before[id(p)])
        assert same == (id(p) in frozen)


def test_semi_loss_mixes_label_and_previous_prediction():
    method, model, ctx = _setup()
    method.snapshot(ctx)
    method.reinit(ctx)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    idx, y = torch.tensor([1, 11, 12, 30]), torch.tensor([2, 0, 1, 1])
    batch = Batch(x=x, y=y, idx=idx, num_labeled=10)
    ctx.state["salsa_prev"][11] = torch.tensor([0.2, 0.2, 0.6])
    loss, _ = method.semi_loss(batch, ctx)
    with torch.no_grad():  # same weights, same batch (train-mode BN): the same logits
        logits = model(x, "random")
    target = 0.5 * F.one_hot(y, 3).float() + 0.5 * torch.full((4, 3), 1 / 3)
    target[1] = 0.5 * torch.tensor([1.0, 0, 0]) + 0.5 * torch.tensor([0.2, 0.2, 0.6])
    soft_ce = -(target * F.log_softmax(logits, 1)).sum(1).mean()
    entropy = -(target * target.log()).sum(1).mean()
    assert math.isclose(loss.item() + entropy.item(), soft_ce.item(), rel_tol=1e-4)
    assert torch.allclose(ctx.state["salsa_prev"][idx], F.softmax(logits, 1), atol=1e-5)
    assert torch.equal(ctx.state["salsa_prev"][0], torch.full((3,), 1 / 3))


def test_plan_alternates_with_reinitialisation():
    method, _, _ = _setup(loops=3)
    steps = method.plan()
    names = [s.name for s in steps]
    loop = ["pseudo", "reinit", "semi", "eval"]
    assert names == [
        "ssl/rotation",
        "ssl/snapshot",
        "loop1/supervised",
        *(f"loop1/{n}" for n in loop),
        *(f"loop{k}/{n}" for k in (2, 3) for n in ["supervised", *loop]),
    ]
    rot = steps[0]
    assert isinstance(rot, Train) and rot.unlabeled.include_labeled and rot.nesterov
    assert rot.steps_per_epoch == math.ceil(40 / 128) and rot.params == ("embed", "heads.rotation")
    sup1 = steps[2]
    assert (sup1.lr, sup1.schedule, sup1.pool) == (0.005, "constant", "labeled")
    by_name = dict(zip(names, steps, strict=True))
    head = by_name["loop2/supervised"]
    assert isinstance(head, TrainHead) and not head.reset and head.sampling == "random"
    assert head.lr == 0.001 and head.epochs == 100
    assert (
        isinstance(by_name["loop2/pseudo"], PseudoLabel)
        and by_name["loop2/pseudo"].head == "random"
    )
    assert isinstance(by_name["loop2/reinit"], Call) and isinstance(by_name["loop3/eval"], Evaluate)
    semi = by_name["loop3/semi"]
    assert (semi.pool, semi.lr, semi.epochs, semi.nesterov) == ("labeled+pseudo", 0.01, 10, True)
    assert Salsa.eval_head == "random" and not Salsa.eval_ema
