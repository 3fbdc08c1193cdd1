"""FixMatch and DARP from DARP's official code (bbuing9/DARP, ``train.py``) on our split.

Two peers of one code: ``fixmatch`` runs ``train.py --semi_method fix`` (our ``fixmatch``),
``darp`` adds ``--darp`` (our ``fixmatch+darp``). The code's own ``main()`` runs with its
command line from our config: batch, epochs x ``--val-iteration`` steps, lr, EMA decay, tau;
DARP's ``--warm`` = int(warmup x epochs), ``--alpha``, ``--iter_T`` = iter_t, ``--num_iter`` =
refine_every; never ``--est`` (it loads a separate base model's estimate, train_base_estim.py,
not run here: the code's target is D's distribution, our ``target=labeled``). Its strong view
needs ildoonet/pytorch-randaugment (README): a checkout or bare repository in
``$RANDAUGMENT_CODE``. Run-time changes (each in the record's ``patches``):

* ``get_cifar10`` / ``get_cifar100``: our D (its ``transform_train``), its unlabeled set by its
  own rule for ``fix`` (D ∪ U, every target -1: U's labels are not handed over) through its
  ``TransformTwice`` (weak, strong, strong), our test items; ``make_imb_data``: D's counts.
* ``models.wrn.WRN``: our backbone with our run's initial weights (model and EMA copy), the
  output = our ``random`` head, no rotation head (``fix`` never uses it).
* ``DataLoader``: unlabeled batch mu x B (the code: B), workers 0.
* ``optim.Adam`` (lr 0.002, constant) -> our optimiser: SGD with momentum, Nesterov and wd,
  bias and BatchNorm parameters exempt (``session.decay_groups``), or Adam, the lr set before
  every step by our engine's ``lr_at`` (quick: cosine to 0 over epochs x steps).
  ``WeightEMA``: its 0.02 x lr decay of the model's state -> our ``decoupled_decay`` (quick: 0,
  none); integer state (num_batches_tracked) left out (current torch refuses float scaling).
* CPU and current libraries: ``.cuda()`` identity, ``iterator.next()``, ``--gpu ''``,
  ``tensorboardX`` and ``progress.bar`` stubbed (logging only), RandAugment's ``np.int``; it
  runs in a scratch folder (its log and checkpoints go to a relative path).
* Observed, not changed: per-epoch losses, mask rate, seconds per step, DARP's refinements and
  the code's test accuracy / GM of its EMA model (``validate``); that final EMA model (the
  code's EMA of every float state entry, BatchNorm statistics included) is scored by us.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import darp_parts as parts
from . import darp_step
from .common import (
    Ours,
    Patches,
    PilItems,
    _NoWriter,
    checkout,
    cpu_shims,
    import_code,
    proxy_module,
    score,
)

REPO = "bbuing9/DARP"
RANDAUGMENT = "ildoonet/pytorch-randaugment"


@dataclass(frozen=True)
class CodePeer:
    """One peer of the code: ``--semi_method fix`` alone or with ``--darp``."""

    METHOD: str  # noqa: N815 (the harness's peer interface)
    darp: bool
    #: "code": its ``train_fix``; "joint": our one-pass step in its loop (peers.darp_step)
    step: str = "code"
    REPO: str = REPO  # noqa: N815
    #: environment variable -> the other checkout the code imports (checked before any work)
    NEEDS: tuple[tuple[str, str], ...] = (("RANDAUGMENT_CODE", RANDAUGMENT),)  # noqa: N815

    def argv(self, ours: Ours, out: Path) -> list[str]:
        """The code's command line for our run's budget and hyper-parameters."""
        c = ours.cfg
        if c.lambda_u != 1.0:
            raise ValueError("the code's fix loss is Lx + Lu: lambda_u must be 1")
        args: dict[str, Any] = {
            "--semi_method": "fix",
            "--dataset": _dataset(ours),
            "--epochs": c.epochs,
            "--val-iteration": c.steps_per_epoch,
            "--batch-size": c.batch_size,
            "--lr": c.lr,
            "--ema-decay": c.ema_decay,
            "--tau": c.threshold,
            "--manualSeed": ours.spec.seed,
            "--gpu": "",
            "--out": str(out),
        }
        if self.darp:
            args["--warm"] = int(c.warmup * c.epochs)
            args.update({"--alpha": c.alpha, "--iter_T": c.iter_t, "--num_iter": c.refine_every})
        return [str(x) for kv in args.items() for x in kv] + (["--darp"] if self.darp else [])

    def run(self, ours: Ours, code: Path, work: Path) -> dict[str, Any]:
        """Train with the code's ``main()``; returns the parts of the peer record it produced."""
        seen: dict[str, Any] = {"epochs": [], "mask": [], "refine": 0}
        p = Patches()
        with contextlib.ExitStack() as stack:
            stack.callback(p.restore)
            ra, ra_rev = stack.enter_context(checkout(_randaugment()))
            for name in ("tensorboardX", "progress", "progress.bar"):
                stub = types.ModuleType(name)
                stub.SummaryWriter, stub.Bar = _NoWriter, parts.Bar
                p.set_item(sys.modules, name, stub, "sys.modules", "logging only")
            p.set(sys, "path", [str(ra), *sys.path], f"{RANDAUGMENT} at {ra_rev[:12]} importable")
            p.set(sys, "argv", ["train.py", *self.argv(ours, work)], "the code's command line")
            why = "--gpu '' (set by the code at import; restored after)"
            p.set_item(os.environ, "CUDA_VISIBLE_DEVICES", "", "os.environ", why)
            ds_name = f"dataset.all_{_dataset(ours)}"
            mods = import_code(code, "train", "common", "training_functions", ds_name)
            _patch(ours, p, seen, self.step, *mods, sys.modules["RandAugment.augmentations"])
            stack.callback(os.chdir, os.getcwd())
            os.chdir(work)
            p.note("cwd = a scratch folder", "the code writes log.txt and checkpoints to args.out")
            mods[0].main()
        return _result(ours, seen, p, mods[3], {RANDAUGMENT: ra_rev}, self.darp)


