"""Every registered backbone (and ``timm:<name>``) builds, runs forward and backward, learns."""

import math

import pytest
import torch
import torch.nn.functional as F

from sslt_bench.errors import UsageError
from sslt_bench.models import build_model
from sslt_bench.registry import MODELS
from sslt_bench.train.runner import Runner, RunSpec

TIMM = "timm:test_efficientnet"  # a tiny model that ships with timm


@pytest.mark.parametrize("backbone", [*MODELS.names(), TIMM])
def test_backbone_forward_backward(backbone):
    torch.manual_seed(0)
    size = 8 if backbone == "small-cnn" else 32
    model = build_model(backbone, 3, size, 10, {"random": "linear", "balanced": "cosine"})
    x, y = torch.randn(4, 3, size, size), torch.tensor([0, 1, 2, 3])
    feats = model.embed(x)
    assert feats.shape == (4, model.feat_dim) and torch.isfinite(feats).all()
    for head in ("random", "balanced"):
        assert model(x, head).shape == (4, 10)
    loss = F.cross_entropy(model(x, "random"), y) + F.cross_entropy(model(x, "balanced"), y)
    loss.backward()
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert params
    missing = [n for n, p in params if p.grad is None]
    assert not missing, f"{backbone}: no gradient for {missing[:3]}"
    assert all(torch.isfinite(p.grad).all() for _, p in params)
    assert any(p.grad.abs().sum() > 0 for n, p in params if n.startswith("embed."))
    model.eval()  # one SGD step on a fixed batch lowers its loss
    with torch.no_grad():
        before = F.cross_entropy(model(x, "random"), y).item()
        for _, p in params:
            p -= 0.05 * p.grad
        after = F.cross_entropy(model(x, "random"), y).item()
    assert math.isfinite(after) and after < before, (backbone, before, after)


def test_timm_prefix_runs_and_bad_names_are_one_line(tmp_path):
    spec = RunSpec(out=tmp_path, progress=False, device="cpu")
    over = ("epochs=1", f"backbone={TIMM}", "min_steps_per_epoch=2")
    rec = Runner(RunSpec(**{**spec.__dict__, "overrides": over})).run()
    assert rec["status"] == "ok" and rec["backbone"] == TIMM
    with pytest.raises(UsageError, match="unknown timm model 'no-such-net'"):
        MODELS.get("timm:no-such-net")
    with pytest.raises(UsageError, match=r"choose from: .*small-cnn, timm:<name>"):
        MODELS.get("no-such-net")
