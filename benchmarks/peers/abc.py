"""ABC on FixMatch from ABC's official code (LeeHyuck/ABC, ``ABCcode0920/ABCfix.py``) on our split.

Our ``fixmatch+abc``. The code derives from DARP's (bbuing9/DARP), so the pieces of
:mod:`peers.darp_parts` fit it. The code's own ``main()`` runs with its command line from our
config: batch, epochs x ``--val-iteration`` steps, lr, EMA decay (its tau is a literal 0.95 for
both heads, ABCfix.py:234,254, and ``--tau`` unused: our threshold and abc_threshold must be
0.95; lambda_u and abc_weight 1, its ``Lx + Lu + abc``). Its strong view needs
ildoonet/pytorch-randaugment (readme.txt): a checkout or bare repository in
``$RANDAUGMENT_CODE``. Run-time changes (each in the record's ``patches``):

* ``dataset.get_cifar10`` / ``get_cifar100``: our D (its ``transform_train``), U alone as its
  unlabeled set (its rule; targets -1: U's labels are not handed over) through its
  ``TransformTwice`` (weak, strong, strong), our test items; ``make_imb_data``: D's counts
  (its ``ir2 = N_last / N_k``, ABCfix.py:94).
* ``models.WideResNet``: our backbone with our run's initial weights (model and EMA copy) in
  its interface: ``model(x)`` = our embedding, ``classify`` = our ``random`` head,
  ``classify2`` = our ``balanced`` head (the ABC head).
* ``DataLoader``: unlabeled batch mu x B (the code: B), workers 0; ``torch.zeros`` one-hots
  sized by their index (it sizes the unlabeled ones by B, ABCfix.py:233,255).
* ``optim.Adam`` (lr 0.002, constant) -> our optimiser (quick: SGD Nesterov wd 5e-4, bias and
  BatchNorm exempt, the lr set before every step by our engine's cosine ``lr_at``);
  ``WeightEMA``: its 0.02 x lr decay -> our ``decoupled_decay`` (quick: 0); float state only.
* ``train``'s epoch argument x 500 / epochs: its unlabeled keep rate ``1 - (e / 500)(1 -
  ir2)`` (ABCfix.py:256) assumes its 500 epochs; ours is ``1 - (e / E)(1 - n_min / n_k)``.
* CPU and current libraries: ``.cuda()`` identity, ``iterator.next()``, ``--gpu ''``,
  ``progress.bar`` stubbed (logging only), RandAugment's ``np.int``; it runs in a scratch
  folder (its log.txt and checkpoints go to ``--out``).
* Observed, not changed: per-epoch losses, FixMatch mask rate, seconds per step and the code's
  test accuracy of its EMA model's ABC head (``validate``); that final EMA model is scored by
  us: the ABC head (``classify2``, what it evaluates) as ``metrics``, ``random`` in
  ``other_heads``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import darp_parts as parts
from .common import Ours, Patches, PilItems, checkout, cpu_shims, import_code, proxy_module, score
from .darp import RANDAUGMENT, _dataset, _randaugment

REPO = "LeeHyuck/ABC"
METHOD = "fixmatch+abc"
#: environment variable -> the other checkout the code imports (checked before any work)
NEEDS = (("RANDAUGMENT_CODE", RANDAUGMENT),)
FOLDER = "ABCcode0920"
CODE_EPOCHS = 500  # the literal of its keep-rate schedule, ABCfix.py:256


class AbcModel(nn.Module):
    """Our two-head model in the code's interface: features, ``classify``, ``classify2``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Our embedding (the code's ``q``)."""
        return self.net.embed(x)

    def classify(self, q: torch.Tensor) -> torch.Tensor:
        """The standard head: our ``random``."""
        return self.net.heads["random"](q)

    def classify2(self, q: torch.Tensor) -> torch.Tensor:
        """The auxiliary balanced (ABC) head: our ``balanced``."""
        return self.net.heads["balanced"](q)


def argv(ours: Ours, out: Path) -> list[str]:
    """The code's command line for our run's budget and hyper-parameters."""
    c = ours.cfg
    fixed = {"threshold": 0.95, "abc_threshold": 0.95, "lambda_u": 1.0, "abc_weight": 1.0}
    for key, value in fixed.items():
        if getattr(c, key) != value:
            raise ValueError(f"the code hard-codes {key} = {value}; ours is {getattr(c, key)}")
    args = {
        "--dataset": _dataset(ours),
        "--epochs": c.epochs,
        "--val-iteration": c.steps_per_epoch,
        "--batch-size": c.batch_size,
        "--lr": c.lr,
        "--ema-decay": c.ema_decay,
        "--manualSeed": ours.spec.seed,
        "--gpu": "",
        "--out": str(out),
    }
    return [str(x) for kv in args.items() for x in kv]


def run(ours: Ours, code: Path, work: Path) -> dict[str, Any]:
    """Train with the code's ``main()``; returns the parts of the peer record it produced."""
    seen: dict[str, Any] = {"epochs": [], "mask": []}
    p = Patches()
    with contextlib.ExitStack() as stack:
        stack.callback(p.restore)
        ra, ra_rev = stack.enter_context(checkout(_randaugment()))
        stub = types.ModuleType("progress.bar")
        stub.Bar = parts.Bar
        for name in ("progress", "progress.bar"):
            p.set_item(sys.modules, name, stub, "sys.modules", "console progress only")
        p.set(sys, "path", [str(ra), *sys.path], f"{RANDAUGMENT} at {ra_rev[:12]} importable")
        p.set(sys, "argv", ["ABCfix.py", *argv(ours, work)], "the code's command line")
        why = "--gpu '' (set by the code at import; restored after)"
        p.set_item(os.environ, "CUDA_VISIBLE_DEVICES", "", "os.environ", why)
        fix, ds = import_code(Path(code) / FOLDER, "ABCfix", f"dataset.fix_{_dataset(ours)}")
        _patch(ours, p, seen, fix, ds, sys.modules["RandAugment.augmentations"])
        stack.callback(os.chdir, os.getcwd())
        os.chdir(work)
        p.note("cwd = a scratch folder", "the code writes log.txt and checkpoints to args.out")
        fix.main()
    return _result(ours, seen, p, ds, {RANDAUGMENT: ra_rev})


