"""The training and inference loops every method shares (the runner calls these).

* :func:`train_epoch`: one epoch of a :class:`~sslt_bench.train.stages.Train` step, over
  augmented images (:class:`Loader`) or over cached features (:class:`FeatureLoader`: a
  :class:`~sslt_bench.train.stages.TrainHead` on features is an ordinary step of this loop).
* :func:`predict`: logits-argmax (and features) of a head over items of a source.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data.augment import Augmenter, to_device
from ..data.source import ImageSource
from .ema import decay_state, ema_update
from .samplers import balanced_epoch_size, epoch_order, to_batches
from .stages import Batch, EmaDecay, StepContext, Train, TrainHead


class NonFiniteLoss(RuntimeError):
    """A loss became NaN or infinite."""


class EpochSums:
    """Per-epoch sums of the loss and the method's logged values.

    ``sync=True`` (CPU): every step's values become Python floats at once and a non-finite loss
    stops the epoch at that step. ``sync=False`` (CUDA): values stay on the device and are read
    once in :meth:`means`, so the loop never waits for the GPU; a non-finite loss is reported
    (with its batch) at the end of the epoch.
    """

    def __init__(self, sync: bool, where: str) -> None:
        self.sync, self.where = sync, where
        self.sums: dict[str, float] = {"loss": 0.0}
        self.pending: dict[str, list[torch.Tensor]] = {"loss": []}

    def add(self, i: int, loss: torch.Tensor, logs: dict) -> None:
        """Add batch ``i``'s loss and logs."""
        if not self.sync:
            self.pending["loss"].append(loss.detach().float().reshape(()))
            for k, v in logs.items():
                v = v.detach().float() if torch.is_tensor(v) else torch.tensor(float(v))
                self.pending.setdefault(k, []).append(v.to(loss.device).reshape(()))
            return
        if not torch.isfinite(loss):
            raise NonFiniteLoss(f"non-finite loss {loss.item()} in {self.where}, batch {i + 1}")
        self.sums["loss"] += float(loss.detach())
        for k, v in logs.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)

    def running_loss(self, n: int) -> float | None:
        """Mean loss so far (``None`` when reading it would synchronise)."""
        return self.sums["loss"] / n if self.sync else None

    def means(self, n: int) -> dict[str, float]:
        """Means over ``n`` batches (one host read per key on CUDA)."""
        if not self.sync and self.pending["loss"]:
            losses = torch.stack(self.pending["loss"]).double().cpu()
            bad = (~torch.isfinite(losses)).nonzero().flatten()
            if len(bad):
                i = int(bad[0])
                raise NonFiniteLoss(
                    f"non-finite loss {float(losses[i])} in {self.where}, batch {i + 1}"
                )
            for k, vals in self.pending.items():
                self.sums[k] = float(torch.stack(vals).double().sum())
        n = max(n, 1)
        return {k: v / n for k, v in self.sums.items()}


def lr_at(step: Train | TrainHead, it: int, total: int, steps_per_epoch: int) -> float:
    """Learning rate at optimiser step ``it`` of ``total`` (warm-up, then the schedule)."""
    base = step.lr
    warm = getattr(step, "warmup_epochs", 0) * steps_per_epoch
    if warm and it < warm:
        return base * (it + 1) / warm
    schedule = getattr(step, "schedule", "cosine")
    if schedule == "cosine":
        return 0.5 * base * (1 + math.cos(math.pi * it / max(total, 1)))
    if schedule == "cosine-7/16":  # FixMatch's code: num_cycles 7/16, ends at 0.2 lr
        return base * max(0.0, math.cos(math.pi * 7.0 / 16.0 * it / max(total, 1)))
    if schedule == "step":
        epoch_frac = it / max(total, 1)
        return (
            base * step.step_gamma ** sum(epoch_frac >= m for m in step.milestones)
            if step.milestones
            else base
        )
    return base


