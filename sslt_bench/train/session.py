"""One run's live state and the executors of a plan's steps (the runner's inner loop).

:class:`~sslt_bench.train.runner.Runner` resolves a run, loads or resumes it and writes its record;
a :class:`Session` holds what the steps share while the plan executes (model and method
state in ``ctx``, data and split, the loader, history, progress, the checkpoint callback) and
runs each :mod:`~sslt_bench.train.stages` step. There is one training loop:
:class:`Train` steps run SGD epochs of :func:`~sslt_bench.train.engine.train_epoch`, and a
:class:`TrainHead` is turned into a :class:`Train` of the head alone, over augmented images
through the frozen embedding (``features="augmented"``, :func:`head_as_train`) or over cached
features (:func:`head_on_features` with a :class:`~sslt_bench.train.engine.FeatureLoader`).
Pseudo-labelling (with per-split accuracy from U's hidden labels), diagnostic evaluations and
method calls are the other steps. Checkpoints are written after every training epoch (by
this module) and after every step (by the runner).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.augment import Augmenter
from ..data.source import ImageSource, SSLTData
from ..data.split import Split
from ..methods.base import Method
from . import session_diag
from .diagnostics import DiagnosticSettings
from .distributed import Dist
from .ema import make_ema
from .engine import FeatureLoader, Loader, Optimiser, confidences, predict, train_epoch
from .metrics import accuracy_report
from .stages import Batch, Call, Evaluate, PseudoLabel, Step, StepContext, Train, TrainHead


@dataclass
class Session:
    """The state one run's steps share; :meth:`run_step` executes one step of the plan.

    Attributes:
        name: the method's registered name (progress-bar labels).
        ctx: the model, EMA, method state and counts handed to loss functions.
        data: the data set (train and test image sources).
        split: the split (labeled, unlabeled and test indices; hidden labels for diagnostics).
        method: the method instance (evaluation head, whether the EMA is evaluated).
        loader: turns item ids into augmented device batches.
        augmenter: normalisation/augmentation for feature extraction.
        embed: ``engine.embed_items`` (sharded across ranks under DDP).
        dist: the process group wrapper (a no-op for single-process runs).
        amp: ``none``, ``bf16`` or ``fp16``.
        workers: DataLoader workers for file-backed data.
        show_progress: draw a progress bar per training step.
        eval_every: also evaluate every N epochs for learning curves (0: never).
        min_steps: the data set's floor on batches per epoch (0: none).
        history: per-epoch logs, diagnostic evaluations and pseudo-label reports.
        progress: resume position (step, epoch) and the timing counters.
        checkpoint: writes a checkpoint with the given optimiser state (or none).
        opt_state: an optimiser state to restore at the start of the next Train step.
        diag: pseudo-label diagnostics and test-trajectory settings (never change training).
    """

    name: str
    ctx: StepContext
    data: SSLTData
    split: Split
    method: Method
    loader: Loader
    augmenter: Augmenter
    embed: Callable[..., torch.Tensor]
    dist: Dist
    amp: str
    workers: int
    show_progress: bool
    eval_every: int
    min_steps: int
    history: dict[str, list]
    progress: dict[str, Any]
    checkpoint: Callable[[torch.optim.Optimizer | None], None]
    opt_state: dict | None = None
    diag: DiagnosticSettings = dataclasses.field(default_factory=DiagnosticSettings)
    diag_time: float = 0.0
    _positions: np.ndarray | None = dataclasses.field(default=None, init=False, repr=False)

    def features(self, net: torch.nn.Module, source: ImageSource, idx: np.ndarray) -> torch.Tensor:
        """Un-augmented features of ``source``'s items ``idx`` under ``net``."""
        return self.embed(
            net,
            source,
            idx,
            self.augmenter,
            self.ctx.device,
            workers=self.workers,
            amp=self.amp,
        )

    def evaluate(self, head: str, use_ema: bool) -> dict[str, Any]:
        """Test accuracy (overall, many/medium/few, per class) of ``head``."""
        return self.evaluate_heads((head,), use_ema)[head]

    def evaluate_heads(self, heads: tuple[str, ...], use_ema: bool) -> dict[str, dict[str, Any]]:
        """Test accuracy of each of ``heads`` (one feature pass shared by all of them)."""
        ctx, split = self.ctx, self.split
        net = ctx.ema if use_ema and ctx.ema is not None else ctx.model
        feats = self.features(net, self.data.test, split.test_idx)
        return {
            h: accuracy_report(
                predict(net, h, feats).numpy(), split.test_y, split.class_split, split.num_classes
            )
            for h in heads
        }

    def run_step(self, step: Step) -> None:
        """Execute one step of the plan (the runner checkpoints after it)."""
        if isinstance(step, Train):
            self._train(step)
            self.opt_state = None
        elif isinstance(step, TrainHead):
            self._train_head(step)
            self.opt_state = None
        elif isinstance(step, PseudoLabel):
            self._pseudo_label(step)
        elif isinstance(step, Evaluate):
            self.history["evals"].append({"step": step.name, **self.evaluate(step.head, step.ema)})
        elif isinstance(step, Call):
            step.fn(self.ctx)

    def _train_head(self, step: TrainHead) -> None:
        """A head on augmented images, or on cached features: a Train step either way."""
        if step.features == "augmented":
            self._train(head_as_train(step))
            return
        ctx = self.ctx
        pool_ids, _ = pool_of(step.pool, self.split, ctx)
        feats = self.features(ctx.model, self.data.train, self.loader.item_src[pool_ids.numpy()])
        self._train(head_on_features(step), FeatureLoader(feats, pool_ids, ctx.device))

    def _pseudo_label(self, step: PseudoLabel) -> None:
        ctx, split = self.ctx, self.split
        net = ctx.ema if step.ema and ctx.ema is not None else ctx.model
        if step.view == "none":
            feats = self.features(net, self.data.train, split.unlabeled_idx)
        else:
            seed = int(torch.randint(2**62, (1,), generator=ctx.generator))
            feats = self.embed(
                net,
                self.data.train,
                split.unlabeled_idx,
                self.augmenter,
                ctx.device,
                workers=self.workers,
                amp=self.amp,
                view=step.view,
                seed=seed,
            )
        pseudo = predict(net, step.head, feats)
        ctx.state[step.key] = pseudo.to(ctx.device)
        if step.scores is not None:
            ctx.state[step.scores] = confidences(net, step.head, feats).to(ctx.device)
        rep = accuracy_report(
            pseudo.numpy(), split.unlabeled_y_hidden, split.class_split, split.num_classes
        )
        self.history["pseudo_labels"].append({"step": step.name, **rep})
        pos = session_diag.u_positions(self)
        session_diag.score_u(self, step.name, None, pseudo[pos].numpy(), None, "pseudo-label")

    def _train(self, step: Train, features: FeatureLoader | None = None) -> None:
        """SGD epochs of ``step`` from the resume position; a checkpoint after each.

        With ``features`` (a head on cached features) every rank trains the same head on all
        of them, and the epochs count neither towards training time and images nor towards
        pseudo-label diagnostics (they see no images).
        """
        ctx, progress, dist = self.ctx, self.progress, self.dist
        model = ctx.model
        for name in step.reset_heads if progress["epoch"] == 0 else ():
            model.reset_head(name, ctx.generator)
        if step.ema_decay is not None and ctx.ema is None:
            ctx.ema = make_ema(model)
        opt = self._optimiser(step)
        pool = pool_of(step.pool, self.split, ctx)
        unl_ids = torch.arange(
            0 if step.unlabeled and step.unlabeled.include_labeled else ctx.num_labeled,
            ctx.num_labeled + ctx.num_unlabeled,
        )
        bar = self._bar(step, progress["epoch"])
        local = features is not None
        loader = features if local else self.loader
        run_step = step if local else dist.wrap_step(step, model)
        options = {
            "shard": (0, 1) if local else (dist.rank, dist.world_size),
            "min_steps": 0 if local else self.min_steps,
            "progress": bar,
            "after_step": None if local else session_diag.step_hook(self, step),
        }
        for epoch in range(progress["epoch"], step.epochs):
            ctx.epoch, ctx.epochs = epoch, step.epochs
            model.train()
            if "embed" not in step.params and step.embed_bn == "eval":
                model.embed.eval()
            t, self.diag_time = time.time(), 0.0
            before = dist.snapshot(ctx.state)
            stats = train_epoch(run_step, ctx, loader, pool, unl_ids, opt, **options)
            dist.sync_state(ctx.state, before)
            dist.sync_modules(model, ctx.ema)
            self._end_epoch(step, epoch, dist.reduce_stats(stats), time.time() - t, local)
            if bar is not None:
                bar.update(1)
            self.checkpoint(opt.opt)
        if bar is not None:
            bar.close()

    def _optimiser(self, step: Train) -> Optimiser:
        """SGD or Adam over the step's parameters (others frozen), restoring a resumed state."""
        model = self.ctx.model
        groups = decay_groups(model, trained_params(model, step), step.no_decay)
        if step.optimizer == "adam":
            opt = torch.optim.Adam(groups, lr=step.lr, weight_decay=step.weight_decay)
        else:
            opt = torch.optim.SGD(
                groups,
                lr=step.lr,
                momentum=step.momentum,
                weight_decay=step.weight_decay,
                nesterov=step.nesterov,
            )
        if self.opt_state is not None:
            opt.load_state_dict(self.opt_state)
        scaler = torch.amp.GradScaler("cuda") if self.amp == "fp16" else None
        return Optimiser(opt, self.amp, scaler)

    def _end_epoch(self, step: Train, epoch: int, stats: dict, seconds: float, local: bool) -> None:
        """Method hook, timing, diagnostics, learning-curve evaluation and the epoch's log."""
        ctx, progress = self.ctx, self.progress
        if step.on_epoch_end is not None:
            step.on_epoch_end(ctx)
        images = stats.pop("images")
        if not local:
            progress["train_time"] += seconds - self.diag_time
            progress["images"] += images
            if not self.diag.every_steps:
                self._diagnose(step, epoch + 1, None)
            self._trajectory(step, epoch)
        entry = {"step": step.name, "epoch": epoch + 1, **stats}
        every = self.eval_every
        if not local and every and ((epoch + 1) % every == 0 or epoch + 1 == step.epochs):
            head = "random" if "random" in ctx.model.heads else self.method.eval_head
            report = self.evaluate(head, False)
            entry["test"] = {k: v for k, v in report.items() if k != "per_class"}
        self.history["epochs"].append(entry)
        progress["epoch"] = epoch + 1

    # -- diagnostics (session_diag.py; U's hidden labels live here and in the runner only) -----
    def _diagnose(self, step: Train, epoch: int, opt_step: int | None) -> None:
        """Score ``step``'s current pseudo labels on U (history ``u_diagnostics``)."""
        session_diag.diagnose(self, step, epoch, opt_step)

    def _trajectory(self, step: Train, epoch: int) -> None:
        """A test evaluation of the evaluated model, every N epochs of a step-based step."""
        session_diag.trajectory(self, step, epoch)

    def _bar(self, step: Train, start: int):
        if not self.show_progress or not self.dist.is_main:
            return None
        from tqdm.auto import tqdm

        return tqdm(
            total=step.epochs,
            initial=start,
            desc=f"{self.name}:{step.name}",
            unit="ep",
            leave=False,
            dynamic_ncols=True,
        )


