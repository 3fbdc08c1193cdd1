"""SimPro's official code (LeapLabTHU/SimPro, ``SimPro/train.py``) on our split and backbone.

The code is FixMatch-pytorch-based (not USB). Its own ``main()`` runs, its command line set
from our config (batch, mu, steps = epochs x eval-step, lr, wd, EMA, threshold, tau, ema-u =
our ``prior_momentum``): its loop does the loss, the Bayes pseudo labels, the per-epoch EM
updates of both priors, the EMA and the per-epoch test. Run-time changes (record's ``patches``):

* ``DATASET_GETTERS``: our D through its ``TransformFixMatch2`` (weak + strong), our U only
  (labels hidden: -1) through its ``TransformFixMatch`` (weak + two strong), our test items,
  its normalisation; D's class counts; U's (read only by its ``KL_estim`` log line) uniform.
* ``build_wideresnet``: our backbone, our run's initial weights; ``forward`` = main-head logits.
* ``get_cosine_schedule_with_warmup``: OUR schedule (engine's ``lr_at``: cosine to 0; the
  code's ``cos(7 pi k / 16 K)`` ends at 0.2 lr), per step as both. SGD / Nesterov / momentum and
  the no-decay rule are the code's (checked: names with ``bias``/``bn`` = our exempt set).
* CPU, one process: torchrun's variables 1/0/0, NCCL -> a one-rank gloo group, DDP without
  ``device_ids``, ``cuda.set_device`` a no-op, ``torch.device('cuda')`` the CPU, ``.cuda()`` the
  identity, 0 DataLoader workers, ``termcolor`` stubbed, ``tqdm`` silenced.
* Observed only: per-epoch test, loss meters, priors; the final EMA model is scored by us
  (raw logits, as its ``test``) on the test items, per class.
"""

from __future__ import annotations

import math
import os
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from sslt_bench.train.engine import lr_at
from sslt_bench.train.session import decay_groups

from .common import CPU_SHIMS, Ours, Patches, PilItems, cpu_torch, hwc, import_code, score

REPO = "LeapLabTHU/SimPro"
METHOD = "simpro"


class Logits(nn.Module):
    """Our model in the code's interface: ``forward`` = the main head's logits."""

    def __init__(self, net: nn.Module, head: str) -> None:
        super().__init__()
        self.net, self.head = net, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of our main head."""
        return self.net.heads[self.head](self.net.embed(x))


def argv(ours: Ours, out: Path) -> list[str]:
    """The code's command line for our run's budget and hyper-parameters."""
    c, step = ours.cfg, ours.method.plan()[0]
    assert step.optimizer == "sgd" and step.momentum == 0.9 and step.nesterov, "code: SGD"
    assert step.warmup_epochs == 0 and c.lambda_u == 1.0, "code: no warm-up, Lx + Lu"
    args = {
        "--dataset": {10: "cifar10", 100: "cifar100"}[ours.split.num_classes],
        "--batch-size": c.batch_size,
        "--mu": c.mu,
        "--total-steps": c.epochs * c.steps_per_epoch,
        "--eval-step": c.steps_per_epoch,
        "--lr": step.lr,
        "--wdecay": step.weight_decay,
        "--ema-decay": c.ema_decay,
        "--threshold": c.threshold,
        "--tau": c.tau,
        "--ema-u": c.prior_momentum,
        "--seed": ours.spec.seed,
        "--num-workers": 0,
        "--out": str(out),
    }
    return [str(x) for kv in args.items() for x in kv]


def _getter(ours: Ours, cifar: Any) -> tuple[str, Callable]:
    """``DATASET_GETTERS`` entry: our D, U (labels hidden) and test through its transforms."""
    from torchvision import transforms as T

    s, c = ours.split, ours.split.num_classes
    key = "cifar10" if c == 10 else "cifar100"
    mean, std = getattr(cifar, f"{key}_mean"), getattr(cifar, f"{key}_std")
    train, test = hwc(ours.data.train), hwc(ours.data.test)
    hidden = np.full(len(s.unlabeled_idx), -1, dtype=np.int64)
    val = T.Compose([T.ToTensor(), T.Normalize(mean=mean, std=std)])
    counts = [np.bincount(y, minlength=c).tolist() for y in (s.labeled_y, s.test_y)]

    def get(args: Any, root: str) -> tuple:
        lab = PilItems(train, s.labeled_idx, s.labeled_y, cifar.TransformFixMatch2(mean, std))
        unl = PilItems(train, s.unlabeled_idx, hidden, cifar.TransformFixMatch(mean, std))
        return lab, unl, PilItems(test, s.test_idx, s.test_y, val), counts[0], [1] * c, counts[1]

    return key, get


def _our_schedule(ours: Ours) -> Callable[..., LambdaLR]:
    """The code's scheduler factory, giving our engine's schedule (``lr_at``) per step."""
    step = ours.method.plan()[0]

    def make(optimizer: Any, num_warmup_steps: float, total: int, **kw: Any) -> LambdaLR:
        spe = ours.cfg.steps_per_epoch
        return LambdaLR(optimizer, lambda k: lr_at(step, k, total, spe) / step.lr, **kw)

    return make


def _check_decay_rule(ours: Ours) -> None:
    """The code's exemption (names with ``bias`` or ``bn``) must be our ``decay_groups``'."""
    step, model = ours.method.plan()[0], ours.model
    theirs = {id(p) for n, p in model.named_parameters() if "bias" in n or "bn" in n}
    ours_free = decay_groups(model, list(model.parameters()), step.no_decay)[-1]["params"]
    assert theirs == {id(p) for p in ours_free}, "the code's no-decay rule differs from ours"


class _CpuDDP(nn.parallel.DistributedDataParallel):
    """DDP of a CPU module: the code's ``device_ids=[gpu]`` is dropped."""

    def __init__(self, module: nn.Module, device_ids: Any = None, **kw: Any) -> None:
        super().__init__(module, **kw)


