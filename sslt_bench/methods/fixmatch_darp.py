"""DARP on FixMatch (Kim et al., NeurIPS 2020): distribution-aligning refinery of pseudo labels.

Paper: "Distribution Aligning Refinery of Pseudo-label for Imbalanced Semi-supervised
Learning"; official code bbuing9/DARP (common.py ``estimate_pseudo``/``opt_solver``,
training_functions.py ``train_fix``); cross-checked with USB's ``imb_algorithms/darp``.

What is new over FixMatch (the rest is :mod:`~sslt_bench.methods.fixmatch_core`): every U
item's latest weak-view probabilities are kept in a bank; after the warm-up (the first 40%
of epochs, 200 of 500), every ``refine_every`` (10) steps the whole bank is refined so that
its column sums match a target class distribution: first the alpha-scaling of
``estimate_pseudo`` (per class k the ``alpha * q_k`` most probable items; the column rescaled by
``q_k`` / their probability mass), then the convex problem ``min sum_i w_i KL(x_i || p_i)``
subject to ``sum_k x_ik = 1`` and ``sum_i x_ik = q_k`` (w_i = 1 / entropy(p_i)) solved by the
code's ``iter_T`` (10) rounds of row normalisation and per-class Newton steps on the dual
variable (:func:`refine`). The batch's targets are then the refined rows: argmax, kept if the
refined probability is >= tau. Between refinements the last refined rows are used.

Target distribution ``q`` (``target``): ``labeled`` = D's class distribution scaled to |U| (the
code without ``--est``); ``estimated`` (default: U's distribution is unknown in this benchmark)
= black-box shift estimation as the code's ``--est`` (train_base_estim.py ``estimate_q_y``:
``inv(column-normalised confusion on labeled data) @ sum of U's predicted probabilities`` after
every epoch of a base model; an epoch's estimate is accepted only if it has no negative entry
and the confusion's condition number is below ``th_cond`` = 100, and the target is the mean of
the accepted ones). Here the same rule runs online (:func:`accepted_estimate`): each epoch's
confusion matrix sums the softmax of that epoch's labeled-batch logits per true class (D itself,
not a held-out validation set), U's side is the bank's rows seen so far; until an epoch's
estimate is accepted the target is D's distribution (the code without ``--est``). U's labels
are never read. Unlabeled batches come from U only (the code's unlabeled set).

Profiles. ``paper`` (:class:`~sslt_bench.methods.fixmatch.DarpCodeConfig`): 500 x 500 steps,
B = 64, mu = 1, two strong views, tau 0.95, EMA 0.999, alpha 2, T = 10, refine every 10 steps,
warm-up 40%; Adam lr 0.002 constant with the code's per-step decay of 0.02 x lr
(``decoupled_decay``, train_fix.py ``WeightEMA``). ``quick``: fixmatch's quick profile (B 32,
mu 2, 21 x 100 steps, EMA 0.99, SGD 0.03 cosine as fixmatch); the warm-up is still 40% of the
epochs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch

from ..config import in_range
from ..registry import register_method
from ..train.ssl_parts import bank_update, class_prior
from ..train.stages import Batch, StepContext
from .fixmatch import DarpCodeConfig
from .fixmatch_core import FixMatchFamily, Forward, PseudoTargets

BANK, REFINED, CONF = "darp:bank", "darp:refined", "darp:conf"
EST_SUM, EST_N = "darp:estimate_sum", "darp:estimates"


@dataclass
class DarpConfig(DarpCodeConfig):
    """DARP settings (defaults: the official CIFAR-10 runs).

    Attributes:
        warmup: fraction of epochs before DARP starts (200 / 500).
        alpha: over-selection factor of the iterative scaling.
        iter_t: rounds T of the refinement solver.
        refine_every: steps between refinements (the code's ``num_iter``).
        target: ``estimated`` (black-box shift estimate) or ``labeled`` (D's distribution).
        newton_tol: stop a Newton solve when its step is below this (the code's 0.1).
        max_condition: an epoch's estimate counts only if the confusion's condition number
            is below this (the code's ``th_cond``).
    """

    warmup: float = in_range(0.4, "[0, 1]")
    alpha: float = in_range(2.0, "(0, inf)")
    iter_t: int = in_range(10, "[1, inf)")
    refine_every: int = in_range(10, "[1, inf)")
    target: Literal["estimated", "labeled"] = "estimated"
    newton_tol: float = in_range(0.1, "(0, inf)")
    max_condition: float = in_range(100.0, "(1, inf)")


def scale_by_target(probs: torch.Tensor, target: torch.Tensor, alpha: float) -> torch.Tensor:
    """The code's ``estimate_pseudo`` step: rows rescaled towards the target column sums.

    Per class k (last first) the ``int(alpha * q_k)`` items most probable for k are marked; the
    column is multiplied by ``q_k / (their probability mass)`` on marked items (0 elsewhere),
    plus 1e-6, and rows are renormalised.
    """
    n, c = probs.shape
    marks = torch.zeros_like(probs)
    mass = torch.zeros(c, dtype=probs.dtype)
    for k in reversed(range(c)):
        take = int(alpha * float(target[k]))
        vals, idx = probs[:, k].sort(descending=True)
        marks[idx[:take], k] = 1.0
        mass[k] = vals[:take].sum()
    scaled = probs * marks * ((target + 1e-6) / (mass + 1e-6))[None, :] + 1e-6
    return scaled / scaled.sum(1, keepdim=True)


def refine(
    probs: torch.Tensor, target: torch.Tensor, rounds: int, tol: float = 0.1
) -> torch.Tensor:
    """Solve DARP's refinement: rows sum to 1, column sums equal ``target`` (float64 inside).

    The KKT solution is ``x_ik = p_ik / e * X_i * exp(-nu_k / w_i)``; each round sets X from
    the row constraint, then solves each column constraint for nu_k by Newton's method (30
    steps at most, from the previous nu), as the code's ``opt_solver``.
    """
    p = probs.double().cpu()
    q = target.double().cpu()
    w = 1.0 / (-(p * torch.log(p + 1e-6)).sum(1))
    a = p / math.e
    nu = torch.zeros(p.shape[1], dtype=torch.float64)
    y = torch.exp(-torch.ones(1, p.shape[1], dtype=torch.float64) / w[:, None])
    for _ in range(rounds):
        x = 1.0 / (a * y).sum(1)
        for _ in range(30):
            e = torch.exp(-nu[None, :] / w[:, None])
            g = (a * x[:, None] * e).sum(0) - q
            dg = -(a * x[:, None] * e / w[:, None]).sum(0)
            step = g / dg
            nu = nu - step
            if bool((step.abs() < tol).all()):
                break
        y = torch.exp(-nu[None, :] / w[:, None])
    x = 1.0 / (a * y).sum(1)
    return (a * x[:, None] * y).float()


def shift_estimate(confusion: torch.Tensor, u_probs_sum: torch.Tensor) -> torch.Tensor:
    """Black-box shift estimate of U's class counts: ``inv(confusion) @ sum of U's probs``.

    ``confusion[:, j]`` holds the summed predicted probabilities of labeled items of class j;
    columns are normalised first. The estimate may have negative entries.
    """
    conf = confusion.double().cpu()
    conf = conf / conf.sum(0, keepdim=True).clamp_min(1e-12)
    return torch.linalg.pinv(conf) @ u_probs_sum.double().cpu()


def accepted_estimate(
    confusion: torch.Tensor, u_probs_sum: torch.Tensor, max_condition: float
) -> torch.Tensor | None:
    """U's class distribution from one epoch, or ``None`` where the code would reject it.

    The code's rule (train_base_estim.py): accepted when the column-normalised confusion's
    condition number is below ``max_condition`` and the estimate has no negative entry.
    """
    conf = confusion.double().cpu()
    if bool((conf.sum(0) <= 0).any()):  # a class never seen in the labeled batches
        return None
    cond = float(torch.linalg.cond(conf / conf.sum(0, keepdim=True)))
    est = shift_estimate(confusion, u_probs_sum)
    if not cond < max_condition or bool((est < 0).any()) or float(est.sum()) <= 0:
        return None
    return (est / est.sum()).float()


@register_method(
    "fixmatch+darp",
    summary="Kim et al. 2020: FixMatch with pseudo labels refined to a target (estimated) "
    "class distribution by DARP's convex refinement",
)
class FixMatchDarp(FixMatchFamily):
    """FixMatch whose pseudo labels come from DARP-refined probabilities after the warm-up."""

    Config = DarpConfig
    strong_views = ("strong", "strong:2")
    include_labeled = False

    def target(self, ctx: StepContext) -> torch.Tensor:
        """Target class counts of U (sum |U|): estimated from predictions or D's distribution."""
        prior = class_prior(ctx.labeled_counts).cpu()
        if self.cfg.target == "estimated" and EST_N in ctx.state:
            prior = (ctx.state[EST_SUM] / ctx.state[EST_N]).cpu()
        return prior * ctx.num_unlabeled

    def pseudo_label(
        self, probs: torch.Tensor, fw: Forward, batch: Batch, ctx: StepContext
    ) -> PseudoTargets:
        """Store the batch's probabilities; after the warm-up, targets from the refined bank."""
        bank_update(ctx.state, BANK, batch.u_idx, probs, self.state_size(ctx))
        if ctx.epoch <= int(self.cfg.warmup * ctx.epochs):
            return super().pseudo_label(probs, fw, batch, ctx)
        if REFINED not in ctx.state or ctx.step % self.cfg.refine_every == 0:
            u = ctx.state[BANK][ctx.num_labeled :]
            t = self.target(ctx)
            scaled = scale_by_target(u.cpu(), t, self.cfg.alpha)
            ctx.state[REFINED] = refine(scaled, t, self.cfg.iter_t, self.cfg.newton_tol).to(
                u.device
            )
        refined = ctx.state[REFINED][batch.u_idx - ctx.num_labeled]
        conf, labels = refined.max(1)
        return PseudoTargets(labels, (conf >= self.cfg.threshold).float(), probs)

    def observe(self, fw: Forward, targets: PseudoTargets, batch: Batch, ctx: StepContext) -> None:
        """Accumulate the labeled batch's confusion (predicted probabilities per true class)."""
        if self.cfg.target != "estimated":
            return
        c = ctx.num_classes
        probs = torch.softmax(fw.labeled().detach().float(), 1)
        add = torch.zeros(c, c, device=probs.device).index_add_(1, batch.y, probs.T)
        ctx.state[CONF] = ctx.state.get(CONF, torch.zeros_like(add)) + add

    def epoch_end(self) -> Callable[[StepContext], None] | None:
        """After every epoch: the epoch's shift estimate, kept if accepted (``target``)."""
        return self.estimate if self.cfg.target == "estimated" else None

    def estimate(self, ctx: StepContext) -> None:
        """Add the epoch's accepted estimate to the running mean; start a new confusion."""
        if CONF not in ctx.state or BANK not in ctx.state:
            return
        seen = ctx.state[BANK + ":seen"][ctx.num_labeled :].bool()
        u_sum = ctx.state[BANK][ctx.num_labeled :][seen].sum(0)
        est = accepted_estimate(ctx.state.pop(CONF), u_sum, self.cfg.max_condition)
        if est is not None:  # state holds tensors only (checkpoints, DDP)
            est = est.to(ctx.device)
            ctx.state[EST_SUM] = ctx.state.get(EST_SUM, torch.zeros_like(est)) + est
            ctx.state[EST_N] = ctx.state.get(EST_N, torch.zeros((), device=ctx.device)) + 1
