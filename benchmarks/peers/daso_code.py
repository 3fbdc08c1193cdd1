"""Running ytaek-oh/daso's ``main.py`` on our run: shared by ``peers.daso`` and ``peers.crest``.

:func:`run_code` calls the code's own ``main()`` (``lib/engine/defaults.py`` setup, the trainer
``lib/algorithm/base_algorithm.py`` ``train``, the algorithm's ``run_step``) with a config
file of the repository and yacs nodes from our config (:func:`config_argv`: batch, mu, steps,
lr, momentum, Nesterov, wd, EMA decay, threshold, lambda_u, eval/log period = our epoch, seed).
Run-time changes (each in the record's ``patches``):

* ``build_<cifar>_dataset``: our D (the code's labeled transform), U with its labels hidden
  (the code's own unknown-U mode ``is_ul_unknown``, as for STL-10's unlabeled split; the
  ``DistributionLogger`` in that mode too), no validation set, our test items; the code's
  transforms and normalisation constants.
* ``build_wrn`` / ``Classifier`` (lib/models/semi_model.py): our embedding and our ``random``
  head, a fresh copy of our run's initial weights at every build (``code_init_hash`` checks).
* ``build_optimizer`` / ``build_lr_scheduler``: OUR engine's optimiser and schedule, not the
  code's: SGD over our weight-decay groups (no decay on biases and BatchNorm; the code decays
  every parameter, solver/build.py:15) and our engine's ``lr_at`` per step (cosine to 0 over
  each Train step; the code's configs keep lr constant, APPLY_SCHEDULER False, and its
  WarmupCosineLRFixMatch would end at 0.2 lr); ``override_max_iter`` (CReST's generation) kept.
* CPU and current torch: ``GPU_ID`` 'cpu' (queue, EMA, priors go to ``cfg.GPU_ID``), 0
  DataLoader workers, TensorBoard stubbed when absent; ``detach_()`` of a view (the weak
  logits' chunk, fixmatch.py:52 / fm_crest.py:196) -> ``detach()``; the logged top-k accuracy
  without ``.view`` of a transposed tensor; no checkpoints (their meta reads a validation
  history, base_trainer.py:110-111; none here).
* Observed only: the trainer (its final EMA model is scored by us, raw and with the code's
  test-time logit adjustment) and its per-epoch log (metrics.json).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sslt_bench.train.engine import lr_at
from sslt_bench.train.session import decay_groups, weights_hash
from sslt_bench.train.stages import Train

from .common import Ours, Patches, hwc, import_code, score

REPO = "ytaek-oh/daso"
MODULES = (
    "main",
    "lib.algorithm",
    "lib.algorithm.base_algorithm",
    "lib.engine.base_trainer",
    "lib.models.semi_model",
    "lib.dataset.loader.build",
    "lib.dataset.transform",
    "lib.dataset.base",
    "lib.models.losses.accuracy",
)
LOG_KEYS = ("iteration", "train/", "test/top1", "misc/lr", "misc/iter_time", "crest/", "imb_")
Extra = Callable[[dict[str, Any], Patches, dict[str, Any]], None]


class Encoder(nn.Module):
    """Our embedding as the code's WRN: features, ``num_classes``, ``out_features``."""

    def __init__(self, embed: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.net, self.num_classes, self.out_features = embed, num_classes, embed.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[B, D]``."""
        return self.net(x)


def train_step(ours: Ours) -> Train:
    """Our method's (first) Train step: its optimiser, weight-decay groups and schedule."""
    train = next(s for s in ours.method.plan() if isinstance(s, Train))
    assert train.optimizer == "sgd" and not train.decoupled_decay, "the code trains with SGD"
    return train


def config_argv(ours: Ours, out: Path, config: str, nodes: dict[str, Any]) -> list[str]:
    """``--config-file`` and the nodes every algorithm of the code reads, then ``nodes``."""
    c, train = ours.cfg, train_step(ours)
    key = {10: "cifar10", 100: "cifar100"}[ours.split.num_classes]
    shared = {
        "MODEL.NUM_CLASSES": ours.split.num_classes,
        "MODEL.EMA_DECAY": float(c.ema_decay),
        "MODEL.LOSS.UNLABELED_LOSS_WEIGHT": float(c.lambda_u),
        "ALGORITHM.CONFIDENCE_THRESHOLD": float(c.threshold),
        "SOLVER.IMS_PER_BATCH": c.batch_size,
        "SOLVER.UNLABELED_BATCH_RATIO": c.mu,
        "SOLVER.MAX_ITER": c.epochs * c.steps_per_epoch,
        "SOLVER.BASE_LR": float(train.lr),
        "SOLVER.SGD.MOMENTUM": float(train.momentum),
        "SOLVER.SGD.WEIGHT_DECAY": float(train.weight_decay),
        "SOLVER.SGD.NESTEROV": bool(train.nesterov),
        "SOLVER.APPLY_SCHEDULER": True,  # our engine's schedule (a patch), constant included
        "DATASET.NUM_VALID": 0,
        "DATASET.NUM_WORKERS": 0,
        "PERIODS.EVAL": c.steps_per_epoch,
        "PERIODS.LOG": c.steps_per_epoch,
        "PERIODS.CHECKPOINT": 0,
        "SEED": ours.spec.seed,
        "OUTPUT_DIR": str(out),
    }
    opts = [x for k, v in {**shared, **nodes}.items() for x in (k, str(v))]
    return ["--config-file", f"configs/{key}/{config}", *opts]


def run_code(
    ours: Ours, code: Path, args: list[str], algorithm: str, extra: Extra | None = None
) -> dict[str, Any]:
    """The code's ``main()`` with ``args`` on our split, model and schedule (+ ``extra``)."""
    mods = dict(zip(MODULES, import_code(code, *MODULES), strict=True))
    seen: dict[str, Any] = {}
    p = Patches()
    for rows in (_data(ours, mods), _model(ours, mods), _solver(ours, mods)):
        for obj, name, value, why in rows:
            p.set(obj, name, value, why)
    if extra is not None:  # before _shims replaces the algorithm's class
        extra(mods, p, seen)
    for obj, name, value, why in _shims(mods, seen, algorithm):
        p.set(obj, name, value, why)
    main = mods["main"]
    try:
        main.main(
            main.default_argument_parser().parse_args([args[0], str(code / args[1]), *args[2:]])
        )
    finally:
        p.restore()
    return _result(ours, seen, p)


def _data(ours: Ours, mods: dict[str, Any]) -> list[tuple]:
    """The dataset builder the config names: our D, U (labels hidden) and test items."""
    s, items = ours.split, mods["lib.dataset.base"].BaseNumpyDataset
    train, test = hwc(ours.data.train), hwc(ours.data.test)
    key = {10: "cifar10", 100: "cifar100"}[s.num_classes]
    alg = mods["lib.algorithm.base_algorithm"]
    logger = alg.DistributionLogger

    def build(cfg: Any) -> tuple:
        l_t, ul_t, eval_t = mods["lib.dataset.transform"].build_transforms(cfg, key)
        d = {"images": train[s.labeled_idx], "labels": np.asarray(s.labeled_y)}
        u = {"images": train[s.unlabeled_idx], "labels": np.full(len(s.unlabeled_idx), -1)}
        t = {"images": test[s.test_idx], "labels": np.asarray(s.test_y)}
        u_set = items(u, transforms=ul_t, is_ul_unknown=True)
        return items(d, transforms=l_t), u_set, None, items(t, transforms=eval_t)

    def unknown_u(meters: Any, num_classes: int, is_ul_unknown: bool) -> Any:
        return logger(meters, num_classes, True)

    return [
        (mods["lib.dataset.loader.build"], f"build_{key}_dataset", build,
         "our split: D; U, labels hidden (is_ul_unknown); no validation set; our test"),
        (alg, "DistributionLogger", unknown_u, "U's labels unknown: no pseudo-label recall log"),
    ]  # fmt: skip


def _model(ours: Ours, mods: dict[str, Any]) -> list[tuple]:
    """The code's backbone and classifier: ours, a fresh copy of our initial weights each build."""
    pristine, sm = copy.deepcopy(ours.model), mods["lib.models.semi_model"]

    def wrn(cfg: Any) -> Encoder:
        return Encoder(copy.deepcopy(pristine.embed), ours.split.num_classes)

    def head(*args: Any, **kwargs: Any) -> nn.Module:
        return copy.deepcopy(pristine.heads["random"])

    return [
        (sm, "build_wrn", wrn, "our backbone's embedding, our run's initial weights"),
        (sm, "Classifier", head, "our 'random' head, our run's initial weights"),
    ]


def _solver(ours: Ours, mods: dict[str, Any]) -> list[tuple]:
    """SGD with our weight-decay groups and our engine's per-step schedule."""
    train, spe = train_step(ours), ours.cfg.steps_per_epoch

    def sgd(cfg: Any, model: nn.Module) -> torch.optim.Optimizer:
        s, groups = cfg.SOLVER, decay_groups(model, list(model.parameters()), train.no_decay)
        sgd = s.SGD
        return torch.optim.SGD(groups, lr=s.BASE_LR, momentum=sgd.MOMENTUM,
                               weight_decay=sgd.WEIGHT_DECAY, nesterov=sgd.NESTEROV)  # fmt: skip

    def schedule(cfg: Any, opt: Any, override_max_iter: int | None = None) -> Any:
        total = override_max_iter or cfg.SOLVER.MAX_ITER
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda k: lr_at(train, k, total, spe) / train.lr
        )

    bt = mods["lib.engine.base_trainer"]
    return [
        (bt, "build_optimizer", sgd, f"our SGD groups: no weight decay on {train.no_decay}"),
        (bt, "build_lr_scheduler", schedule, f"our engine's lr_at per step ({train.schedule!r})"),
    ]


