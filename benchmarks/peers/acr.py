"""ACR's official code (Gank0078/ACR, ``train.py``) on our split, backbone, initial weights.

Run as the code's own ``main()`` with its command line set from our method config (batch,
mu, steps = epochs x eval-step, lr, weight decay, EMA, thresholds, tau1 / tau12 / tau2,
ema-u, est-epoch = int(est_start x epochs)), and these run-time changes (each in the
record's ``patches``):

* ``DATASET_GETTERS``: our D (its labeled transform: flip + reflect-padded crop), D ∪ U as
  its ``train_split`` builds the unlabeled set (D's items marked -2, U's items -1: their labels
  are not handed over) through its own ``TransformFixMatch``, our test items; its
  normalisation constants.
* ``build_wideresnet``: our backbone with our run's initial weights; ``classify`` = the
  standard branch (our ``random`` head), ``classify1`` = the balanced branch.
* CPU: ``torch.device('cuda', i)`` gives the CPU, ``Tensor.cuda()`` is the identity,
  ``iterator.next()`` (removed from torch's DataLoader iterators since 1.13) is ``__next__``,
  DataLoader workers 0 (one process, as our runs), TensorBoard stubbed when absent.
* Observed, not changed: its per-epoch ``test()`` results and the adaptive tau it sets; its
  final EMA model is scored by us on the test items, both branches, per class.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import dataloader as dl

from .common import Ours, Patches, PilItems, cpu_torch, hwc, import_code, score, unlabeled_pool

REPO = "Gank0078/ACR"
METHOD = "acr"
EVAL_HEAD = "balanced"


class TwoBranches(nn.Module):
    """Our model in the code's interface: ``forward`` = features, ``classify`` / ``classify1``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The embedding."""
        return self.net.embed(x)

    def classify(self, f: torch.Tensor) -> torch.Tensor:
        """The standard branch (the code's ``fc``)."""
        return self.net.heads["random"](f)

    def classify1(self, f: torch.Tensor) -> torch.Tensor:
        """The balanced branch (the code's ``fc1``, the one it reports)."""
        return self.net.heads["balanced"](f)


def argv(ours: Ours, out: Path) -> list[str]:
    """The code's command line for our run's budget and hyper-parameters."""
    c = ours.cfg
    assert c.optimizer == "sgd", "ACR's code trains with SGD"
    args = {
        "--dataset": {10: "cifar10", 100: "cifar100"}[ours.split.num_classes],
        "--arch": "wideresnet",
        "--batch-size": c.batch_size,
        "--mu": c.mu,
        "--total-steps": c.epochs * c.steps_per_epoch,
        "--eval-step": c.steps_per_epoch,
        "--lr": c.lr,
        "--wdecay": c.weight_decay,
        "--ema-decay": c.ema_decay,
        "--threshold": c.threshold,
        "--tau1": c.tau1,
        "--tau12": c.tau12,
        "--tau2": c.tau2,
        "--ema-u": c.ema_u,
        "--est-epoch": int(c.est_start * c.epochs),
        "--seed": ours.spec.seed,
        "--num-workers": 0,
        "--out": str(out),
    }
    return [str(x) for kv in args.items() for x in kv]


def _getter(ours: Ours, cifar: Any):
    """``DATASET_GETTERS`` entry: our split's items through the code's own transforms."""
    from torchvision import transforms as T

    split = ours.split
    key = "cifar10" if split.num_classes == 10 else "cifar100"
    mean, std = getattr(cifar, f"{key}_mean"), getattr(cifar, f"{key}_std")
    norm = [T.ToTensor(), T.Normalize(mean=mean, std=std)]
    crop = T.RandomCrop(size=32, padding=4, padding_mode="reflect")
    train, test = hwc(ours.data.train), hwc(ours.data.test)
    u_ids, u_marks = unlabeled_pool(split, labeled_mark=-2)

    def get(args: Any, root: str):
        labeled = PilItems(
            train,
            split.labeled_idx,
            split.labeled_y,
            T.Compose([T.RandomHorizontalFlip(), crop, *norm]),
        )
        unlabeled = PilItems(train, u_ids, u_marks, cifar.TransformFixMatch(mean=mean, std=std))
        return labeled, unlabeled, PilItems(test, split.test_idx, split.test_y, T.Compose(norm))

    return key, get


