"""CReST+, DASO, CoSSL and SimPro on the FixMatch core: one mechanism test each, by hand.

Plus the shared pieces they added: PseudoLabel confidences and pseudo-labelled items left out
of the ``labeled+pseudo`` pool (label -1).
"""

from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from sslt_bench.engine import confidences
from sslt_bench.models.wrapper import SSLTModel, make_head
from sslt_bench.session import pool_of
from sslt_bench.stages import StepContext


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
