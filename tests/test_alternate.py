"""The alternate method: KL temporal consistency, its memory, stage 3, hidden labels, end to end."""

import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sslt_bench.config import build_config
from sslt_bench.data.split import Split
from sslt_bench.errors import UsageError
from sslt_bench.methods.alternate import Alternate, AlternateConfig
from sslt_bench.methods.base import DataInfo
from sslt_bench.train.losses import kl_consistency
from sslt_bench.train.metrics import accuracy_report
from sslt_bench.train.runner import Runner, RunSpec
from sslt_bench.train.stages import Batch, Call, PseudoLabel, StepContext, Train, TrainHead

TINY = ("epochs=2", "head_epochs=2", "loops=2", "loop_epochs=2")


# -- the KL term -------------------------------------------------------------------------------
def test_kl_zero_when_epochs_agree():
    logits = torch.randn(6, 5)
    target = torch.softmax(logits, 1)
    assert kl_consistency(logits, target).abs().item() < 1e-6


def test_kl_matches_hand_computed_value():
    p_now = torch.tensor([[0.5, 0.25, 0.25], [0.2, 0.3, 0.5]])
    p_prev = torch.tensor([[0.25, 0.5, 0.25], [1.0, 0.0, 0.0]])
    # KL(prev || now) of row 0 = .25 ln(.25/.5) + .5 ln(.5/.25) + .25 ln 1 = .25 ln 2;
    # row 1 = 1 * ln(1 / .2) (zero-probability target entries contribute 0).
    kl = kl_consistency(p_now.log(), p_prev)
    assert kl.item() == pytest.approx((0.25 * math.log(2) + math.log(5)) / 2, rel=1e-5)
    masked = kl_consistency(p_now.log(), p_prev, torch.tensor([True, False]))
    assert masked.item() == pytest.approx(0.25 * math.log(2) / 2, rel=1e-5)  # mean over batch
    assert kl_consistency(p_now.log(), p_prev, torch.tensor([False, False])).item() == 0.0


class _Logits(nn.Module):
    """A 'model' whose logits are the batch itself, so the loss sees chosen predictions."""

    def forward(self, x, head="random"):
        assert head == "random"  # stage 2 trains g' only
        return x


def _method_and_ctx(first: str, n: int = 4, c: int = 3):
    cfg = build_config(AlternateConfig, "paper", {"first_epoch_target": first})
    info = DataInfo(c, np.array([2, 1, 1]), 2, n - 2, 1, 8)
    ctx = StepContext(
        model=_Logits(),
        ema=None,
        state={},
        num_classes=c,
        labeled_counts=torch.tensor([2, 1, 1]),
        num_labeled=2,
        num_unlabeled=n - 2,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
    )
    return Alternate(cfg, info), ctx


def _step(method, ctx, logits, idx):
    batch = Batch(x=logits, y=torch.zeros(len(idx), dtype=torch.long), idx=torch.tensor(idx))
    _, logs = method.semi_loss(batch, ctx)
    return logs["kl"].item()


def _kl(prev, logits):
    return float((prev * (prev.log() - torch.log_softmax(logits, 1))).sum(1).mean())


@pytest.mark.parametrize("first", ["carry", "uniform", "skip"])
def test_memory_and_first_epoch_of_a_loop(first):
    method, ctx = _method_and_ctx(first)
    e1, e2, e3 = (torch.randn(4, 3, generator=torch.Generator().manual_seed(s)) for s in (1, 2, 3))
    uniform = torch.full((4, 3), 1 / 3)
    # loop 1, epoch 1: no previous probabilities of g' exist
    method.loop_start(ctx)
    kl = _step(method, ctx, e1, [0, 1, 2, 3])
    assert kl == (pytest.approx(_kl(uniform, e1), rel=1e-5) if first == "uniform" else 0.0)
    method.roll_epoch(ctx)
    # epoch 2: previous = epoch 1's probabilities; item 3 is not seen this epoch
    assert _step(method, ctx, e2[:3], [0, 1, 2]) == pytest.approx(
        _kl(torch.softmax(e1[:3], 1), e2[:3]), rel=1e-5
    )
    method.roll_epoch(ctx)
    prev = torch.cat([torch.softmax(e2[:3], 1), torch.softmax(e1[3:], 1)])  # item 3 kept
    assert torch.allclose(ctx.state["tc_prev"], prev)
    # loop 2, epoch 1: carry -> the last stage-2 epoch; uniform -> uniform; skip -> no term
    method.loop_start(ctx)
    kl = _step(method, ctx, e3, [0, 1, 2, 3])
    expected = {"carry": _kl(prev, e3), "uniform": _kl(uniform, e3), "skip": 0.0}[first]
    assert kl == pytest.approx(expected, rel=1e-5, abs=1e-7)


