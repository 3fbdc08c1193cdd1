"""CReST+, DASO, CoSSL and SimPro on the FixMatch core: one mechanism test each, by hand.

Plus the shared pieces they added: PseudoLabel confidences and pseudo-labelled items left out
of the ``labeled+pseudo`` pool (label -1).
"""

import math
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from sslt_bench.methods.fixmatch_core import Forward
from sslt_bench.methods.fixmatch_cossl import (
    CosslConfig,
    FixMatchCossl,
    tfe_mix,
    tfe_probabilities,
)
from sslt_bench.methods.fixmatch_crest import (
    CONF,
    GEN,
    CrestConfig,
    FixMatchCrest,
    alignment_temperature,
    sampling_rates,
)
from sslt_bench.methods.fixmatch_daso import PL_DIST, QUEUE, DasoConfig, FixMatchDaso, blend_weights
from sslt_bench.methods.simpro import COUNT_L, PI_ALL, PI_U, SOFT_U, SimPro, SimProConfig
from sslt_bench.models.wrapper import SSLTModel, make_head
from sslt_bench.train.engine import confidences, labeled_view_batches
from sslt_bench.train.session import pool_of
from sslt_bench.train.ssl_parts import queue_prototypes, queue_push
from sslt_bench.train.stages import LabeledViews, PseudoLabel, StepContext, Train


def _ctx(state=None, counts=(1, 1, 1), model=None, ema=None) -> StepContext:
    counts = torch.tensor(counts)
    return StepContext(
        model=model,
        ema=ema,
        state=state if state is not None else {},
        num_classes=len(counts),
        labeled_counts=counts,
        num_labeled=int(counts.sum()),
        num_unlabeled=4,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
    )


def test_pseudo_label_scores_and_left_out_items():
    """Confidences are the max softmax of the head; items labelled -1 leave the pool."""
    torch.manual_seed(0)
    model = SSLTModel(nn.Identity(), {"h": make_head("linear", 3, 3)}, {"h": "linear"})
    feats = torch.randn(7, 3)
    conf = confidences(model, "h", feats)
    assert torch.allclose(conf, model.heads["h"](feats).softmax(1).amax(1))
    split = SimpleNamespace(
        labeled_idx=np.arange(2), labeled_y=np.array([0, 1]), unlabeled_idx=np.arange(4)
    )
    ctx = _ctx(state={"pseudo": torch.tensor([2, -1, 0, -1])}, counts=[1, 1, 0])
    ids, labels = pool_of("labeled+pseudo", split, ctx)
    assert ids.tolist() == [0, 1, 2, 4] and labels.tolist() == [0, 1, 2, 0]
    assert ctx.pool_counts("labeled+pseudo").tolist() == [2, 1, 1]


def test_labeled_views_same_and_class_balanced():
    """LabeledViews: ``same`` reuses the step's batches; ``class_balanced`` balances classes."""
    labels = torch.tensor([0] * 90 + [1] * 10)
    batches = [np.arange(i * 10, i * 10 + 10) for i in range(8)]
    ctx = _ctx(counts=[90, 10])
    same = Train("t", 1, None, labeled_views=LabeledViews(("strong",), "same"))
    assert labeled_view_batches(same, labels, ctx, batches, 0, 1) is batches
    bal = Train(
        "t", 1, None, batch_size=50, labeled_views=LabeledViews(("strong",), "class_balanced")
    )
    drawn = labeled_view_batches(bal, labels, ctx, batches * 5, 0, 1)
    frac = float(labels[np.concatenate(drawn)].float().mean())
    assert len(drawn) == 40 and all(len(b) == 50 for b in drawn)
    assert 0.45 < frac < 0.55  # random sampling would give 0.10


def test_prototype_queue_is_a_per_class_fifo():
    state: dict = {}
    queue_push(state, "q", torch.tensor([[1.0, 0], [3, 0], [0, 2]]), torch.tensor([0, 0, 1]), 2, 3)
    assert queue_prototypes(state, "q").tolist() == [[2, 0], [0, 2], [0, 0]]
    queue_push(state, "q", torch.tensor([[5.0, 0], [0, 4]]), torch.tensor([0, 1]), 2, 3)
    # class 0 keeps its 2 newest (3, 5); class 1 holds 2 and 4; class 2 is still empty
    assert queue_prototypes(state, "q").tolist() == [[4, 0], [0, 3], [0, 0]]