def _one_process(p: Patches, work: Path) -> None:
    """One-rank gloo process group and CPU stand-ins for the code's CUDA/NCCL calls."""
    for k, v in {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0"}.items():
        p.set_item(os.environ, k, v, "os.environ", "one process (torchrun's variables)")
    init, url = torch.distributed.init_process_group, f"file://{work}/pg"
    gloo = lambda *a, **k: init("gloo", init_method=url, rank=0, world_size=1)  # noqa: E731
    p.set(torch.distributed, "init_process_group", gloo, "NCCL -> a one-rank gloo group (CPU)")
    p.set(torch.cuda, "set_device", lambda *a, **k: None, "no GPU to select")
    p.set(nn.parallel, "DistributedDataParallel", _CpuDDP, "DDP of a CPU module")
    for obj, name, value, why in CPU_SHIMS:
        if name == "cuda":
            p.set(obj, name, value, why)


def run(ours: Ours, code: Path, work: Path) -> dict[str, Any]:
    """Train with the code's ``main()``; returns the parts of the peer record it produced."""
    p = Patches()
    colour = types.ModuleType("termcolor")
    colour.colored = lambda text, *a, **k: text
    p.set_item(sys.modules, "termcolor", colour, "sys.modules", "log colours only")
    train, cifar, wrn, utils = import_code(
        code / "SimPro", "train", "dataset.cifar", "models.wideresnet", "utils"
    )
    _check_decay_rule(ours)
    seen: dict[str, Any] = {"epochs": []}
    key, get = _getter(ours, cifar)
    p.set(train, "DATASET_GETTERS", {key: get}, "our split (D; U, labels hidden; test)")
    head = ours.method.main_head
    p.set(wrn, "build_wideresnet", lambda **kw: Logits(ours.model, head), "our model, our init")
    p.set(train, "get_cosine_schedule_with_warmup", _our_schedule(ours), "our cosine (to 0)")
    p.set(train, "torch", cpu_torch(), "torch.device('cuda', i) -> the CPU")
    p.set(train, "tqdm", lambda it, **k: it, "no progress bar")
    _one_process(p, work)
    _observe(train, utils, p, seen)
    p.note("--num-workers 0", "one process, as our runs")
    p.set(sys, "argv", ["train.py", *argv(ours, work)], "the code's command line (argv)")
    try:
        train.main()
    finally:
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        p.restore()
    return _result(ours, seen, p)


def _observe(train: Any, utils: Any, p: Patches, seen: dict[str, Any]) -> None:
    """Keep the EMA model, each epoch's test accuracy, loss meters and priors (unchanged)."""
    orig_train, orig_test, made = train.train, train.test, []

    class Meter(utils.AverageMeter):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            made.append(self)

    def keep_train(args, lab, unl, test_loader, model, optimizer, ema_model, scheduler):
        seen["ema"], seen["test_loader"], seen["opt"] = ema_model, test_loader, optimizer
        seen["t"] = time.time()
        return orig_train(args, lab, unl, test_loader, model, optimizer, ema_model, scheduler)

    def keep_test(args, loader, model, epoch):
        _, _, loss, lx, lu = made[-5:]  # train()'s meters of this epoch, in order
        made.clear()
        train_s, t = time.time() - seen["t"], time.time()
        out = orig_test(args, loader, model, epoch)
        seen["t"] = time.time()
        seen["scale_ratio"] = args.scale_ratio
        row = dict(epoch=epoch + 1, acc=out[1], loss=loss.avg, loss_x=lx.avg, loss_u=lu.avg)
        row.update(steps=loss.count, s_per_step=train_s / max(loss.count, 1), test_s=seen["t"] - t)
        row["lr_next"] = seen["opt"].param_groups[0]["lr"]
        for name, prior in (("prior_u", args.estimated_dis), ("prior_all", args.adapt_dis)):
            row[name] = [round(float(v), 5) for v in prior]
        seen["epochs"].append(row)
        return out

    p.set(train, "AverageMeter", Meter, "keeps each epoch's loss meters (unchanged)")
    p.set(train, "train", keep_train, "keeps the EMA model for scoring (training unchanged)")
    p.set(train, "test", keep_test, "keeps each epoch's accuracy and priors (unchanged)")


def _result(ours: Ours, seen: dict[str, Any], p: Patches) -> dict[str, Any]:
    """Score of the final EMA model (raw logits), the code's own log, the patches."""
    ema = seen["ema"].ema.eval()
    reports = score({"random": lambda x: ema(x).float()}, seen["test_loader"], ours.split)
    epochs = seen["epochs"]
    last20 = [e["acc"] for e in epochs[-20:]]
    finite = all(math.isfinite(e["loss"]) for e in epochs)
    return {
        "metrics": reports.pop("random"),
        "other_heads": reports,
        "code_log": {"epochs": epochs, "scale_ratio": seen.get("scale_ratio")},
        "code_final_acc": epochs[-1]["acc"] if epochs else None,
        "median_last20": float(np.median(last20)) if last20 else None,
        "losses_finite": finite,
        "patches": p.applied,
    }