FIXMATCH = CodePeer("fixmatch", darp=False)
FIXMATCH_JOINT = CodePeer("fixmatch", darp=False, step="joint")
DARP = CodePeer("fixmatch+darp", darp=True)
METHOD = DARP.METHOD


def _randaugment() -> Path:
    """The RandAugment checkout named by ``$RANDAUGMENT_CODE``."""
    path = os.environ.get("RANDAUGMENT_CODE")
    if not path:
        raise FileNotFoundError(f"set RANDAUGMENT_CODE to a checkout of {RANDAUGMENT}")
    return Path(path)


def _dataset(ours: Ours) -> str:
    return {10: "cifar10", 100: "cifar100"}[ours.split.num_classes]


def _patch(ours: Ours, p: Patches, seen: dict, step: str, train, common, tf, ds, aug) -> None:
    """Every replacement in the code's modules (see the module docstring)."""
    c, split = ours.cfg, ours.split
    counts = np.bincount(split.labeled_y, minlength=split.num_classes).tolist()
    why = "our split: D; D ∪ U by the code's rule for fix (targets -1, U's labels hidden); test"
    p.set(train, f"get_{_dataset(ours)}", parts.getter(ours, ds, seen), why)
    why = "D's class counts (its target_disb); the U counts it asks for reach only the getter"
    p.set(train, "make_imb_data", lambda *a, **k: list(counts), why)
    p.set(train.models, "WRN", parts.models(ours, seen), "our backbone, our initial weights")
    loader = parts.loader(c.mu, seen)
    p.set(train, "data", proxy_module(torch.utils.data, DataLoader=loader), "mu x B; workers 0")
    why = "our optimiser and per-step lr (quick: SGD Nesterov wd 5e-4 cosine)"
    p.set(train, "optim", proxy_module(torch.optim, Adam=parts.optimiser(ours, seen)), why)
    decay = getattr(c, "decoupled_decay", 0.0)
    why = f"its 0.02 x lr decay -> our decoupled_decay {decay}; float state only"
    p.set(train, "WeightEMA", parts.weight_ema(common.WeightEMA, decay), why)
    cpu_shims(p)
    why = "one-hots sized by their index: mu x B unlabeled (train_fix assumes B)"
    p.set(tf, "torch", proxy_module(torch, zeros=parts.OneHot), why)
    p.set(common, "accuracy", parts.topk, "top-k % (its .view of a transposed tensor fails now)")
    p.set(aug, "np", proxy_module(np, int=int), "np.int (gone since numpy 1.24), SolarizeAdd")
    if step == "joint":
        why = "cause run: FixMatch's one-pass step (weak rows label, one strong view) in its loop"
        p.set(tf, "train_fix", darp_step.joint_train_fix, why)
    _observe(train, tf, p, seen)


