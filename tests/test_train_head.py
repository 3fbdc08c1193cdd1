"""Classifier re-training (TrainHead): cached features vs augmented images (Kang et al.'s cRT)."""

import pytest
import torch

from sslt_bench.config import build_config
from sslt_bench.methods.decoupling import DecouplingConfig
from sslt_bench.train import session as session_mod
from sslt_bench.train.engine import epoch_draws
from sslt_bench.train.runner import Runner, RunSpec
from sslt_bench.train.samplers import balanced_epoch_size, epoch_order
from sslt_bench.train.stages import TrainHead


def _states_around_steps(tmp_path, monkeypatch, overrides):
    """Run decoupling on digits; the model's state before and after each plan step."""
    states = []
    original = session_mod.Session.run_step

    def spy(self, step):
        before = {k: v.clone() for k, v in self.ctx.model.state_dict().items()}
        original(self, step)
        after = {k: v.clone() for k, v in self.ctx.model.state_dict().items()}
        states.append((step, before, after))

    monkeypatch.setattr(session_mod.Session, "run_step", spy)
    spec = RunSpec(
        method="decoupling",
        dataset="digits-sslt",
        out=tmp_path,
        progress=False,
        device="cpu",
        overrides=("epochs=1", "head_epochs=1", *overrides),
    )
    rec = Runner(spec).run()
    assert rec["status"] == "ok"
    (head_step,) = [s for s in states if isinstance(s[0], TrainHead)]
    return head_step


def _changed(before, after, prefix, kind):
    keys = [k for k in before if k.startswith(prefix) and kind(k)]
    assert keys
    return {k for k in keys if not torch.equal(before[k], after[k])}


def _is_bn_stat(k):
    return k.endswith(("running_mean", "running_var"))


@pytest.mark.parametrize(
    ("features", "bn", "bn_stats_move"),
    [("augmented", "train", True), ("augmented", "eval", False), ("cached", "train", False)],
)
def test_crt_trains_only_the_head_and_bn_follows_the_mode(
    tmp_path, monkeypatch, features, bn, bn_stats_move
):
    step, before, after = _states_around_steps(
        tmp_path, monkeypatch, (f"head_features={features}", f"head_bn={bn}")
    )
    assert step.features == features and step.bn_mode == bn
    weights = _changed(
        before, after, "embed.", lambda k: not _is_bn_stat(k) and "num_batches" not in k
    )
    assert weights == set()  # the embedding is frozen
    stats = _changed(before, after, "embed.", _is_bn_stat)
    assert bool(stats) == bn_stats_move  # reference cRT: batch statistics, running ones updated
    assert _changed(before, after, "heads.balanced.", lambda k: True)  # g trained
    assert _changed(before, after, "heads.random.", lambda k: True) == set()  # g' untouched


def test_profiles_reference_crt_for_paper_cached_for_quick():
    paper, quick = build_config(DecouplingConfig, "paper"), build_config(DecouplingConfig, "quick")
    assert (paper.head_features, paper.head_bn, paper.head_epoch_size) == (
        "augmented",
        "train",
        "pool",
    )
    assert quick.head_features == "cached"


def test_balanced_epoch_has_largest_class_times_classes_draws():
    labels = torch.tensor([0] * 7 + [1] * 3 + [3] * 1)  # class 2 absent: C present = 3
    assert balanced_epoch_size(labels, 4) == 21
    gen = torch.Generator().manual_seed(0)
    order = epoch_order(labels, "class_balanced", gen, 4, size=21)
    assert len(order) == 21
    per_class = torch.bincount(labels[order], minlength=4)
    assert per_class[2] == 0 and per_class.sum() == 21
    assert len(epoch_order(labels, "random", gen, 4, size=25)) == 25
    step = TrainHead("c", "balanced", 1, epoch_size="balanced")
    assert epoch_draws(step, labels, 4) == 21
    assert epoch_draws(TrainHead("c", "balanced", 1), labels, 4) is None  # pool: |pool| draws
    random_epoch = epoch_order(labels, "random", gen, 4, size=22)
    assert torch.equal(torch.bincount(random_epoch, minlength=11), torch.full((11,), 2))


def test_interrupted_inside_a_cached_feature_head_resumes_bit_identical(tmp_path, monkeypatch):
    """A head on cached features is an ordinary step: checkpointed per epoch, resumable."""
    import sslt_bench.train.runner as runner_mod
    from sslt_bench.train.checkpoint import save_checkpoint

    def spec(out):
        overrides = ("epochs=2", "head_epochs=3", "head_features=cached")
        return RunSpec(method="decoupling", overrides=overrides, out=out, progress=False)

    ref = Runner(spec(tmp_path / "ref")).run()

    def interrupt_after_head_epoch_1(path, payload):
        save_checkpoint(path, payload)
        if (payload["progress"]["step"], payload["progress"]["epoch"]) == (1, 1):
            raise KeyboardInterrupt

    monkeypatch.setattr(runner_mod, "save_checkpoint", interrupt_after_head_epoch_1)
    with pytest.raises(KeyboardInterrupt):
        Runner(spec(tmp_path / "cut")).run()
    monkeypatch.setattr(runner_mod, "save_checkpoint", save_checkpoint)
    resumed = Runner(spec(tmp_path / "cut")).run()
    assert resumed["resumed_from"]["step"] == 1 and resumed["resumed_from"]["epoch"] == 1
    assert resumed["metrics"] == ref["metrics"]
    assert resumed["init_hashes"] == ref["init_hashes"]  # weights after every step, bit for bit
    head = [e for e in resumed["history"]["epochs"] if e["step"] == "classifier"]
    assert [e["epoch"] for e in head] == [1, 2, 3]
    assert head == [e for e in ref["history"]["epochs"] if e["step"] == "classifier"]