def test_kl_weight_scales_the_term_and_gradient_flows():
    method, ctx = _method_and_ctx("uniform")
    method.loop_start(ctx)
    logits = torch.randn(4, 3, requires_grad=True)
    batch = Batch(x=logits, y=torch.tensor([0, 1, 2, 0]), idx=torch.arange(4))
    loss, logs = method.semi_loss(batch, ctx)
    assert loss.item() == pytest.approx(logs["ce"].item() + logs["kl"].item(), rel=1e-6)
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


# -- plan and config ---------------------------------------------------------------------------
def test_ablation_fields_shape_the_plan():
    info = DataInfo(10, np.arange(10, 0, -1), 55, 220, 1, 8)
    cfg = build_config(
        AlternateConfig,
        "paper",
        {
            "loops": "3",
            "stage2_sampling": "class_balanced",
            "stage3_sampling": "random",
            "classifier_pool": "labeled+pseudo",
            "embed_uses_unlabeled": "false",
        },
    )
    plan = Alternate(cfg, info).plan()
    stage2 = [s for s in plan if isinstance(s, Train) and s.name.startswith("loop")]
    stage3 = [s for s in plan if isinstance(s, TrainHead) and s.name.startswith("loop")]
    assert len(stage2) == len(stage3) == 3
    assert all(s.sampling == "class_balanced" and s.pool == "labeled" for s in stage2)
    assert all(s.params == ("embed", "heads.random") for s in stage2)
    assert all(s.sampling == "random" and s.pool == "labeled+pseudo" for s in stage3)
    assert all(s.head == "balanced" and not s.reset for s in stage3)
    default = Alternate(build_config(AlternateConfig, "paper"), info).plan()
    assert [s.epochs for s in default if isinstance(s, Train)] == [200] + [40] * 5
    assert [s.head for s in default if isinstance(s, PseudoLabel)] == ["balanced"] * 6
    with pytest.raises(UsageError, match="class_balanced"):
        build_config(AlternateConfig, "paper", {"stage2_sampling": "balanced"})
    with pytest.raises(UsageError, match="loops"):
        build_config(AlternateConfig, "paper", {"loops": "0"})


# -- runs on digits-sslt -----------------------------------------------------------------------
def _spec(tmp_path, *extra):
    return RunSpec(
        method="alternate",
        dataset="digits-sslt",
        out=tmp_path,
        progress=False,
        device="cpu",
        overrides=(*TINY, *extra),
    )


def test_end_to_end_stage3_freezes_f_and_diagnostics_are_recorded(tmp_path, monkeypatch, capsys):
    snaps: dict[str, dict] = {}
    original = Alternate.plan

    def snapshot(name):
        def fn(ctx):
            snaps[name] = {k: v.clone() for k, v in ctx.model.state_dict().items()}

        return fn

    def traced_plan(self):
        steps = []
        for s in original(self):
            if isinstance(s, TrainHead) and s.name.startswith("loop"):
                steps += [Call(f"{s.name}/before", snapshot(f"{s.name}/before")), s]
                steps.append(Call(f"{s.name}/after", snapshot(f"{s.name}/after")))
            else:
                steps.append(s)
        return steps

    monkeypatch.setattr(Alternate, "plan", traced_plan)
    rec = Runner(_spec(tmp_path)).run()
    assert rec["status"] == "ok"
    for k in (1, 2):
        before, after = snaps[f"loop{k}/classifier/before"], snaps[f"loop{k}/classifier/after"]
        for key, value in before.items():
            if key.startswith("heads.balanced."):
                continue
            assert torch.equal(value, after[key]), key  # f (incl. BN buffers) and g' untouched
        assert not torch.equal(before["heads.balanced.weight"], after["heads.balanced.weight"])

    hist = rec["history"]
    assert [e["step"] for e in hist["pseudo_labels"]] == [
        "loop1/pseudo",
        "loop2/pseudo",
        "final/pseudo",
    ]
    assert [e["step"] for e in hist["evals"]] == ["init/eval", "loop1/eval", "loop2/eval"]
    for entry in hist["pseudo_labels"] + hist["evals"]:
        for key in ("overall", "many", "medium", "few"):
            assert 0.0 <= entry[key] <= 100.0
    assert hist["evals"][-1]["overall"] == rec["metrics"]["overall"]
    kl = [e["kl"] for e in hist["epochs"] if e["step"].endswith("/embed")]
    assert kl[0] == 0.0 and all(v > 0 for v in kl[1:])  # carry: no target in loop 1 epoch 1

    from sslt_bench.cli.main import _print_result

    _print_result(rec)
    out = capsys.readouterr().out
    assert "pseudo-labels [loop2/pseudo]" in out and "test [init/eval]" in out