def _observe(train, tf, p: Patches, seen: dict) -> None:
    """Wrap ``trains``, ``validate``, the loss and ``opt_solver`` to keep what they see."""
    orig_trains, orig_validate, orig_solver = train.trains, train.validate, tf.opt_solver

    class KeepMask(train.SemiLoss):
        def __call__(self, args, ox, tx, ou, tu, epoch, mask=None):
            seen["mask"].append(float(mask.mean()))
            return super().__call__(args, ox, tx, ou, tu, epoch, mask)

    def keep_trains(args, *rest):
        t0, seen["refine"] = time.time(), 0
        out = orig_trains(args, *rest)
        seen["epochs"].append({
            "epoch": rest[6] + 1, "loss": out[0], "loss_x": out[1], "loss_u": out[2],
            "mask_rate": float(np.mean(seen["mask"])), "refinements": seen["refine"],
            "lr_last": rest[3].param_groups[0]["lr"],
            "s_per_step": (time.time() - t0) / args.val_iteration,
        })  # fmt: skip
        seen["mask"].clear()
        return out

    def keep_validate(loader, model, *a, **k):
        out = orig_validate(loader, model, *a, **k)
        seen["ema"] = model
        seen["epochs"][-1].update(test_acc=float(out[1]), test_gm=float(out[3]))
        return out

    def count_solver(*a, **k):
        seen["refine"] += 1
        return orig_solver(*a, **k)

    p.set(train, "SemiLoss", KeepMask, "keeps each step's mask rate (loss unchanged)")
    p.set(train, "trains", keep_trains, "keeps each epoch's losses and time (unchanged)")
    p.set(train, "validate", keep_validate, "keeps the EMA model and test accuracy (unchanged)")
    p.set(tf, "opt_solver", count_solver, "counts DARP's refinements (unchanged)")


def _result(ours: Ours, seen: dict, p: Patches, ds, deps: dict, darp: bool) -> dict[str, Any]:
    """Scores of the code's final EMA model on our test items, its own log, the patches."""
    ema = seen["ema"].eval()
    items = PilItems(seen["test"].images, seen["test"].ids, seen["test"].targets, ds.transform_val)
    loader = torch.utils.data.DataLoader(items, batch_size=256)
    reports = score({"random": lambda x: ema(x)[0].float()}, loader, ours.split)
    accs = [e["test_acc"] for e in seen["epochs"]]
    out = {
        "metrics": reports.pop("random"),
        "other_heads": reports,
        "code_log": {"epochs": seen["epochs"]},
        "code_final_acc": accs[-1] if accs else None,
        "code_mean_last20": float(np.mean(accs[-20:])) if accs else None,  # what it prints
        "median_last20": float(np.median(accs[-20:])) if accs else None,
        "dependencies": deps,
        "patches": p.applied,
    }
    if darp:
        tol = 0.1 if _dataset(ours) == "cifar10" else 0.3  # training_functions.py:426-429
        out["darp"] = {"target": "labeled (no --est)", "ours_target": ours.cfg.target,
                       "newton_tol": tol, "ours_newton_tol": ours.cfg.newton_tol}  # fmt: skip
    return out