def head_as_train(step: TrainHead) -> Train:
    """A :class:`TrainHead` on augmented images as the :class:`Train` step that runs it.

    Only the head's parameters train; the frozen embedding sees each batch's weak view with
    BatchNorm in ``step.bn_mode``; a reset happens once, at the step's first epoch (resume-safe).
    """
    return Train(
        step.name,
        step.epochs,
        functools.partial(Method.ce_loss, head=step.head),
        params=(f"heads.{step.head}",),
        pool=step.pool,
        sampling=step.sampling,
        batch_size=step.batch_size,
        lr=step.lr,
        momentum=step.momentum,
        weight_decay=step.weight_decay,
        schedule=step.schedule,
        reset_heads=(step.head,) if step.reset else (),
        embed_bn=step.bn_mode,
        epoch_size=step.epoch_size,
    )


def head_on_features(step: TrainHead) -> Train:
    """A :class:`TrainHead` on cached features as the :class:`Train` step that runs it.

    The same step as :func:`head_as_train` but its loss applies only the head: the batches
    are feature rows (:class:`~sslt_bench.train.engine.FeatureLoader`), not images.
    """
    return dataclasses.replace(
        head_as_train(step), loss=functools.partial(head_ce_loss, head=step.head)
    )


def head_ce_loss(batch: Batch, ctx: StepContext, head: str) -> torch.Tensor:
    """Cross-entropy of ``head`` applied to a batch of features."""
    return F.cross_entropy(ctx.model.heads[head](batch.x), batch.y)


