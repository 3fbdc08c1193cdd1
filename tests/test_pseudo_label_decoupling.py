"""Pseudo-Label + Decoupling: its plan is alternate's with one loop and plain CE."""

import numpy as np
import pytest
import torch

from sslt_bench.config import build_config
from sslt_bench.errors import UsageError
from sslt_bench.methods.alternate import Alternate, AlternateConfig
from sslt_bench.methods.base import DataInfo
from sslt_bench.methods.decoupling import Decoupling
from sslt_bench.methods.pseudo_label_decoupling import (
    PseudoLabelDecoupling,
    PseudoLabelDecouplingConfig,
)
from sslt_bench.train.runner import Runner, RunSpec
from sslt_bench.train.stages import Call

INFO = DataInfo(10, np.arange(10, 0, -1), 55, 220, 1, 8)


def test_plan_is_one_alternate_loop_without_kl():
    plan = PseudoLabelDecoupling(build_config(PseudoLabelDecouplingConfig, "paper"), INFO).plan()
    kinds = [type(s).__name__ for s in plan]
    assert kinds == [
        "Train",
        "TrainHead",
        "Evaluate",
        "PseudoLabel",
        "Train",
        "TrainHead",
        "Evaluate",
        "PseudoLabel",
    ]
    init, cls0, _, pseudo, tune, cls1, _, final = plan
    assert init.epochs == 200 and init.pool == "labeled" and init.sampling == "random"
    assert cls0.head == "balanced" and cls0.sampling == "class_balanced" and cls0.reset
    assert pseudo.head == "balanced" and pseudo.key == "pseudo"
    assert tune.epochs == 200 and tune.pool == "labeled+pseudo" and tune.sampling == "random"
    assert tune.params == ("embed", "heads.random") and tune.on_epoch_end is None
    assert cls1.pool == "labeled+pseudo" and cls1.sampling == "class_balanced" and cls1.reset
    assert cls0.features == cls1.features == "augmented" and cls0.bn_mode == cls1.bn_mode == "train"
    assert final.key == "pseudo_final"  # diagnostic only: not the key training reads
    assert not any(isinstance(s, Call) for s in plan)


def test_quick_profile_matches_decoupling_init_and_alternate_stage2_budget():
    quick = build_config(PseudoLabelDecouplingConfig, "quick")
    alt = build_config(AlternateConfig, "quick")
    dec = build_config(Decoupling.Config, "quick")
    assert quick.epochs == alt.epochs == dec.epochs
    assert quick.head_epochs == alt.head_epochs == dec.head_epochs
    assert quick.finetune_epochs == alt.loops * alt.loop_epochs
    plan_alt = Alternate(alt, INFO).plan()
    plan_pld = PseudoLabelDecoupling(quick, INFO).plan()
    for a, b in zip(plan_alt[:3], plan_pld[:3], strict=True):  # init steps and first eval
        assert (type(a), a.name, getattr(a, "epochs", None)) == (
            type(b),
            b.name,
            getattr(b, "epochs", None),
        )
    with pytest.raises(UsageError, match="finetune_epochs"):
        build_config(PseudoLabelDecouplingConfig, "paper", {"finetune_epochs": "0"})


def test_runs_on_digits_with_diagnostics(tmp_path):
    spec = RunSpec(
        method="pseudo-label+decoupling",
        dataset="digits-sslt",
        out=tmp_path,
        progress=False,
        device="cpu",
        overrides=("epochs=2", "head_epochs=2", "finetune_epochs=2"),
    )
    rec = Runner(spec).run()
    assert rec["status"] == "ok"
    hist = rec["history"]
    assert [e["step"] for e in hist["pseudo_labels"]] == ["loop1/pseudo", "final/pseudo"]
    assert [e["step"] for e in hist["evals"]] == ["init/eval", "loop1/eval"]
    tune = [e for e in hist["epochs"] if e["step"] == "loop1/embed"]
    assert len(tune) == 2 and "kl" not in tune[0]


@pytest.mark.parametrize("pool", ["labeled+pseudo", "labeled"])
def test_classifier_pool_is_what_the_last_classifier_trains_on(tmp_path, monkeypatch, pool):
    """labeled+pseudo: g's re-training sees D's labels then U's pseudo labels; labeled: D."""
    from sslt_bench.train import session as session_mod

    calls = []
    original = session_mod.train_epoch

    def spy(step, ctx, loader, pool, *args, **kwargs):
        if isinstance(loader, session_mod.FeatureLoader):  # a head trained on cached features
            ids, labels = pool
            calls.append((step.name, int((loader.rows >= 0).sum()), labels.clone()))
            assert len(ids) == len(labels) == loader.feats.shape[0]
        return original(step, ctx, loader, pool, *args, **kwargs)

    monkeypatch.setattr(session_mod, "train_epoch", spy)
    spec = RunSpec(
        method="pseudo-label+decoupling",
        dataset="digits-sslt",
        out=tmp_path,
        progress=False,
        device="cpu",
        overrides=(
            "epochs=1",
            "head_epochs=1",
            "finetune_epochs=1",
            "head_features=cached",
            f"classifier_pool={pool}",
        ),
    )
    rec = Runner(spec).run()
    ckpt = tmp_path / "checkpoints" / f"{rec['run_id']}.pt"
    pseudo = torch.load(ckpt, weights_only=True)["state"]["pseudo"]
    (init_name, n_l, d_labels), (name, n, labels) = calls
    assert (init_name, name) == ("classifier", "loop1/classifier")
    assert n_l == rec["split"]["labeled"] == len(d_labels)
    assert torch.equal(labels[:n_l], d_labels)
    if pool == "labeled":
        assert n == n_l
    else:
        assert n == n_l + len(pseudo) and torch.equal(labels[n_l:], pseudo)