def _shims(mods: dict[str, Any], seen: dict[str, Any], algorithm: str) -> list[tuple]:
    """Keep the trainer main() builds; CPU and current-torch shims; no checkpoint files."""
    lib_alg, main, detach_ = mods["lib.algorithm"], mods["main"], torch.Tensor.detach_
    cls, get_cfg = getattr(lib_alg, algorithm), main.get_cfg

    def keep(cfg: Any) -> Any:
        t = seen["trainer"] = cls(cfg)
        as_ours = nn.Module()  # the code's model under our names: its hash is our init_hash
        as_ours.embed, as_ours.heads = (
            t.model.encoder.net,
            nn.ModuleDict({"random": t.model.classifier}),
        )
        seen["code_init_hash"] = weights_hash(as_ours)
        return t

    def cpu_cfg() -> Any:
        cfg = get_cfg()
        cfg.GPU_ID = "cpu"
        return cfg

    def detach(t: torch.Tensor) -> torch.Tensor:
        return t.detach() if t._base is not None else detach_(t)

    return [
        (lib_alg, algorithm, keep, "keeps the trainer (its EMA model is scored; unchanged)"),
        (main, "get_cfg", cpu_cfg, "GPU_ID 'cpu': the code's queue, EMA and priors on the CPU"),
        (torch.Tensor, "detach_", detach, "detach_() of a view (weak logits' chunk) = detach()"),
        (mods["lib.models.losses.accuracy"], "accuracy", topk_accuracy,
         "logged top-k accuracy: .view() of a transposed tensor fails in current torch"),
        (mods["lib.engine.base_trainer"].BaseTrainer, "save_checkpoint", lambda self, **k: None,
         "no checkpoint files (their meta reads a validation history; none here)"),
    ]  # fmt: skip