def weights_hash(module: torch.nn.Module) -> str:
    """SHA-256 (16 hex digits) of a module's state_dict: names, dtypes, shapes and bytes.

    Keys in sorted order, tensors as contiguous CPU bytes (memory format and device do not
    matter, values do): two runs hash equal exactly when their weights are bit-identical.
    """
    h = hashlib.sha256()
    state = module.state_dict()
    for key in sorted(state):
        t = state[key].detach().to("cpu").contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _describe(value: Any) -> Any:
    """A JSON-able description of a step field (callables by name, bound ones with config)."""
    if isinstance(value, functools.partial):
        return {"partial": _describe(value.func), "kw": _describe(value.keywords)}
    if callable(value):
        owner = getattr(value, "__self__", None)
        cfg = getattr(owner, "cfg", None)
        name = getattr(value, "__qualname__", type(value).__name__)
        return {"fn": name, "cfg": _describe(cfg)} if cfg is not None else {"fn": name}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _describe(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not (
                f.metadata.get("digest") == "omit_default" and getattr(value, f.name) == f.default
            )
        }
    if isinstance(value, dict):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    return value


def _omitted(f: dataclasses.Field, value: Any) -> bool:
    """A field left out of the digest: marked ``OMIT_DEFAULT`` and at its default."""
    return f.metadata.get("digest") == "omit_default" and value == f.default


