"""CReST+ on FixMatch (Wei et al., CVPR 2021): class-rebalancing self-training.

Paper: "CReST: A Class-Rebalancing Self-Training Framework for Imbalanced Semi-Supervised
Learning"; official code google-research/crest (util/semisup.py ``train_generations``,
``pseudo_target_fn``, ``get_pseudo_label_list``; data/cifar.py ``get_split``; run.sh);
cross-checked with USB's ``imb_algorithms/crest``.

What is new over FixMatch (the rest is :mod:`~sslt_bench.methods.fixmatch_core`):

* Generations: the plan repeats FixMatch's Train step ``generations`` (6) times. After each
  but the last, the EMA model labels U (un-augmented); per predicted class c the
  ``floor(m_c * mu_c)`` most confident of its m_c items join the labeled pool for the next
  generation (the others are left out, label -1), with ``mu_c = (n_{C+1-k} / n_1) ** alpha``
  for the class of labeled-frequency rank k (:func:`sampling_rates`; alpha 1/3, the code's
  ``alpha=3`` used as ``1/alpha``). Every generation restarts from the same initial weights
  (the code re-seeds and rebuilds the model), with a fresh optimiser, schedule and EMA.
* Progressive distribution alignment (the "+"): the weak view's probabilities are aligned,
  ``p * target / p_model`` renormalised, before FixMatch's argmax and tau mask; ``target`` is
  D's class distribution to the power t, renormalised, with t falling linearly from 1 in the
  first generation to ``t_min`` (0.5) in the last (:func:`alignment_temperature`); ``p_model``
  is the mean of the last 128 batch-mean predictions
  (:func:`~sslt_bench.train.ssl_parts.window_push`).

Profiles. ``paper`` (run.sh, CIFAR-10-LT): 6 generations of 64 x 1024 steps, B 64, mu 7, tau
0.95, SGD lr 0.03 Nesterov, wd 5e-4, cosine per generation, EMA 0.999, alpha 1/3, t_min 0.5;
unlabeled batches from D ∪ U (the code's unlabeled set is the whole training set; only U is
pseudo-labelled between generations). ``quick``: fixmatch's quick profile (B 32, mu 2, EMA 0.99,
100 steps per epoch) with 3 generations of 7 epochs: fixmatch's 2,100 steps in all. Since each
generation restarts, the scored model trains 700 steps: too few to learn here (cifar10-lt
consistent seed 0: 29.0, fixmatch 35.4); ``--set epochs=21`` gives each generation fixmatch's.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from ..config import in_range
from ..registry import register_method
from ..train.losses import fixmatch_mask
from ..train.ssl_parts import align_distribution, class_prior, window_mean, window_push
from ..train.stages import Batch, Call, PseudoLabel, Step, StepContext
from .fixmatch import QUICK_EPOCHS, FixMatchConfig
from .fixmatch_core import FixMatchFamily, Forward, PseudoTargets

P_MODEL, GEN, CONF, INIT = "crest:p_model", "crest:gen", "crest:conf", "crest:init:"


@dataclass
class CrestConfig(FixMatchConfig):
    """CReST+ settings (defaults: the official CIFAR-10-LT run).

    Attributes:
        epochs: epochs of each generation.
        generations: rounds of self-training (each a full FixMatch training).
        alpha: exponent of the per-class sampling rate (paper's alpha).
        t_min: distribution-alignment temperature of the last generation.
        align: progressive distribution alignment on (CReST+) or off (CReST).
        window: batch means in the moving estimate p_model.
    """

    epochs: int = 64
    mu: int = in_range(7, "[1, inf)")
    generations: int = in_range(6, "[1, inf)")
    alpha: float = in_range(1 / 3, "[0, inf)")
    t_min: float = in_range(0.5, "[0, 1]")
    align: bool = True
    window: int = in_range(128, "[1, inf)")

    PROFILES: ClassVar[dict[str, dict[str, Any]]] = {
        "quick": {
            **FixMatchConfig.PROFILES["quick"],
            "generations": QUICK_EPOCHS // 7,
            "epochs": 7,
        }
    }
    SMOKE: ClassVar[dict[str, Any]] = {**FixMatchConfig.SMOKE, "generations": 2}


def sampling_rates(labeled_counts: torch.Tensor, alpha: float) -> torch.Tensor:
    """Per-class fraction of pseudo-labelled items kept: ``(n_{C+1-k} / n_1) ** alpha``.

    Classes are ranked by labeled count, k = 1 the most frequent (ties keep class order); the
    rarest class keeps all its pseudo labels, the most frequent the fewest. Float64, by class.
    """
    n = labeled_counts.double().cpu()
    order = torch.argsort(-n, stable=True)
    ranked = n[order]
    rates = torch.empty_like(n)
    rates[order] = (ranked.flip(0) / ranked[0]) ** alpha
    return rates


def select_most_confident(
    pseudo: torch.Tensor, conf: torch.Tensor, rates: torch.Tensor
) -> torch.Tensor:
    """Per predicted class c, keep the ``floor(m_c * rates[c])`` most confident of its m_c items.

    Returns ``pseudo`` with every other item set to -1 (left out of the labeled+pseudo pool).
    """
    keep = torch.full_like(pseudo, -1)
    for c in range(len(rates)):
        idx = (pseudo == c).nonzero().flatten()
        take = int(len(idx) * float(rates[c]))
        if take:
            keep[idx[torch.argsort(-conf[idx], stable=True)[:take]]] = c
    return keep


def alignment_temperature(generation: int, generations: int, t_min: float) -> float:
    """Alignment temperature of a generation: 1 in the first, linearly to ``t_min`` in the last."""
    if generations <= 1:
        return 1.0
    cur = generation / (generations - 1)
    return (1.0 - cur) + cur * t_min


@register_method(
    "fixmatch+crest",
    summary="Wei et al. 2021 (CReST+): FixMatch generations; each adds the most confident "
    "pseudo labels per class at rate (n_{C+1-k}/n_1)^alpha; progressive distribution alignment",
)
class FixMatchCrest(FixMatchFamily):
    """FixMatch in generations of class-rebalancing self-training, with progressive alignment."""

    Config = CrestConfig

    def pseudo_label(
        self, probs: torch.Tensor, fw: Forward, batch: Batch, ctx: StepContext
    ) -> PseudoTargets:
        """FixMatch's rule on the probabilities aligned to D's distribution ** t."""
        c = self.cfg
        if c.align:
            gen = int(ctx.state.get(GEN, torch.tensor(0)))
            t = alignment_temperature(gen, c.generations, c.t_min)
            target = class_prior(ctx.labeled_counts) ** t
            p_model = window_mean(ctx.state, P_MODEL, ctx.num_classes)
            probs = align_distribution(probs, target / target.sum(), p_model)
        labels, mask = fixmatch_mask(probs, c.threshold)
        return PseudoTargets(labels, mask, probs)

    def observe(self, fw: Forward, targets: PseudoTargets, batch: Batch, ctx: StepContext) -> None:
        """Push the batch's mean weak-view prediction into p_model's window."""
        if self.cfg.align:
            window_push(
                ctx.state, P_MODEL, torch.softmax(fw.weak().detach().float(), 1), self.cfg.window
            )

    def snapshot(self, ctx: StepContext) -> None:
        """Keep the initial weights (every generation restarts from them)."""
        for k, v in ctx.model.state_dict().items():
            ctx.state[INIT + k] = v.detach().clone()

    def next_generation(self, generation: int, ctx: StepContext) -> None:
        """Keep the rebalanced share of the pseudo labels; restart from the initial weights."""
        rates = sampling_rates(ctx.labeled_counts, self.cfg.alpha)
        ctx.state["pseudo"] = select_most_confident(
            ctx.state["pseudo"], ctx.state[CONF], rates.to(ctx.state[CONF].device)
        )
        init = {k[len(INIT) :]: v for k, v in ctx.state.items() if k.startswith(INIT)}
        ctx.model.load_state_dict(init)
        if ctx.ema is not None:
            ctx.ema.load_state_dict(init)
        ctx.state.pop(P_MODEL, None)
        ctx.state[GEN] = torch.tensor(generation)

    def plan(self) -> list[Step]:
        """Generations of FixMatch with pseudo-labelling and rebalancing between them."""
        (train,) = super().plan()
        steps: list[Step] = [Call("crest/init", self.snapshot)]
        for g in range(self.cfg.generations):
            if g:
                steps += [
                    PseudoLabel(f"gen{g}/pseudo", self.main_head, ema=True, scores=CONF),
                    Call(f"gen{g}/rebalance", functools.partial(self.next_generation, g)),
                ]
            pool = "labeled" if g == 0 else "labeled+pseudo"
            steps.append(dataclasses.replace(train, name=f"gen{g}/train", pool=pool))
        return steps