def topk_accuracy(output: torch.Tensor, target: torch.Tensor, topk: tuple[int, ...] = (1,)) -> Any:
    """Percent of rows whose target is among the ``k`` largest outputs, for each ``k``."""
    with torch.no_grad():
        hit = output.topk(max(topk), 1).indices.eq(target.view(-1, 1))
        res = [float(hit[:, :k].any(1).float().mean()) * 100.0 for k in topk]
    return res[0] if len(res) == 1 else res


def _result(ours: Ours, seen: dict[str, Any], p: Patches) -> dict[str, Any]:
    """Scores of the final EMA model (raw and logit-adjusted), the code's own log, the patches."""
    t, last = seen["trainer"], {}
    t.ema_model.eval()
    log_prior = t.p_data.view(1, -1).log().cpu()

    def raw(x: torch.Tensor) -> torch.Tensor:
        if last.get("x") is not x:  # one forward pass per batch for both heads
            last["x"], last["y"] = x, t.ema_model(x, is_train=False).float()
        return last["y"]

    heads = {"random": raw, "logit_adjusted": lambda x: raw(x) - log_prior}
    reports = score(heads, ((x, y) for x, y, _ in t.test_loader), ours.split)
    path = Path(t.cfg.OUTPUT_DIR) / "metrics.json"
    log = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    accs, hist = list(t.eval_history.get("test/top1", [])), t.eval_history
    return {
        "metrics": reports.pop("random"),
        "other_heads": reports,
        "code_log": {
            "epochs": [{k: v for k, v in e.items() if k.startswith(LOG_KEYS)} for e in log],
            **seen.get("code_log", {}),
        },
        "code_final_acc": accs[-1] if accs else None,
        "code_final_acc_la": (hist.get("test/top1_la") or [None])[-1],
        "median_last20": float(np.median(accs[-20:])) if accs else None,
        "code_init_hash": seen["code_init_hash"],
        "seconds_per_step": t.iter_timer.avg,
        "patches": p.applied,
    }
