"""DASO's official code (ytaek-oh/daso, ``main.py`` -> ``lib/algorithm/daso.py``) on our run.

Run as the code's own ``main()`` (its trainer ``lib/algorithm/base_algorithm.py`` ``train``,
DASO's ``run_step`` and ``lib/models/daso_model.py``) with ``configs/<cifar>/fixmatch_daso.yaml``
and its config nodes set from our method config on the command line (:func:`argv`): batch,
mu, steps (MAX_ITER = epochs x steps_per_epoch), lr, momentum, Nesterov, wd, EMA decay,
threshold, lambda_u, and DASO's PRETRAIN_STEPS, PROTO_TEMP, PL_DIST_UPDATE_PERIOD,
WITH_DIST_AWARE, DIST_TEMP, INTERP_ALPHA, PSA_LOSS_WEIGHT, queue size (MODEL.QUEUE.MAX_SIZE,
the node the code reads; also ALGORITHM.DASO.QUEUE_SIZE) and FEAT_DIM (our embedding's).
``peers/crest.py`` drives the same repository's CReST+ (``lib/algorithm/fm_crest.py``) with
:func:`run_code`. Run-time changes (each in the record's ``patches``):

* ``build_<cifar>_dataset``: our D (its labeled transform), U with its labels hidden (the
  code's own unknown-U mode, ``is_ul_unknown``, as for STL-10's unlabeled split; the
  DistributionLogger is put in that mode too), no validation set, our test items; the code's
  transforms and normalisation constants.
* ``build_wrn`` / ``Classifier`` (``lib/models/semi_model.py``): our backbone's embedding and
  our ``random`` head with our run's initial weights (a fresh copy of them at every build).
* Optimiser and schedule as OUR engine makes them (our quick profile, not the code's constant
  lr): SGD over our weight-decay groups (no decay on biases and BatchNorm, where the code
  decays every parameter) and our engine's ``lr_at`` per step (cosine to 0 over the Train
  step; the code's WarmupCosineLRFixMatch ends at 0.2 lr and is off in its configs).
* CPU: ``GPU_ID`` = ``cpu`` (the code moves its queue, EMA and priors to ``cfg.GPU_ID``),
  DataLoader workers 0, TensorBoard stubbed when absent; checkpoints not written (their meta
  reads the validation history, base_trainer.py:110, and our split has none).
* Observed, not changed: the trainer (its final EMA model is scored by us on the test items,
  raw and with the code's test-time logit adjustment) and its per-epoch log (metrics.json).
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
METHOD = "fixmatch+daso"
ALGORITHM = "DASO"
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
    """``--config-file`` and the nodes shared by every algorithm of the code, then ``nodes``."""
    c, train = ours.cfg, train_step(ours)
    key = {10: "cifar10", 100: "cifar100"}[ours.split.num_classes]
    steps = c.epochs * c.steps_per_epoch
    shared = {
        "MODEL.NUM_CLASSES": ours.split.num_classes,
        "MODEL.EMA_DECAY": float(c.ema_decay),
        "MODEL.LOSS.UNLABELED_LOSS_WEIGHT": float(c.lambda_u),
        "ALGORITHM.CONFIDENCE_THRESHOLD": float(c.threshold),
        "SOLVER.IMS_PER_BATCH": c.batch_size,
        "SOLVER.UNLABELED_BATCH_RATIO": c.mu,
        "SOLVER.MAX_ITER": steps,
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


def argv(ours: Ours, out: Path) -> list[str]:
    """The code's command line (config file and yacs nodes) for our DASO config."""
    c = ours.cfg
    return config_argv(
        ours,
        out,
        "fixmatch_daso.yaml",
        {
            "ALGORITHM.DASO.PRETRAIN_STEPS": c.pretrain_steps,
            "ALGORITHM.DASO.PROTO_TEMP": float(c.proto_temp),
            "ALGORITHM.DASO.PL_DIST_UPDATE_PERIOD": c.dist_period,
            "ALGORITHM.DASO.WITH_DIST_AWARE": bool(c.dist_aware),
            "ALGORITHM.DASO.DIST_TEMP": float(c.dist_temp),
            "ALGORITHM.DASO.INTERP_ALPHA": float(c.interp_alpha),
            "ALGORITHM.DASO.PSA_LOSS_WEIGHT": float(c.lambda_align),
            "ALGORITHM.DASO.QUEUE_SIZE": c.queue_size,
            "MODEL.QUEUE.MAX_SIZE": c.queue_size,  # the node FeatureQueue reads
            "MODEL.QUEUE.FEAT_DIM": ours.model.feat_dim,
        },
    )