def test_daso_blend_weight_and_semantic_pseudo_labels_by_hand():
    """w = (pl^(1/T) / sum) / max, taken at the linear argmax; q = nearest prototype (cosine)."""
    assert torch.allclose(
        blend_weights(torch.tensor([0.6, 0.3, 0.1]), 1.0), torch.tensor([1, 0.5, 1 / 6])
    )
    assert torch.allclose(
        blend_weights(torch.tensor([0.6, 0.3, 0.1]), 0.5), torch.tensor([1, 0.25, 1 / 36])
    )
    cfg = DasoConfig(pretrain_steps=0, dist_temp=1.0, threshold=0.0, proto_temp=0.05)
    method = FixMatchDaso(cfg, None)
    ctx = _ctx(counts=[5, 5])
    queue_push(ctx.state, QUEUE, torch.tensor([[2.0, 0.0], [0.0, 3.0]]), torch.tensor([0, 1]), 4, 2)
    ctx.state[PL_DIST] = torch.tensor([0.75, 0.25])  # v = [1, 1/3]
    # weak rows: nearest prototype 0, then 1; the strong rows follow (unused here)
    feats = torch.tensor([[1.0, 0.2], [0.3, 1.0], [1.0, 0.0], [0.0, 1.0]])
    fw = Forward(None, feats, torch.zeros(4, 2), 0, 2, 1)
    p = torch.tensor([[0.6, 0.4], [0.3, 0.7]])
    t = method.pseudo_label(p, fw, None, ctx)
    q = torch.softmax(
        torch.nn.functional.cosine_similarity(feats[:2, None], torch.eye(2)[None], dim=2) / 0.05, 1
    )
    assert q.argmax(1).tolist() == [0, 1]  # semantic pseudo label = nearest prototype
    expected = torch.stack([q[0], (2 / 3) * p[1] + (1 / 3) * q[1]])  # w = v[0] = 1, v[1] = 1/3
    assert torch.allclose(t.probs, expected, atol=1e-6)
    assert t.labels.tolist() == expected.argmax(1).tolist()


def test_simpro_bayes_pseudo_labels_and_prior_updates_by_hand():
    """E-step softmax(z + tau log pi_u); M-step moving averages of the closed-form priors."""
    method = SimPro(SimProConfig(tau=2.0, threshold=0.7, prior_momentum=0.5), None)
    ctx = _ctx(counts=[4, 2])
    pi_u, pi = method.priors(ctx)
    assert pi_u.tolist() == [0.5, 0.5] and torch.allclose(pi, torch.tensor([2 / 3, 1 / 3]))
    ctx.state[PI_U] = torch.tensor([0.8, 0.2])
    weak = torch.tensor([[0.0, 0.0], [0.0, math.log(8.0)]])
    fw = Forward(None, None, torch.cat([torch.zeros(2, 2), weak, torch.zeros(4, 2)]), 2, 2, 2)
    t = method.pseudo_label(torch.softmax(weak, 1), fw, None, ctx)
    # row 0: 0.8^2 : 0.2^2 = 16 : 1; row 1: 0.64 : 0.04 * 8 = 2 : 1 -> below the threshold
    assert torch.allclose(t.labels, torch.tensor([[16 / 17, 1 / 17], [2 / 3, 1 / 3]]), atol=1e-6)
    assert t.mask.tolist() == [1.0, 0.0]
    method.observe(fw, t, SimpleNamespace(y=torch.tensor([0, 0, 1])), ctx)
    assert torch.allclose(ctx.state[SOFT_U], torch.tensor([16 / 17, 1 / 17]))
    assert ctx.state[COUNT_L].tolist() == [2.0, 1.0]
    ctx.state[PI_U], ctx.state[PI_ALL] = torch.tensor([0.5, 0.5]), torch.tensor([0.6, 0.4])
    ctx.state[SOFT_U], ctx.state[COUNT_L] = torch.tensor([3.0, 1.0]), torch.tensor([4.0, 2.0])
    method.m_step(ctx)
    # pi_u = .5 [.5 .5] + .5 [3 1] / 5; pi = .5 [.6 .4] + .5 [7 3] / 10
    assert torch.allclose(ctx.state[PI_U], torch.tensor([0.55, 0.35]))
    assert torch.allclose(ctx.state[PI_ALL], torch.tensor([0.65, 0.35]))
    assert ctx.state[SOFT_U].tolist() == [0.0, 0.0] and ctx.state[COUNT_L].tolist() == [0.0, 0.0]


