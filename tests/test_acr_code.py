"""ACR as its official code computes it (Gank0078/ACR train.py), pinned by hand-made answers.

Two defects found by running the code beside ours (benchmarks/peer_check.py, docs/fidelity.md
"Agreement with the official code"): the estimate of U's class distribution counted every
confident item (the code's indexed assignment counts a class at most once per batch, with the
mask of its last item), and the schedule decayed to 0 (the code's ends at 0.2 lr).
"""

import math

import numpy as np
import pytest
import torch

from sslt_bench.config import build_config
from sslt_bench.methods.acr import KL, U_PRIOR, Acr, AcrConfig, anchor_divergences
from sslt_bench.methods.base import DataInfo
from sslt_bench.train.engine import lr_at
from sslt_bench.train.ssl_parts import class_histogram, ema_histogram, last_item_weights
from sslt_bench.train.stages import Batch, StepContext, Train


def test_last_item_weights_by_hand():
    labels = torch.tensor([2, 2, 0, 2, 1])
    weights = torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0])
    # class 2's last item (position 3) is not confident: it counts 0, not 2
    assert last_item_weights(labels, weights, 4).tolist() == [1.0, 1.0, 0.0, 0.0]
    assert class_histogram(labels, weights, 4, "items").tolist() == [1.0, 1.0, 2.0, 0.0]
    assert last_item_weights(labels[:0], weights[:0], 3).tolist() == [0.0, 0.0, 0.0]


def test_last_item_weights_is_the_codes_indexed_assignment_on_cpu():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        n = int(torch.randint(1, 130, (1,), generator=g))
        labels = torch.randint(0, 10, (n,), generator=g)
        weights = (torch.rand(n, generator=g) > 0.4).float()
        code = torch.zeros(10)
        code[labels] += weights  # train.py: now_mask[targets_u_b] += mask_l * mask_b
        assert torch.equal(last_item_weights(labels, weights, 10), code)


def test_ema_histogram_keeps_the_estimate_when_nothing_counts():
    prev = torch.tensor([0.5, 0.3, 0.2])
    assert torch.equal(ema_histogram(prev, torch.zeros(3), 0.9), prev)
    got = ema_histogram(prev, torch.tensor([1.0, 1.0, 0.0]), 0.9)
    assert got.tolist() == pytest.approx([0.9 * 0.5 + 0.05, 0.9 * 0.3 + 0.05, 0.9 * 0.2])


class _Fw:
    """The two pieces of the family's Forward that ACR's observe reads."""

    def __init__(self, balanced_weak: torch.Tensor) -> None:
        self.logits = balanced_weak

    def logits_of(self, head: str) -> torch.Tensor:
        return self.logits

    def weak(self, logits: torch.Tensor) -> torch.Tensor:
        return logits


def _observe_once(count: str) -> dict:
    counts = (6, 3, 1)
    cfg = build_config(AcrConfig, "paper", {"u_histogram": count, "est_start": "0"})
    m = Acr(cfg, DataInfo(3, np.array(counts), 10, 8, 3, 2))
    ctx = StepContext(
        model=None, ema=None, state={}, num_classes=3, labeled_counts=torch.tensor(counts),
        num_labeled=10, num_unlabeled=8, device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0), epoch=1, epochs=2,
    )  # fmt: skip
    big = 10.0  # confident: softmax max > 0.95
    logits = torch.tensor([[big, 0, 0], [big, 0, 0], [big, 0, 0], [0, big, 0], [0, 0.1, 0]])
    # items 0-3 from U (ids >= 10); item 4 from D, predicted class 1 (not confident)
    batch = Batch(x=None, y=None, idx=None, u_idx=torch.tensor([10, 11, 12, 13, 4]))
    m.observe(_Fw(logits), None, batch, ctx)
    return ctx.state


def test_acr_estimate_counts_a_class_once_per_batch_as_the_code():
    prior = torch.tensor([0.6, 0.3, 0.1])
    code = _observe_once("last")
    # the code: class 0 -> 1 (three confident items, counted once), class 1 -> 0 (its last item,
    # from D, has mask 0), class 2 -> 0: h = [1, 0, 0]; u = 0.99 * uniform + 0.01 * h
    want = 0.99 * torch.full((3,), 1 / 3) + 0.01 * torch.tensor([1.0, 0.0, 0.0])
    assert code[U_PRIOR].tolist() == pytest.approx(want.tolist(), rel=1e-6)
    assert code[KL].tolist() == pytest.approx(anchor_divergences(want, prior).tolist(), rel=1e-5)
    items = _observe_once("items")  # the paper's reading: h = [3, 1, 0] / 4
    want_items = 0.99 * torch.full((3,), 1 / 3) + 0.01 * torch.tensor([0.75, 0.25, 0.0])
    assert items[U_PRIOR].tolist() == pytest.approx(want_items.tolist(), rel=1e-6)


def test_acr_follows_the_codes_histogram_and_schedule_in_both_profiles():
    for profile in ("paper", "quick"):
        cfg = build_config(AcrConfig, profile, {})
        assert cfg.u_histogram == "last" and cfg.schedule == "cosine-7/16"
        assert (cfg.optimizer, cfg.lr, cfg.nesterov) == ("sgd", 0.03, True)


def test_cosine_7_16_is_fixmatch_codes_schedule():
    step = Train(name="t", epochs=1, loss=None, lr=0.03, schedule="cosine-7/16")
    total = 2100
    assert lr_at(step, 0, total, 100) == pytest.approx(0.03)
    # get_cosine_schedule_with_warmup(num_cycles=7/16): lr * cos(7 pi k / (16 K))
    for k in (1, 700, 1050, 2099):
        assert lr_at(step, k, total, 100) == pytest.approx(
            0.03 * math.cos(7 * math.pi * k / 16 / total)
        )
    assert lr_at(step, total, total, 100) == pytest.approx(0.03 * math.cos(7 * math.pi / 16))
    plain = Train(name="t", epochs=1, loss=None, lr=0.03)
    assert lr_at(plain, total, total, 100) == pytest.approx(0.0, abs=1e-12)