def run(ours: Ours, code: Path, work: Path) -> dict[str, Any]:
    """Train with the code's ``main()``; returns the parts of the peer record it produced."""
    train, cifar, wrn = import_code(code, "train", "dataset.cifar", "models.wideresnet")
    seen: dict[str, Any] = {"epochs": [], "taus": []}
    p = Patches()
    key, get = _getter(ours, cifar)
    p.set(
        train,
        "DATASET_GETTERS",
        {key: get},
        "our exported split (D; D ∪ U, D marked -2, U's labels hidden; test)",
    )
    p.set(
        wrn,
        "build_wideresnet",
        lambda **kw: TwoBranches(ours.model),
        "our backbone, our run's initial weights",
    )
    p.set(train, "torch", cpu_torch(), "torch.device('cuda', i) -> the CPU")
    p.set(
        torch.Tensor, "cuda", lambda self, *a, **k: self, "Tensor.cuda() is the identity on the CPU"
    )
    p.set(
        dl._BaseDataLoaderIter,
        "next",
        dl._BaseDataLoaderIter.__next__,
        "iterator.next() (gone since torch 1.13)",
    )
    _observe(train, p, seen)
    p.note("--num-workers 0", "one process, as our runs")
    p.set(sys, "argv", ["train.py", *argv(ours, work)], "the code's command line (argv)")
    try:
        train.main()
    finally:
        p.restore()
    return _result(ours, seen, p)


def _observe(train: Any, p: Patches, seen: dict[str, Any]) -> None:
    """Wrap ``train``, ``test`` and ``compute_adjustment_by_py`` to keep what they see."""
    orig_train, orig_test, orig_adj = train.train, train.test, train.compute_adjustment_by_py

    def keep_train(args, lab, unl, test_loader, model, optimizer, ema_model, scheduler):
        seen["ema"], seen["test_loader"] = ema_model, test_loader
        return orig_train(args, lab, unl, test_loader, model, optimizer, ema_model, scheduler)

    def keep_test(args, loader, model, epoch):
        out = orig_test(args, loader, model, epoch)
        seen["epochs"].append({"epoch": epoch + 1, "acc": out[1], "acc_b": out[3]})
        return out

    def keep_adj(py, tro, args):
        seen["taus"].append(float(tro))
        return orig_adj(py, tro, args)

    p.set(train, "train", keep_train, "keeps the EMA model for scoring (training unchanged)")
    p.set(train, "test", keep_test, "keeps each epoch's accuracy (unchanged)")
    p.set(train, "compute_adjustment_by_py", keep_adj, "keeps the adaptive tau (unchanged)")


def _result(ours: Ours, seen: dict[str, Any], p: Patches) -> dict[str, Any]:
    """Per-head scores of the final EMA model, the code's own log, the patches."""
    ema = seen["ema"].ema.eval()
    heads = {
        "balanced": lambda x: ema.classify1(ema(x)).float(),
        "random": lambda x: ema.classify(ema(x)).float(),
    }
    reports = score(heads, seen["test_loader"], ours.split)
    last20 = [e["acc_b"] for e in seen["epochs"][-20:]]
    taus = seen["taus"][3:]  # the first three are the code's fixed l1 / l12 / l2 adjustments
    return {
        "metrics": reports.pop(EVAL_HEAD),
        "other_heads": reports,
        "code_log": {"epochs": seen["epochs"], "tau_per_epoch": taus},
        "code_final_acc_b": seen["epochs"][-1]["acc_b"] if seen["epochs"] else None,
        "median_last20": float(np.median(last20)) if last20 else None,
        "tau_final": taus[-1] if taus else float(ours.cfg.tau1),
        "patches": p.applied,
    }