def plan_digests(plan: list[Step]) -> list[str]:
    """Per step, a digest of the plan up to and including it (type, fields, losses by name).

    Two runs of the same setting and seed whose plans agree up to step i must hold the same
    weights after it; :mod:`~sslt_bench.results.compare` checks exactly that with the hashes below.
    """
    out, h = [], hashlib.sha256()
    for step in plan:
        h.update(json.dumps([type(step).__name__, _describe(step)], default=str).encode())
        out.append(h.copy().hexdigest()[:16])
    return out


def note_weights(history: dict[str, Any], step: Step, digest: str, model: torch.nn.Module) -> None:
    """After a training step, ``history["weights"]["after:<name>"] = [weights hash, digest]``."""
    if isinstance(step, (Train, TrainHead)):
        history.setdefault("weights", {})[f"after:{step.name}"] = [weights_hash(model), digest]


def params_of(model: torch.nn.Module, names: tuple[str, ...]) -> list[torch.nn.Parameter]:
    """Enable gradients of exactly the named parts (``embed``, ``heads``, ``heads.<name>``)."""
    chosen = []
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        module = (
            model.embed
            if name == "embed"
            else model.heads
            if name == "heads"
            else model.heads[name.split(".", 1)[1]]
        )
        chosen.extend(module.parameters())
    for p in chosen:
        p.requires_grad_(True)
    return chosen


def trained_params(model: torch.nn.Module, step: Train) -> list[torch.nn.Parameter]:
    """The parameters ``step`` trains: its ``params`` less its ``frozen`` ones (no gradient)."""
    params = params_of(model, step.params)
    if step.frozen is None:
        return params
    fixed = {id(p) for p in step.frozen(model)}
    for p in params:
        if id(p) in fixed:
            p.requires_grad_(False)
    return [p for p in params if id(p) not in fixed]


_NORMS = (
    torch.nn.BatchNorm1d,
    torch.nn.BatchNorm2d,
    torch.nn.BatchNorm3d,
    torch.nn.SyncBatchNorm,
    torch.nn.GroupNorm,
    torch.nn.LayerNorm,
)


def decay_groups(
    model: torch.nn.Module, params: list[torch.nn.Parameter], no_decay: tuple[str, ...]
) -> list[dict[str, Any]]:
    """SGD parameter groups: ``params`` with weight decay, and those in ``no_decay`` without.

    ``bias``: parameters named ``*.bias``; ``norm``: parameters of normalisation layers. With
    nothing exempt this is one group (the optimiser state of older checkpoints still loads).
    """
    if not no_decay:
        return [{"params": params}]
    exempt: set[int] = set()
    for module in model.modules():
        for p_name, p in module.named_parameters(recurse=False):
            if ("bias" in no_decay and p_name == "bias") or (
                "norm" in no_decay and isinstance(module, _NORMS)
            ):
                exempt.add(id(p))
    decay = [p for p in params if id(p) not in exempt]
    free = [p for p in params if id(p) in exempt]
    return [{"params": decay}, {"params": free, "weight_decay": 0.0}]


def pool_of(pool: str, split: Split, ctx: StepContext) -> tuple[torch.Tensor, torch.Tensor]:
    """Item ids (D first, then U) and labels of a training pool: D, or D ∪ U' (pseudo)."""
    n_l = len(split.labeled_idx)
    if pool == "labeled":
        return torch.arange(n_l), torch.as_tensor(split.labeled_y)
    if pool == "labeled+pseudo":
        if "pseudo" not in ctx.state:
            raise RuntimeError("pool 'labeled+pseudo' needs a PseudoLabel step before it")
        labels = torch.cat([torch.as_tensor(split.labeled_y), ctx.state["pseudo"].cpu()])
        ids = torch.arange(n_l + len(split.unlabeled_idx))
        keep = labels >= 0  # a method may leave pseudo-labelled items out with -1 (CReST)
        return ids[keep], labels[keep]
    raise ValueError(f"unknown pool {pool!r}")