def run(ours: Ours, code: Path, work: Path) -> dict[str, Any]:
    """Train with the code's ``main()``; returns the parts of the peer record it produced."""
    return run_code(ours, code, work, argv(ours, work), ALGORITHM)


def run_code(
    ours: Ours,
    code: Path,
    work: Path,
    args: list[str],
    algorithm: str,
    extra: Callable[[dict[str, Any], Patches, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The code's ``main()`` on our split, model and schedule (``extra`` adds patches)."""
    mods = dict(zip(MODULES, import_code(code, *MODULES), strict=True))
    seen: dict[str, Any] = {}
    p = Patches()
    _patch_data(ours, mods, p)
    _patch_model(ours, mods, p)
    _patch_solver(ours, mods, p)
    if extra is not None:  # before _patch_run replaces the algorithm's class
        extra(mods, p, seen)
    _patch_run(mods, p, seen, algorithm)
    args = [args[0], str(code / args[1]), *args[2:]]
    main = mods["main"]
    try:
        main.main(main.default_argument_parser().parse_args(args))
    finally:
        p.restore()
    return _result(ours, seen, p)


def _patch_data(ours: Ours, mods: dict[str, Any], p: Patches) -> None:
    """The dataset builder the config names: our D, U (labels hidden) and test items."""
    split, base = ours.split, mods["lib.dataset.base"]
    train, test = hwc(ours.data.train), hwc(ours.data.test)
    key = {10: "cifar10", 100: "cifar100"}[split.num_classes]

    def build(cfg: Any) -> tuple:
        l_t, ul_t, eval_t = mods["lib.dataset.transform"].build_transforms(cfg, key)
        items = base.BaseNumpyDataset
        d = items(
            {"images": train[split.labeled_idx], "labels": np.asarray(split.labeled_y)},
            transforms=l_t,
        )
        hidden = np.full(len(split.unlabeled_idx), -1)
        u = items(
            {"images": train[split.unlabeled_idx], "labels": hidden},
            transforms=ul_t,
            is_ul_unknown=True,
        )
        t = items(
            {"images": test[split.test_idx], "labels": np.asarray(split.test_y)}, transforms=eval_t
        )
        return d, u, None, t

    p.set(
        mods["lib.dataset.loader.build"],
        f"build_{key}_dataset",
        build,
        "our split: D; U with labels hidden (is_ul_unknown); no validation set; our test",
    )
    logger = mods["lib.algorithm.base_algorithm"].DistributionLogger
    p.set(
        mods["lib.algorithm.base_algorithm"],
        "DistributionLogger",
        lambda meters, num_classes, is_ul_unknown: logger(meters, num_classes, True),
        "U's labels unknown to the code: no pseudo-label precision/recall logging",
    )


def _patch_model(ours: Ours, mods: dict[str, Any], p: Patches) -> None:
    """The code's backbone and classifier: ours, a fresh copy of our initial weights each build."""
    pristine = copy.deepcopy(ours.model)
    sm, c = mods["lib.models.semi_model"], ours.split.num_classes
    p.set(
        sm,
        "build_wrn",
        lambda cfg: Encoder(copy.deepcopy(pristine.embed), c),
        "our backbone's embedding, our run's initial weights",
    )
    p.set(
        sm,
        "Classifier",
        lambda *a, **k: copy.deepcopy(pristine.heads["random"]),
        "our 'random' head, our run's initial weights",
    )
    main = mods["main"]
    get_cfg = main.get_cfg

    def cpu_cfg() -> Any:
        cfg = get_cfg()
        cfg.GPU_ID = "cpu"
        return cfg

    p.set(main, "get_cfg", cpu_cfg, "GPU_ID 'cpu': the code's queue, EMA and priors on the CPU")


def _patch_solver(ours: Ours, mods: dict[str, Any], p: Patches) -> None:
    """SGD with our weight-decay groups and our engine's per-step schedule."""
    train, bt = train_step(ours), mods["lib.engine.base_trainer"]

    def sgd(cfg: Any, model: nn.Module) -> torch.optim.Optimizer:
        groups = decay_groups(model, list(model.parameters()), train.no_decay)
        s = cfg.SOLVER
        return torch.optim.SGD(
            groups,
            lr=s.BASE_LR,
            momentum=s.SGD.MOMENTUM,
            weight_decay=s.SGD.WEIGHT_DECAY,
            nesterov=s.SGD.NESTEROV,
        )

    def schedule(cfg: Any, optimizer: Any, override_max_iter: int | None = None) -> Any:
        total = override_max_iter or cfg.SOLVER.MAX_ITER
        spe = ours.cfg.steps_per_epoch
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda k: lr_at(train, k, total, spe) / train.lr
        )

    p.set(bt, "build_optimizer", sgd, f"our SGD groups: no weight decay on {train.no_decay}")
    p.set(
        bt,
        "build_lr_scheduler",
        schedule,
        f"our engine's lr_at per step ({train.schedule!r} over each Train step)",
    )


def _patch_run(mods: dict[str, Any], p: Patches, seen: dict[str, Any], algorithm: str) -> None:
    """Keep the trainer main() builds; no checkpoint files."""
    lib_alg = mods["lib.algorithm"]
    cls = getattr(lib_alg, algorithm)

    def keep(cfg: Any) -> Any:
        t = seen["trainer"] = cls(cfg)
        ours_like = nn.Module()  # the code's model under our names: its hash is our init_hash
        ours_like.embed, ours_like.heads = (
            t.model.encoder.net,
            nn.ModuleDict({"random": t.model.classifier}),
        )
        seen["code_init_hash"] = weights_hash(ours_like)
        return t

    p.set(lib_alg, algorithm, keep, "keeps the trainer (its EMA model is scored; unchanged)")
    p.set(
        mods["lib.models.losses.accuracy"],
        "accuracy",
        topk_accuracy,
        "its logged top-k accuracy: .view() of a transposed tensor fails in torch >= 1.x",
    )
    detach_ = torch.Tensor.detach_
    p.set(
        torch.Tensor,
        "detach_",
        lambda t: t.detach() if t._base is not None else detach_(t),
        "detach_() of a view (its chunk of the weak logits, only read after) is detach()",
    )
    p.set(
        mods["lib.engine.base_trainer"].BaseTrainer,
        "save_checkpoint",
        lambda self, **k: None,
        "no checkpoint files (their meta reads a validation history; none here)",
    )


def topk_accuracy(output: torch.Tensor, target: torch.Tensor, topk: tuple[int, ...] = (1,)):
    """Percent of rows whose target is among the ``k`` largest outputs, for each ``k``."""
    with torch.no_grad():
        hit = output.topk(max(topk), 1).indices.eq(target.view(-1, 1))
        res = [float(hit[:, :k].any(1).float().mean()) * 100.0 for k in topk]
    return res[0] if len(res) == 1 else res


def _result(ours: Ours, seen: dict[str, Any], p: Patches) -> dict[str, Any]:
    """Scores of the final EMA model (raw and logit-adjusted), the code's own log, the patches."""
    t = seen["trainer"]
    ema = t.ema_model
    ema.eval()
    log_prior = t.p_data.view(1, -1).log().cpu()
    last: dict[str, Any] = {}

    def raw(x: torch.Tensor) -> torch.Tensor:
        if last.get("x") is not x:
            last["x"], last["y"] = x, ema(x, is_train=False).float()
        return last["y"]

    heads = {"random": raw, "logit_adjusted": lambda x: raw(x) - log_prior}
    reports = score(heads, ((x, y) for x, y, _ in t.test_loader), ours.split)
    path = Path(t.cfg.OUTPUT_DIR) / "metrics.json"
    log = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    epochs = [{k: v for k, v in e.items() if k.startswith(LOG_KEYS)} for e in log]
    accs = list(t.eval_history.get("test/top1", []))
    return {
        "metrics": reports.pop("random"),
        "other_heads": reports,
        "code_log": {"epochs": epochs, **seen.get("code_log", {})},
        "code_final_acc": accs[-1] if accs else None,
        "code_final_acc_la": (t.eval_history.get("test/top1_la") or [None])[-1],
        "median_last20": float(np.median(accs[-20:])) if accs else None,
        "code_init_hash": seen["code_init_hash"],
        "seconds_per_step": t.iter_timer.avg,
        "patches": p.applied,
    }