def ema_decay_at(step: Train, ctx: StepContext) -> float:
    """The EMA decay after optimiser step ``ctx.step``: a constant or the step's schedule."""
    decay = step.ema_decay
    if isinstance(decay, EmaDecay):
        return decay.at(ctx.epoch, ctx.epochs, ctx.step)
    return float(decay)


def epoch_draws(step: Train | TrainHead, labels: torch.Tensor, num_classes: int) -> int | None:
    """Draws per epoch of ``step``: ``None`` (the pool's size) or largest class x C."""
    if step.epoch_size == "balanced":
        return balanced_epoch_size(labels, num_classes)
    return None


@dataclass
class Loader:
    """Turns item ids into augmented device batches."""

    source: ImageSource
    item_src: np.ndarray
    augmenter: Augmenter
    device: torch.device
    workers: int = 0

    def images(self, batches: list[np.ndarray]) -> Iterator[torch.Tensor]:
        """uint8 images of each batch of item ids."""
        return self.source.iter_batches(
            [self.item_src[b] for b in batches], self.device, self.workers
        )

    def view_generator(self, gen: torch.Generator, rank: int) -> torch.Generator:
        """The epoch's augmentation RNG: seeded from ``gen``, independent per rank."""
        seed = int(torch.randint(2**62, (1,), generator=gen))
        return torch.Generator().manual_seed(seed + rank)


class FeatureLoader:
    """Cached features of a pool's items as a loader: batches of rows, no augmentation.

    ``images`` takes the same item ids as :meth:`Loader.images` (positions in D then U) and
    returns their feature rows; ``augmenter`` passes them through and no augmentation RNG is
    drawn, so a head trained through :func:`train_epoch` on features consumes the run's
    generator exactly as a plain loop over the features would.
    """

    def __init__(self, feats: torch.Tensor, item_ids: torch.Tensor, device: torch.device):
        size = int(item_ids.max()) + 1 if len(item_ids) else 0
        self.rows = torch.full((size,), -1, dtype=torch.long, device=device)
        self.rows[item_ids.to(device)] = torch.arange(len(item_ids), device=device)
        self.feats, self.device = feats.to(device), device  # resident: no copy per batch

    def images(self, batches: list[np.ndarray]) -> Iterator[torch.Tensor]:
        """The feature rows of each batch of item ids."""
        for b in batches:
            yield self.feats[self.rows[torch.as_tensor(b, device=self.device)]]

    @staticmethod
    def augmenter(x: torch.Tensor, view: str, gen: torch.Generator | None) -> torch.Tensor:
        """Features are used as they are."""
        return x

    def view_generator(self, gen: torch.Generator, rank: int) -> None:
        """No augmentation, so no RNG drawn."""
        return None


def labeled_view_batches(
    step: Train,
    pool_labels: torch.Tensor,
    ctx: StepContext,
    batches: list[np.ndarray],
    rank: int,
    world_size: int,
) -> list[np.ndarray]:
    """Pool positions of each step's :class:`~sslt_bench.train.stages.LabeledViews` images.

    ``same``: the step's own batches; otherwise one more batch per step drawn with the views'
    sampler (from the run generator, so only steps that ask for it consume draws).
    """
    lv = step.labeled_views
    if lv is None:
        return []
    if lv.sampling == "same":
        return batches
    n = len(batches) * step.batch_size
    order = epoch_order(pool_labels, lv.sampling, ctx.generator, ctx.num_classes, n)
    return to_batches(order, step.batch_size, rank, world_size, len(batches))


def amp_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """Autocast on CUDA when ``amp`` is bf16 or fp16; a no-op on CPU."""
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast("cuda", dtype=dtype)


@dataclass
class EpochPlan:
    """The batches of one epoch: pool positions, U's item ids and labeled-view positions."""

    batches: list[np.ndarray]
    u_batches: list[np.ndarray]
    lv_batches: list[np.ndarray]
    total: int  # optimiser steps in the whole Train step

    @property
    def steps_per_epoch(self) -> int:
        """Batches (optimiser steps) of this rank in the epoch."""
        return len(self.batches)


