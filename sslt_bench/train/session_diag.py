"""The session's diagnostic hooks: pseudo labels on U scored, test trajectory of step-based steps.

Called by :class:`~sslt_bench.train.session.Session` (which, with the runner, alone holds U's hidden
labels); the scoring itself is :mod:`sslt_bench.train.diagnostics`. Nothing here changes training:
every forward pass runs in eval mode under :func:`~.diagnostics.preserved_rng` and
:func:`~.diagnostics.kept_modes`, and augmented views come from the diagnostics' own seed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from .diagnostics import kept_modes, preserved_rng, pseudo_label_metrics, subsample_positions
from .engine import confidences, predict
from .stages import PseudoRule, Train

if TYPE_CHECKING:
    from .session import Session


def u_positions(s: Session) -> np.ndarray:
    """Positions in U of the items the diagnostics score (a fixed subset, or all)."""
    if s._positions is None:
        n, k = len(s.split.unlabeled_idx), s.diag.subsample
        s._positions = subsample_positions(n, k, s.diag.seed)
    return s._positions


def step_hook(s: Session, step: Train) -> Callable[[int], None] | None:
    """The after-optimiser-step callback scoring pseudo labels every N steps, or none."""
    every = s.diag.every_steps
    if not every:
        return None

    def hook(opt_step: int) -> None:
        if (opt_step + 1) % every == 0:
            s._diagnose(step, s.ctx.epoch + 1, opt_step + 1)

    return hook


def diagnose(s: Session, step: Train, epoch: int, opt_step: int | None) -> None:
    """Score ``step``'s current pseudo labels: the method's rule, or the pseudo pool's."""
    rule = s.method.pseudo_rule(step)
    if rule is not None:
        score_u(s, step.name, epoch, None, rule, "rule", opt_step)
    elif step.pool == "labeled+pseudo" and "pseudo" in s.ctx.state:
        labels = s.ctx.state["pseudo"].cpu().numpy()[u_positions(s)]
        score_u(s, step.name, epoch, labels, None, "state", opt_step)


def rule_labels(s: Session, rule: PseudoRule) -> tuple[np.ndarray, np.ndarray]:
    """Labels and kept mask of U's scored items under ``rule`` (eval mode, own seed)."""
    ctx = s.ctx
    net = ctx.ema if rule.ema and ctx.ema is not None else ctx.model
    idx = s.split.unlabeled_idx[u_positions(s)]
    seed = s.diag.seed * 1_000_003 + len(s.history.get("u_diagnostics", []))
    feats = s.embed(
        net,
        s.data.train,
        idx,
        s.augmenter,
        ctx.device,
        workers=s.workers,
        amp=s.amp,
        view=rule.view,
        seed=seed,
    )
    if rule.labels is not None:
        return _own_rule(s, rule, feats)
    labels = predict(net, rule.head, feats).numpy()
    if rule.threshold is None:
        return labels, np.ones(len(labels), dtype=bool)
    return labels, confidences(net, rule.head, feats).numpy() >= rule.threshold


def _own_rule(s: Session, rule: PseudoRule, feats: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A method's own labelling rule on U's features; ``ctx.state`` is restored after it."""
    ctx = s.ctx
    ids = torch.as_tensor(ctx.num_labeled + u_positions(s), device=ctx.device)
    saved = {k: v.clone() for k, v in ctx.state.items()}
    try:
        with torch.no_grad():
            labels, kept = rule.labels(feats.to(ctx.device), ids, ctx)
    finally:
        ctx.state.clear()
        ctx.state.update(saved)
    return labels.cpu().numpy(), kept.bool().cpu().numpy()


def score_u(s: Session, name, epoch, labels, rule, source, opt_step=None) -> None:
    """Append one ``history["u_diagnostics"]`` entry (RNGs and module modes untouched)."""
    t, ctx, split = time.time(), s.ctx, s.split
    with preserved_rng(ctx.device), kept_modes(ctx.model, ctx.ema):
        if rule is not None:
            labels, kept = rule_labels(s, rule)
        else:
            kept = labels >= 0
    pos = u_positions(s)
    rep = pseudo_label_metrics(
        labels, kept, split.unlabeled_y_hidden[pos], split.class_split, split.num_classes
    )
    done = len(s.history["epochs"]) + (epoch is not None)
    s.history.setdefault("u_diagnostics", []).append(
        {
            "step": name,
            "epoch": epoch,
            "opt_step": opt_step,
            "position": done,
            "source": source,
            "threshold": rule.threshold if rule is not None else None,
            **rep,
        }
    )
    s.diag_time += time.time() - t
    s.progress["diag_time"] = s.progress.get("diag_time", 0.0) + time.time() - t


def trajectory(s: Session, step: Train, epoch: int) -> None:
    """Every N epochs of a step-based step training the evaluated head: a test evaluation."""
    every, head = s.diag.trajectory_every, s.method.eval_head
    if not every or step.steps_per_epoch is None:
        return
    if not {"heads", f"heads.{head}"} & set(step.params):
        return
    if (epoch + 1) % every and epoch + 1 != step.epochs:
        return
    ctx, t = s.ctx, time.time()
    with preserved_rng(ctx.device), kept_modes(ctx.model, ctx.ema):
        rep = s.evaluate(head, s.method.eval_ema)
    s.progress["diag_time"] = s.progress.get("diag_time", 0.0) + time.time() - t
    entry = {"step": step.name, "epoch": epoch + 1}
    entry.update({k: v for k, v in rep.items() if k != "per_class"})
    s.history.setdefault("trajectory", []).append(entry)
