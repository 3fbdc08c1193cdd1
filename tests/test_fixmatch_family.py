"""The FixMatch family: DARP, ABC, SAW and ACR mechanisms by hand; U's labels never read."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from sslt_bench.config import build_config
from sslt_bench.methods.acr import Acr, AcrConfig, acr_tau, anchor_divergences
from sslt_bench.methods.base import DataInfo
from sslt_bench.methods.fixmatch_abc import FixMatchAbc, unlabeled_keep_prob
from sslt_bench.methods.fixmatch_core import FixMatchFamily
from sslt_bench.methods.fixmatch_darp import (
    CONF,
    REFINED,
    DarpConfig,
    FixMatchDarp,
    accepted_estimate,
    refine,
    scale_by_target,
    shift_estimate,
)
from sslt_bench.methods.fixmatch_saw import BANK, WEIGHTS, FixMatchSaw, SawConfig, saw_weights
from sslt_bench.registry import METHODS
from sslt_bench.train.runner import Runner, RunSpec
from sslt_bench.train.ssl_parts import balanced_keep_prob, bank_update, bernoulli_mask
from sslt_bench.train.stages import Batch, StepContext


def _ctx(counts=(4, 2, 1), num_unlabeled=8, state=None, epoch=0, epochs=1) -> StepContext:
    counts = torch.tensor(counts)
    return StepContext(
        model=None,
        ema=None,
        state=state if state is not None else {},
        num_classes=len(counts),
        labeled_counts=counts,
        num_labeled=int(counts.sum()),
        num_unlabeled=num_unlabeled,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        epoch=epoch,
        epochs=epochs,
    )


def _method(cls, cfg_cls, counts=(4, 2, 1), **overrides):
    cfg = build_config(cfg_cls, "paper", {k: str(v) for k, v in overrides.items()})
    return cls(cfg, DataInfo(len(counts), np.array(counts), int(sum(counts)), 8, 3, 2))


# --- DARP -------------------------------------------------------------------------------------


def test_darp_refined_distribution_matches_the_target():
    g = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(300, 3, generator=g) + torch.tensor([2.0, 0.5, -1.0]), 1)
    target = torch.tensor([100.0, 100.0, 100.0])
    assert (probs.sum(0) - target).abs().max() > 50  # far from the target before refinement
    out = refine(probs, target, rounds=10, tol=1e-10)
    assert torch.allclose(out.sum(1), torch.ones(300), atol=1e-5)  # rows stay distributions
    assert torch.allclose(out.sum(0), target, rtol=1e-3)  # columns match the target
    refined = refine(scale_by_target(probs, target, 2.0), target, 10)
    assert torch.allclose(refined.sum(0), target, rtol=1e-2)  # the code's path: scaling + T=10
    before = (torch.bincount(probs.argmax(1), minlength=3) - 100).abs().max()
    after = (torch.bincount(refined.argmax(1), minlength=3) - 100).abs().max()
    assert after < before / 3  # hard pseudo labels far closer to the target too


def test_darp_shift_estimate_inverts_the_confusion():
    confusion = torch.tensor([[8.0, 1.0], [2.0, 9.0]])  # column j: predictions on class j
    q = torch.tensor([30.0, 70.0])
    u_sum = (confusion / confusion.sum(0)) @ q
    assert torch.allclose(shift_estimate(confusion, u_sum).float(), q, atol=1e-4)


def test_darp_accepts_an_epoch_estimate_as_the_code_does():
    confusion = torch.tensor([[8.0, 1.0], [2.0, 9.0]])
    u_sum = (confusion / confusion.sum(0)) @ torch.tensor([30.0, 70.0])
    assert accepted_estimate(confusion, u_sum, 100.0).tolist() == pytest.approx([0.3, 0.7])
    assert accepted_estimate(confusion, u_sum, 1.4) is None  # condition number 1.456 >= 1.4
    negative = (confusion / confusion.sum(0)) @ torch.tensor([-10.0, 110.0])
    assert shift_estimate(confusion, negative)[0] < 0  # the raw estimate keeps its sign
    assert accepted_estimate(confusion, negative, 100.0) is None  # rejected, not clipped
    unseen = torch.tensor([[8.0, 0.0], [2.0, 0.0]])  # class 1 never in a labeled batch
    assert accepted_estimate(unseen, u_sum, 100.0) is None


def test_darp_target_is_the_mean_of_accepted_epoch_estimates():
    m = _method(FixMatchDarp, DarpConfig, counts=(3, 1))
    ctx = _ctx(counts=(3, 1), num_unlabeled=100)
    confusion = torch.tensor([[8.0, 1.0], [2.0, 9.0]])
    norm = confusion / confusion.sum(0)

    def epoch(q: list[float]) -> None:  # one epoch: U's bank predicts norm @ q in total
        per_item = (norm @ torch.tensor(q)) / 100
        bank_update(ctx.state, "darp:bank", torch.arange(4, 104), per_item.expand(100, 2), 104)
        ctx.state[CONF] = confusion.clone()
        m.estimate(ctx)

    assert m.target(ctx).tolist() == pytest.approx([75.0, 25.0])  # D's 3 : 1 before any
    epoch([20.0, 80.0])
    assert m.target(ctx).tolist() == pytest.approx([20.0, 80.0], abs=1e-3)
    assert CONF not in ctx.state  # each epoch's confusion starts afresh
    epoch([-10.0, 110.0])  # a negative estimate: rejected, the target stays
    assert m.target(ctx).tolist() == pytest.approx([20.0, 80.0], abs=1e-3)
    epoch([40.0, 60.0])
    assert m.target(ctx).tolist() == pytest.approx([30.0, 70.0], abs=1e-3)  # mean of the two
    assert m.epoch_end() is not None
    assert _method(FixMatchDarp, DarpConfig, target="labeled").epoch_end() is None


def test_darp_method_uses_refined_labels_after_warmup():
    m = _method(FixMatchDarp, DarpConfig, counts=(1, 1), target="labeled", warmup=0.0)
    ctx = _ctx(counts=(1, 1), num_unlabeled=8, epoch=1, epochs=2)
    p0 = torch.tensor([0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.3, 0.2])
    probs = torch.stack([p0, 1 - p0], 1)  # U predicted 6 : 2
    batch = Batch(x=torch.zeros(0), y=torch.zeros(0, dtype=torch.long), idx=torch.zeros(0))
    batch.u_idx = torch.arange(2, 10)
    m.cfg.threshold = 0.0
    out = m.pseudo_label(probs, None, batch, ctx)
    assert torch.allclose(ctx.state[REFINED].sum(0), torch.tensor([4.0, 4.0]), rtol=0.02)
    assert torch.bincount(out.labels, minlength=2).tolist() == [4, 4]  # D's 1 : 1, not 6 : 2
    ctx.epoch = 0  # during the warm-up: plain FixMatch targets
    assert torch.bincount(m.pseudo_label(probs, None, batch, ctx).labels).tolist() == [6, 2]


# --- ABC --------------------------------------------------------------------------------------


def test_abc_keep_probability_is_n_min_over_n_k():
    keep = balanced_keep_prob(torch.tensor([100, 20, 5]))
    assert keep.tolist() == pytest.approx([0.05, 0.25, 1.0])
    y = torch.tensor([0, 1, 2]).repeat(20000)
    mask = bernoulli_mask(keep[y], torch.Generator().manual_seed(0))
    rates = [float(mask[y == k].mean()) for k in range(3)]
    assert rates == pytest.approx([0.05, 0.25, 1.0], abs=0.01)
    assert unlabeled_keep_prob(keep, 0.0).tolist() == [1.0, 1.0, 1.0]  # all of U at first
    assert unlabeled_keep_prob(keep, 1.0).tolist() == pytest.approx(keep.tolist())


def test_abc_evaluates_its_balanced_head():
    assert FixMatchAbc.eval_head == "balanced" and "balanced" in FixMatchAbc.heads
    assert FixMatchAbc.eval_ema


# --- SAW --------------------------------------------------------------------------------------


def test_saw_weights_by_hand_and_from_pseudo_label_counts():
    beta = 0.99
    raw = [(1 - beta) / (1 - beta**n) for n in (100, 10, 1)]
    want = [3 * r / sum(raw) for r in raw]
    assert saw_weights(torch.tensor([100, 10, 1]), beta).tolist() == pytest.approx(want, rel=1e-5)
    m = _method(FixMatchSaw, SawConfig)
    ctx = _ctx()
    probs = torch.tensor([[0.8, 0.1, 0.1]] * 3 + [[0.1, 0.8, 0.1]])
    bank_update(ctx.state, BANK, torch.tensor([7, 8, 9, 10]), probs, 15)
    m.epoch_end()(ctx)  # U's pseudo-label counts 3, 1, 0 (an empty class counts as 1)
    assert ctx.state[WEIGHTS].tolist() == pytest.approx(saw_weights(torch.tensor([3, 1, 1]), beta))
    assert ctx.state[WEIGHTS][0] < ctx.state[WEIGHTS][1]  # frequent pseudo class: less weight


# --- ACR --------------------------------------------------------------------------------------


def test_acr_strength_grows_from_consistent_to_reversed():
    prior = torch.tensor([0.6, 0.25, 0.1, 0.05])
    rev = prior.flip(0)
    taus = []
    for t in np.linspace(0.0, 1.0, 6):
        u = (1 - t) * prior + t * rev
        taus.append(acr_tau(anchor_divergences(u, prior), tau_max=2.0))
    assert all(b > a for a, b in zip(taus, taus[1:], strict=False))
    kl = anchor_divergences(prior, prior)
    assert kl[0] == 0 and kl[1] > 0 and kl[2] > kl[1]
    want = 2.0 / (1 + math.exp(kl[1]) + math.exp(kl[2]))  # softmax(kl)[0] * tau_max
    assert taus[0] == pytest.approx(want, rel=1e-6)


def test_acr_adjusted_pseudo_labels_move_to_the_tail():
    m = _method(Acr, AcrConfig, counts=(90, 10), threshold=0.0)
    ctx = _ctx(counts=(90, 10))
    weak = torch.tensor([[1.0, 0.0]])  # head-biased: raw argmax 0; log(0.9^2) - log(0.1^2) > 1
    fw = type("Fw", (), {"weak": lambda self: weak})()
    out = m.pseudo_label(torch.softmax(weak, 1), fw, None, ctx)
    assert out.labels.tolist() == [1]
    ctx.state["acr:tau"] = torch.tensor(0.0)  # no adjustment: the raw argmax
    assert m.pseudo_label(torch.softmax(weak, 1), fw, None, ctx).labels.tolist() == [0]


def test_diagnostics_score_acr_by_its_own_adjusted_rule_and_fixmatch_by_the_plain_one():
    """The pseudo-label diagnostics of ACR use its adjustment (not FixMatch's argmax)."""
    from sslt_bench.models.wrapper import SSLTModel, make_head

    m = _method(Acr, AcrConfig, counts=(90, 10), threshold=0.0)
    model = SSLTModel(torch.nn.Identity(), {"random": make_head("linear", 2, 2)}, {})
    with torch.no_grad():
        model.heads["random"].weight.copy_(torch.eye(2))
        model.heads["random"].bias.zero_()
    ctx = _ctx(counts=(90, 10))
    ctx.model = model
    (step,) = m.plan()
    rule = m.pseudo_rule(step)
    assert rule.labels is not None and rule.view == "weak"
    feats = torch.tensor([[1.0, 0.0], [5.0, 0.0]])  # raw argmax 0 for both
    labels, kept = rule.labels(feats, torch.tensor([100, 101]), ctx)
    # tau1 = 2: logit adjustment 2 * log(0.9 / 0.1) = 4.39 moves only the first to the tail
    assert labels.tolist() == [1, 0] and kept.tolist() == [True, True]
    plain = METHODS.get("fixmatch")
    fm = plain(build_config(plain.Config, "paper", {}), m.info)
    assert (
        fm.pseudo_rule(fm.plan()[0]).labels is None
    )  # argmax and threshold, applied by the runner


# --- methods never read U's labels ------------------------------------------------------------

FAMILY = [n for n in METHODS.names() if issubclass(METHODS.get(n), FixMatchFamily)]
ACTIVE = {"warmup": "0", "refine_every": "2", "est_start": "0"}  # mechanisms on in 3 epochs


def _train(method: str, tmp_path, permute: bool, monkeypatch) -> dict:
    cfg = METHODS.get(method).Config
    names = {f.name for f in dataclasses.fields(cfg)}
    over = {**cfg.SMOKE, "epochs": 3, "steps_per_epoch": 2}
    over.update({k: v for k, v in ACTIVE.items() if k in names})
    load = Runner._load_data

    def poisoned(self):
        data = load(self)
        y = data.split.unlabeled_y_hidden
        perm = np.random.default_rng(1).permutation(len(y))
        if permute:
            data.split = dataclasses.replace(data.split, unlabeled_y_hidden=y[perm])
        return data

    monkeypatch.setattr(Runner, "_load_data", poisoned)
    spec = RunSpec(
        method=method,
        dataset="digits-sslt",
        out=tmp_path / ("p" if permute else "o"),
        progress=False,
        device="cpu",
        fresh=True,
        overrides=tuple(f"{k}={v}" for k, v in over.items()),
    )
    return Runner(spec).run()


@pytest.mark.parametrize("method", FAMILY)
def test_training_ignores_u_labels(method, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    a = _train(method, tmp_path, False, monkeypatch)
    b = _train(method, tmp_path, True, monkeypatch)
    assert a["split_hash"] != b["split_hash"]  # the poison reached the split
    assert a["init_hashes"] == b["init_hashes"]  # weights after training: bit-identical
    keys = ("loss", "sup", "unsup", "mask_rate")
    assert [{k: e.get(k) for k in keys} for e in a["history"]["epochs"]] == [
        {k: e.get(k) for k in keys} for e in b["history"]["epochs"]
    ]
    assert a["metrics"]["per_class"] == b["metrics"]["per_class"]


def test_family_pieces_are_plain_overrides():
    assert FixMatchDarp.pseudo_label is not FixMatchFamily.pseudo_label
    assert FixMatchSaw.unlabeled_weight is not FixMatchFamily.unlabeled_weight
    assert FixMatchAbc.extra is not FixMatchFamily.extra and Acr.extra is not FixMatchAbc.extra
    assert FixMatchAbc.loss is FixMatchFamily.loss and Acr.loss is FixMatchFamily.loss