class _TracedSplit(Split):
    reads: list = []

    def __getattribute__(self, name):
        if name == "unlabeled_y_hidden":
            frame = sys._getframe(1)
            _TracedSplit.reads.append(
                (os.path.basename(frame.f_code.co_filename), frame.f_code.co_name)
            )
        return object.__getattribute__(self, name)


def test_hidden_labels_of_u_only_feed_the_diagnostics(tmp_path, monkeypatch):
    load = Runner._load_data
    fields = [f for f in Split.__dataclass_fields__]
    labels: dict[str, np.ndarray] = {}
    class_split = np.zeros(10, dtype=np.int64)

    def run(out, permute):
        def patched(self):
            data = load(self)
            kw = {f: getattr(data.split, f) for f in fields}
            if permute:  # wrong hidden labels: training must not notice
                kw["unlabeled_y_hidden"] = np.roll(kw["unlabeled_y_hidden"], 7)
            data.split = _TracedSplit(**kw)
            labels[out.name] = kw["unlabeled_y_hidden"]
            class_split[:] = kw["class_split"]
            _TracedSplit.reads.clear()
            return data

        monkeypatch.setattr(Runner, "_load_data", patched)
        rec = Runner(_spec(out)).run()
        ckpt = Path(out) / "checkpoints" / f"{rec['run_id']}.pt"
        return (
            rec,
            torch.load(ckpt, map_location="cpu", weights_only=True),
            list(_TracedSplit.reads),
        )

    rec_a, ck_a, reads = run(tmp_path / "a", False)
    readers = {r for r in reads if r[0] != "split.py"}  # split.py: hash and summary counts
    # only the runner's diagnostics read them: per PseudoLabel step and U scoring (session_diag)
    assert readers == {("session.py", "_pseudo_label"), ("session_diag.py", "score_u")}, readers
    assert reads.count(("session.py", "_pseudo_label")) == 3  # per PseudoLabel: loops + final

    rec_b, ck_b, _ = run(tmp_path / "b", True)
    for key, value in ck_a["model"].items():
        assert torch.equal(value, ck_b["model"][key]), key
    for key in ("pseudo", "pseudo_final", "tc_prev"):
        assert torch.equal(ck_a["state"][key], ck_b["state"][key]), key
    assert rec_a["metrics"]["per_class"] == rec_b["metrics"]["per_class"]
    # the diagnostics are computed from the labels each run was given (true, then permuted)
    for rec, ck, hidden in ((rec_a, ck_a, labels["a"]), (rec_b, ck_b, labels["b"])):
        entries = rec["history"]["pseudo_labels"][1:]
        for entry, key in zip(entries, ("pseudo", "pseudo_final"), strict=True):
            want = accuracy_report(ck["state"][key].numpy(), hidden, class_split, 10)
            assert entry["per_class"] == want["per_class"]


def test_resume_mid_loop_restores_the_probability_memory(tmp_path, monkeypatch):
    overrides = ("epochs=1", "head_epochs=1")
    ref = Runner(_spec(tmp_path / "ref", *overrides)).run()
    roll = Alternate.roll_epoch
    calls = {"n": 0}

    def crash_once(ctx):
        roll(ctx)
        calls["n"] += 1
        if calls["n"] == 3:  # loop 2, after its first stage-2 epoch (checkpoint not yet written)
            raise KeyboardInterrupt

    monkeypatch.setattr(Alternate, "roll_epoch", staticmethod(crash_once))
    with pytest.raises(KeyboardInterrupt):
        Runner(_spec(tmp_path / "res", *overrides)).run()
    monkeypatch.setattr(Alternate, "roll_epoch", staticmethod(roll))
    rec = Runner(_spec(tmp_path / "res", *overrides)).run()
    assert rec["resumed_from"] is not None
    ck = [
        torch.load(Path(d) / "checkpoints" / f"{r['run_id']}.pt", weights_only=True)
        for d, r in ((tmp_path / "ref", ref), (tmp_path / "res", rec))
    ]
    for key in ("tc_prev", "tc_has_prev", "pseudo"):
        assert torch.equal(ck[0]["state"][key], ck[1]["state"][key]), key
    for key, value in ck[0]["model"].items():
        assert torch.equal(value, ck[1]["model"][key]), key
    assert [e.get("kl") for e in ref["history"]["epochs"]] == [
        e.get("kl") for e in rec["history"]["epochs"]
    ]