def plan_epoch(
    step: Train,
    ctx: StepContext,
    pool_labels: torch.Tensor,
    unl_ids: torch.Tensor,
    shard: tuple[int, int] = (0, 1),
    min_steps: int = 0,
) -> EpochPlan:
    """Draw one epoch's order (the step's sampler) and cut it into this rank's batches.

    An epoch is one pass over the pool, or ``step.steps_per_epoch`` batches if set; a pass
    shorter than ``min_steps`` batches (a data set's floor for tiny splits) cycles the
    shuffled order up to ``min_steps``. U's batches (``mu`` x batch each) cycle U.
    """
    gen, (rank, world_size) = ctx.generator, shard
    draws = epoch_draws(step, pool_labels, ctx.num_classes)
    order = epoch_order(pool_labels, step.sampling, gen, ctx.num_classes, draws)
    num_batches = step.steps_per_epoch
    if num_batches is None and math.ceil(len(order) / step.batch_size) < min_steps:
        num_batches = min_steps
    batches = to_batches(order, step.batch_size, rank, world_size, num_batches)
    u_batches: list[np.ndarray] = []
    if step.unlabeled is not None:
        ub = step.unlabeled.mu * step.batch_size
        need = ub * len(batches)
        reps = math.ceil(need / max(len(unl_ids), 1))
        u_order = torch.cat(
            [unl_ids[torch.randperm(len(unl_ids), generator=gen)] for _ in range(max(reps, 1))]
        )[:need]
        u_batches = [b.numpy()[rank::world_size] for b in u_order.split(ub)]
    lv_batches = labeled_view_batches(step, pool_labels, ctx, batches, rank, world_size)
    return EpochPlan(batches, u_batches, lv_batches, len(batches) * step.epochs)


@dataclass
class Optimiser:
    """An optimiser with its gradient scaler (fp16 autocast on CUDA) and the AMP mode."""

    opt: torch.optim.Optimizer
    amp: str = "none"
    scaler: torch.amp.GradScaler | None = None

    def set_lr(self, lr: float) -> None:
        """Set every group's learning rate (the step's schedule, per optimiser step)."""
        for group in self.opt.param_groups:
            group["lr"] = lr

    def step(self, loss: torch.Tensor) -> None:
        """Backward and one update."""
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            self.opt.step()