def test_crest_rates_selection_and_generations_by_hand():
    """Class of rank k keeps floor(m * (n_{C+1-k}/n_1)^alpha) of its most confident items."""
    rates = sampling_rates(torch.tensor([1, 8, 4]), 1 / 3)  # ranks: class 1, 2, 0
    assert torch.allclose(rates, torch.tensor([1.0, 0.5, 2 ** (-1 / 3)], dtype=torch.float64))
    torch.manual_seed(0)
    model = SSLTModel(nn.Linear(2, 2), {"random": make_head("linear", 2, 3)}, {"random": "linear"})
    model.embed.out_dim = 2
    ctx = _ctx(counts=[8, 4, 1], model=model)
    method = FixMatchCrest(CrestConfig(alpha=1.0, generations=3), None)
    method.snapshot(ctx)
    init = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.heads["random"].weight.add_(1.0)
    pseudo = torch.tensor([0] * 8 + [1] * 4 + [2] * 3)
    conf = torch.tensor([0.1, 0.9, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.2, 0.8, 0.9, 0.1, 0.5, 0.4, 0.3])
    ctx.state.update(pseudo=pseudo, **{CONF: conf})
    method.next_generation(2, ctx)
    # rates (alpha 1): class 0 -> 1/8 of 8 = 1, class 1 -> 4/8 of 4 = 2, class 2 -> all 3
    kept = ctx.state["pseudo"]
    assert kept.tolist() == [-1, 0, -1, -1, -1, -1, -1, -1, -1, 1, 1, -1, 2, 2, 2]
    assert all(torch.equal(v, init[k]) for k, v in model.state_dict().items())
    assert int(ctx.state[GEN]) == 2
    assert [alignment_temperature(g, 3, 0.5) for g in range(3)] == [1.0, 0.75, 0.5]
    # generation 2 (t = 0.5): target = sqrt([8, 4, 1]) normalised, p_model uniform
    t = method.pseudo_label(torch.full((1, 3), 1 / 3), None, None, ctx)
    expected = torch.tensor([8, 4, 1]).sqrt() / torch.tensor([8, 4, 1]).sqrt().sum()
    assert torch.allclose(t.probs[0], expected, atol=1e-5)
    plan = method.plan()
    trains = [s for s in plan if isinstance(s, Train)]
    assert [s.pool for s in trains] == ["labeled", "labeled+pseudo", "labeled+pseudo"]
    labels = [s for s in plan if isinstance(s, PseudoLabel)]
    assert len(labels) == 2 and all(s.ema and s.scores == CONF for s in labels)


def test_cossl_tfe_mixes_tail_features_and_labels_u_with_the_tfe_head():
    """TFE: class k mixed w.p. (n_max - n_k)/n_max into lam x + (1 - lam) u, lam in [0.6, 1]."""
    probs = tfe_probabilities(torch.tensor([100, 50, 0]))
    assert probs.tolist() == [0.0, 0.5, 1.0]
    labels = torch.tensor([0] * 400 + [1] * 400 + [2] * 400)
    x, u = torch.zeros(1200, 2), torch.ones(1200, 2)
    feats, mixed = tfe_mix(x, labels, u, probs, 0.6, torch.Generator().manual_seed(0))
    assert not mixed[:400].any() and torch.all(feats[:400] == 0)  # the head class: untouched
    assert mixed[800:].all()  # the class without labels: always enhanced
    assert 0.4 < mixed[400:800].float().mean() < 0.6
    share = feats[mixed, 0]  # = 1 - lam
    assert torch.all(share > 0) and torch.all(share <= 0.4 + 1e-6) and share.std() > 0.05
    assert torch.allclose(feats[:, 0], feats[:, 1])  # one lam per item
    # co-learning pseudo labels come from the TFE head on the EMA embedding, not the main head
    torch.manual_seed(0)
    heads = {"random": make_head("linear", 2, 2), "tfe": make_head("linear", 2, 2)}
    model = SSLTModel(nn.Identity(), heads, {"random": "linear", "tfe": "linear"})
    with torch.no_grad():
        model.heads["random"].weight.copy_(torch.eye(2))
        model.heads["tfe"].weight.copy_(-torch.eye(2))
        for h in model.heads.values():
            h.bias.zero_()
    ctx = _ctx(counts=[2, 1], model=model, ema=model)
    method = FixMatchCossl(CosslConfig(threshold=0.0), None)
    weak = torch.tensor([[3.0, 0.0], [0.0, 3.0]])
    batch = SimpleNamespace(u={"weak": weak})
    assert method.pseudo_label(torch.eye(2), None, batch, ctx).labels.tolist() == [0, 1]
    method.start_colearning(ctx)
    assert method.pseudo_label(torch.eye(2), None, batch, ctx).labels.tolist() == [1, 0]