def _patch(ours: Ours, p: Patches, seen: dict, fix, ds, aug) -> None:
    """Every replacement in the code's modules (see the module docstring)."""
    c, split = ours.cfg, ours.split
    counts = np.bincount(split.labeled_y, minlength=split.num_classes).tolist()
    why = "our split: D; U alone by the code's rule (targets -1, U's labels hidden); test"
    p.set(ds, f"get_{_dataset(ours)}", parts.getter(ours, ds, seen, union=False), why)
    why = "D's class counts (its ir2 = N_last / N_k); the U counts reach only the getter"
    p.set(fix, "make_imb_data", lambda *a, **k: list(counts), why)
    why = "our backbone, our initial weights; classify/classify2 = our random/balanced heads"
    p.set(fix.models, "WideResNet", parts.models(ours, seen, wrap=AbcModel), why)
    loader = parts.loader(c.mu, seen)
    p.set(fix, "data", proxy_module(torch.utils.data, DataLoader=loader), "mu x B; workers 0")
    why = "our optimiser and per-step lr (quick: SGD Nesterov wd 5e-4 cosine)"
    p.set(fix, "optim", proxy_module(torch.optim, Adam=parts.optimiser(ours, seen)), why)
    decay = getattr(c, "decoupled_decay", 0.0)
    why = f"its 0.02 x lr decay -> our decoupled_decay {decay}; float state only"
    p.set(fix, "WeightEMA", parts.weight_ema(fix.WeightEMA, decay), why)
    cpu_shims(p)
    why = "one-hots sized by their index: mu x B unlabeled (train sizes them by B)"
    p.set(fix, "torch", proxy_module(torch, zeros=parts.OneHot), why)
    p.set(aug, "np", proxy_module(np, int=int), "np.int (gone since numpy 1.24), SolarizeAdd")
    _observe(fix, p, seen)


def _observe(fix, p: Patches, seen: dict) -> None:
    """Wrap ``train`` (its epoch rescaled), ``validate`` and the loss to keep what they see."""
    orig_train, orig_validate = fix.train, fix.validate

    class KeepMask(fix.SemiLoss):
        def __call__(self, outputs_x, targets_x, outputs_u, targets_u, mask):
            seen["mask"].append(float(mask.mean()))
            return super().__call__(outputs_x, targets_x, outputs_u, targets_u, mask)

    def keep_train(labeled, unlabeled, model, opt, ema_opt, criterion, epoch, ir2):
        t0, steps = time.time(), fix.args.val_iteration
        progress = epoch * CODE_EPOCHS / fix.args.epochs  # its e / 500 becomes e / E
        out = orig_train(labeled, unlabeled, model, opt, ema_opt, criterion, progress, ir2)
        seen["ir2"] = [float(r) for r in ir2]
        seen["epochs"].append({
            "epoch": epoch + 1, "loss": out[0], "loss_x": out[1], "loss_u": out[2],
            "loss_abc_labeled": out[3], "mask_rate": float(np.mean(seen["mask"])),
            "lr_last": opt.param_groups[0]["lr"], "s_per_step": (time.time() - t0) / steps,
        })  # fmt: skip
        seen["mask"].clear()
        return out

    def keep_validate(loader, model, *a, **k):
        out = orig_validate(loader, model, *a, **k)
        seen["ema"] = model
        seen["epochs"][-1].update(test_loss=float(out[0]), test_acc=float(out[1]))
        return out

    p.set(fix, "SemiLoss", KeepMask, "keeps each step's FixMatch mask rate (loss unchanged)")
    why = f"epoch x {CODE_EPOCHS} / epochs: its keep rate 1-(e/500)(1-ir2) -> ours 1-(e/E)(1-ir2)"
    p.set(fix, "train", keep_train, why + "; keeps each epoch's losses and time")
    p.set(fix, "validate", keep_validate, "keeps the EMA model and test accuracy (unchanged)")


def _result(ours: Ours, seen: dict, p: Patches, ds, deps: dict) -> dict[str, Any]:
    """Scores of both heads of the code's final EMA model on our test items, its log, patches."""
    ema, test = seen["ema"].eval(), seen["test"]
    items = PilItems(test.images, test.ids, test.targets, ds.transform_val)
    heads = {"balanced": ema.classify2, "random": ema.classify}
    reports = score(
        {h: (lambda x, f=f: f(ema(x)).float()) for h, f in heads.items()},
        torch.utils.data.DataLoader(items, batch_size=256),
        ours.split,
    )
    accs = [e["test_acc"] for e in seen["epochs"]]
    return {
        "metrics": reports.pop("balanced"),  # the code's validate: classify2 of the EMA model
        "other_heads": reports,
        "code_log": {"epochs": seen["epochs"], "ir2": seen.get("ir2")},
        "code_final_acc": accs[-1] if accs else None,
        "median_last20": float(np.median(accs[-20:])) if accs else None,
        "dependencies": deps,
        "patches": p.applied,
    }