def train_epoch(
    step: Train,
    ctx: StepContext,
    loader: Loader | FeatureLoader,
    pool: tuple[torch.Tensor, torch.Tensor],
    unl_ids: torch.Tensor,
    opt: Optimiser,
    shard: tuple[int, int] = (0, 1),
    min_steps: int = 0,
    progress=None,
    after_step: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """Run one epoch; returns mean loss, images seen and the method's logged values.

    ``pool`` is the (item ids, labels) of the step's pool; ``shard`` this process's (rank,
    world size); see :func:`plan_epoch` for what an epoch is. ``after_step(ctx.step)`` runs
    after every optimiser (and EMA) update; it must not touch the training state or RNGs.
    """
    pool_ids, pool_labels = pool
    plan = plan_epoch(step, ctx, pool_labels, unl_ids, shard, min_steps)
    views = loader.view_generator(ctx.generator, shard[0])
    sums = EpochSums(ctx.device.type != "cuda", f"step {step.name!r}, epoch {ctx.epoch + 1}")
    seen, lv = 0, step.labeled_views
    second = lv is not None and lv.sampling != "same"
    x_iter = loader.images([pool_ids[b].numpy() for b in plan.batches])
    u_iter = loader.images(plan.u_batches) if plan.u_batches else iter(())
    lv_iter = loader.images([pool_ids[b].numpy() for b in plan.lv_batches]) if second else iter(())
    for i, (b, xb) in enumerate(zip(plan.batches, x_iter, strict=True)):
        ctx.step = ctx.epoch * plan.steps_per_epoch + i
        opt.set_lr(lr_at(step, ctx.step, plan.total, plan.steps_per_epoch))
        batch = Batch(
            x=loader.augmenter(xb, step.view, views),
            y=to_device(pool_labels[b], ctx.device),
            idx=to_device(pool_ids[b], ctx.device),
            num_labeled=ctx.num_labeled,
        )
        if plan.u_batches:
            ub_imgs = next(u_iter)
            batch.u = {v: loader.augmenter(ub_imgs, v, views) for v in step.unlabeled.views}
            batch.u_idx = to_device(torch.as_tensor(plan.u_batches[i]), ctx.device)
            seen += len(plan.u_batches[i]) * len(step.unlabeled.views)
        if lv is not None:
            imgs = next(lv_iter) if second else xb
            batch.lx = {v: loader.augmenter(imgs, v, views) for v in lv.views}
            batch.ly = to_device(pool_labels[plan.lv_batches[i]], ctx.device)
            seen += len(plan.lv_batches[i]) * len(lv.views)
        with amp_context(ctx.device, opt.amp):
            out = step.loss(batch, ctx)
        loss, logs = out if isinstance(out, tuple) else (out, {})
        if sums.sync and not torch.isfinite(loss):  # CUDA: checked in sums.means()
            sums.add(i, loss, logs)
        opt.step(loss)
        _after_update(step, ctx, after_step)
        sums.add(i, loss, logs)
        seen += len(b)
        _show_loss(progress, sums.running_loss(i + 1))
    out = sums.means(len(plan.batches))
    if not sums.sync:
        _show_loss(progress, out["loss"])
    last = lr_at(step, ctx.step, plan.total, plan.steps_per_epoch)
    return out | {"images": float(seen), "lr": last if plan.batches else step.lr}


def _after_update(step: Train, ctx: StepContext, after_step: Callable[[int], None] | None) -> None:
    """What follows every optimiser step: EMA, decoupled weight decay, the caller's hook."""
    if ctx.ema is not None and step.ema_decay is not None:
        ema_update(ctx.ema, ctx.model, ema_decay_at(step, ctx))
    if step.decoupled_decay:
        decay_state(ctx.model, step.decoupled_decay)
    if after_step is not None:
        after_step(ctx.step)


def _show_loss(progress, loss: float | None) -> None:
    if progress is not None and loss is not None:
        progress.set_postfix(loss=f"{loss:.3f}", refresh=False)


@torch.no_grad()
def embed_items(
    model: nn.Module,
    source: ImageSource,
    src_idx: np.ndarray,
    augmenter: Augmenter,
    device: torch.device,
    batch_size: int = 512,
    workers: int = 0,
    amp: str = "none",
    view: str = "none",
    seed: int = 0,
) -> torch.Tensor:
    """Features f(x) of the given source indices (eval mode), on device.

    ``view`` is ``none`` (no augmentation) or an augmented view drawn from ``seed``.
    """
    was = model.training
    model.eval()
    batches = [src_idx[i : i + batch_size] for i in range(0, len(src_idx), batch_size)]
    feats = []
    gen = torch.Generator().manual_seed(seed)
    for xb in source.iter_batches(batches, device, workers):
        with amp_context(device, amp):
            feats.append(model.embed(augmenter(xb, view, gen)).float())
    model.train(was)
    return torch.cat(feats) if feats else torch.empty(0, model.feat_dim, device=device)


@torch.no_grad()
def predict(model: nn.Module, head: str, feats: torch.Tensor) -> torch.Tensor:
    """Predicted labels of a head on features."""
    was = model.training
    model.eval()
    out = (
        torch.cat([model.heads[head](f).argmax(1) for f in feats.split(4096)])
        if len(feats)
        else torch.empty(0, dtype=torch.long)
    )
    model.train(was)
    return out.cpu()


@torch.no_grad()
def confidences(model: nn.Module, head: str, feats: torch.Tensor) -> torch.Tensor:
    """Max softmax probability of a head on features (the confidence of :func:`predict`)."""
    was = model.training
    model.eval()
    out = (
        torch.cat([model.heads[head](f).softmax(1).amax(1) for f in feats.split(4096)])
        if len(feats)
        else torch.empty(0)
    )
    model.train(was)
    return out.float().cpu()
