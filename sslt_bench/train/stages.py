"""The steps a method's plan is made of, and what its loss functions receive.

A method returns a flat list of steps from ``plan()``; the runner executes them in order and
checkpoints between epochs and between steps, so a plan is also the unit of resume. Steps:

* :class:`Train`: SGD on chosen parameters with a chosen sampler and pool, the method's loss
  (optionally an EMA of the model with a constant decay or an :class:`EmaDecay` schedule).
* :class:`TrainHead`: freeze the embedding, cache features, train one head on them.
* :class:`PseudoLabel`: label U with a head; stores labels in ``state[key]`` and logs their
  accuracy per many/medium/few split (the runner alone sees U's hidden labels).
* :class:`Evaluate`: a diagnostic test evaluation (never used to pick a model).
* :class:`Call`: a method function run once between steps (re-initialise, reset a buffer).

Pools: ``labeled`` is D with its labels; ``labeled+pseudo`` is D ∪ U' with U's pseudo labels
from ``state["pseudo"]``. Item ids are positions in D ∪ U: ``0..|D|-1`` are D, the rest U.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

#: Field metadata: a field added after records existed is left out of the plan digest (see
#: ``session.plan_digests``) while it has its default, so older records' digests stay valid.
OMIT_DEFAULT = {"digest": "omit_default"}

Pool = Literal["labeled", "labeled+pseudo"]
#: Draws per epoch: ``pool`` = the pool's size; ``balanced`` = its largest class times the
#: number of classes (the length of Kang et al.'s ClassAwareSampler).
EpochSize = Literal["pool", "balanced"]


@dataclass
class Unlabeled:
    """Unlabeled batches drawn alongside each labeled batch.

    Attributes:
        mu: unlabeled batch size as a multiple of the labeled batch size.
        views: augmentations of each unlabeled image to produce (``weak``, ``strong``...);
            names are ``batch.u`` keys, so a second independent weak view is ``weak:2``.
        include_labeled: draw from D ∪ U instead of U (labels still not given).
    """

    mu: int = 1
    views: tuple[str, ...] = ("weak",)
    include_labeled: bool = False


@dataclass
class LabeledViews:
    """More labeled images per step, beside the step's labeled batch (``batch.lx``, ``batch.ly``).

    Attributes:
        views: augmentations to produce, by name (``batch.lx`` keys).
        sampling: ``same`` = the step's own labeled images again, in these views (SimPro's
            strong labeled view); ``random`` or ``class_balanced`` = a second batch of the
            pool of the step's batch size drawn with that sampler (CoSSL's class-balanced
            batch for its TFE classifier).
    """

    views: tuple[str, ...] = ("strong",)
    sampling: Literal["same", "random", "class_balanced"] = "same"


@dataclass
class EmaDecay:
    """A per-step EMA decay schedule the runner applies (Mean Teacher's).

    ``rampup`` during the first ``rampup_fraction`` of the step's epochs, ``final`` after;
    with ``warm_cap``, at most 1 - 1/(t + 1) at optimiser step t (early on the EMA is the plain
    average of the weights so far, as in Mean Teacher's code).
    """

    final: float
    rampup: float | None = None
    rampup_fraction: float = 0.0
    warm_cap: bool = False

    def at(self, epoch: int, epochs: int, step: int) -> float:
        """The decay for optimiser step ``step`` (0-based, in the Train step) of ``epoch``."""
        ramping = self.rampup is not None and epoch < self.rampup_fraction * epochs
        decay = self.rampup if ramping else self.final
        return min(decay, 1.0 - 1.0 / (step + 1)) if self.warm_cap else decay


@dataclass
class Train:
    """Train with SGD (momentum, weight decay, cosine or step schedule) for ``epochs``.

    ``schedule``: ``cosine`` decays to 0; ``cosine-7/16`` is FixMatch's code's
    ``lr * cos(7 pi k / 16 K)``, which ends at 0.2 lr (kekmodel/FixMatch-pytorch and the codes
    built on it, e.g. ACR's); ``step`` multiplies by ``step_gamma`` at each of ``milestones``.

    ``ema_decay``: keep an EMA of the model with this constant decay or :class:`EmaDecay`
    schedule. ``no_decay``: parameters without weight decay, ``bias`` (every ``*.bias``) and/or
    ``norm`` (every parameter of a normalisation layer), as FixMatch's reference code
    (kekmodel/FixMatch-pytorch: names containing ``bias`` or ``bn``). ``frozen``: a function of
    the model giving parameters of ``params`` the step keeps fixed (no gradient, not in the
    optimiser), e.g. SALSA's lower layers; the runner applies it, never the loss. ``optimizer``:
    ``sgd`` (momentum, Nesterov) or ``adam`` (betas 0.9/0.999; ``weight_decay`` as Adam's L2
    term). ``decoupled_decay``: after every update (and the EMA's), the model's floating-point
    state is multiplied by ``1 - decoupled_decay``, as the MixMatch/DARP code family's
    ``WeightEMA`` does (0.02 x lr with Adam).
    """

    name: str
    epochs: int
    loss: Callable[[Batch, StepContext], Any]
    params: tuple[str, ...] = ("embed", "heads")
    pool: Pool = "labeled"
    sampling: str = "random"
    view: str = "weak"
    unlabeled: Unlabeled | None = None
    labeled_views: LabeledViews | None = None
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: Literal["cosine", "cosine-7/16", "step", "constant"] = "cosine"
    milestones: tuple[float, ...] = ()
    step_gamma: float = 0.01
    warmup_epochs: int = 0
    steps_per_epoch: int | None = None
    ema_decay: float | EmaDecay | None = None
    no_decay: tuple[Literal["bias", "norm"], ...] = ()
    reset_heads: tuple[str, ...] = ()
    on_epoch_end: Callable[[StepContext], None] | None = None
    embed_bn: Literal["eval", "train"] = "eval"
    epoch_size: EpochSize = "pool"
    frozen: Callable[[nn.Module], list[nn.Parameter]] | None = field(
        default=None, metadata=OMIT_DEFAULT
    )
    optimizer: Literal["sgd", "adam"] = field(default="sgd", metadata=OMIT_DEFAULT)
    decoupled_decay: float = field(default=0.0, metadata=OMIT_DEFAULT)


@dataclass
class TrainHead:
    """Train one head on features of a frozen embedding (cRT, Kang et al. 2020).

    ``features="cached"`` extracts un-augmented features once (eval mode) and trains on them;
    ``"augmented"`` runs every batch's augmented images through the frozen embedding (an
    ordinary :class:`Train` epoch on the head's parameters only), with its BatchNorm layers in
    ``bn_mode`` (``eval``: running statistics untouched; ``train``: batch statistics, running
    statistics updated). ``schedule`` is ``cosine`` or ``constant`` (no decay).
    ``epoch_size``: ``pool`` draws per epoch (|pool|) or ``balanced`` (largest class x C).

    Kang et al.'s released cRT (facebookresearch/classifier-balancing, run_networks.py) is
    ``features="augmented", bn_mode="train", epoch_size="pool"``: every network is put in
    ``train()`` mode each epoch (the frozen backbone's BatchNorm uses batch statistics and
    updates its running ones), and an epoch stops after ``int(|D| / batch)`` steps although
    the ClassAwareSampler's length is largest class x C.
    """

    name: str
    head: str
    epochs: int
    pool: Pool = "labeled"
    sampling: str = "class_balanced"
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    reset: bool = True
    features: Literal["cached", "augmented"] = "cached"
    bn_mode: Literal["eval", "train"] = "eval"
    schedule: Literal["cosine", "constant"] = "cosine"
    epoch_size: EpochSize = "pool"


@dataclass
class PseudoLabel:
    """Assign hard pseudo labels to U with ``head`` (of the EMA model if ``ema``).

    ``view``: the images labelled, ``none`` (un-augmented) or an augmented view such as
    ``weak`` (the released SSLT code labels U through its training transform).
    ``scores``: also store each label's confidence (max softmax probability) in
    ``state[scores]`` (CReST ranks each class's pseudo labels by it). A method may set a label
    to -1 afterwards: the ``labeled+pseudo`` pool leaves such items out.
    """

    name: str
    head: str
    key: str = "pseudo"
    ema: bool = False
    view: str = "none"
    scores: str | None = None


#: A method's own pseudo-labelling rule for diagnostics: (features, item ids, ctx) -> labels, kept.
OwnRule = Callable[[torch.Tensor, torch.Tensor, "StepContext"], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class PseudoRule:
    """How a method pseudo-labels U right now, for the runner's diagnostics only.

    A method returns one from ``Method.pseudo_rule(step)`` for a :class:`Train` step whose
    loss labels U on the fly (FixMatch: the online model's argmax on a weak view, kept if its
    confidence is >= ``threshold``). The runner applies it to U in eval mode, without touching
    training state or RNGs, and scores it against U's hidden labels; training never reads it.

    Attributes:
        head: the head whose argmax is the pseudo label.
        ema: label with the EMA model (Mean Teacher's teacher) instead of the trained one.
        view: ``none`` (un-augmented) or an augmented view (e.g. ``weak``), drawn from the
            diagnostics' own seed.
        threshold: keep labels whose max softmax probability is >= this; ``None`` = keep all.
        labels: the method's own rule, when it is more than argmax and threshold (DARP's
            refinement, ACR's and SimPro's adjusted logits, DASO's blend, CReST+'s alignment):
            ``(features [N, d] of U's items under the rule's view, their item ids [N], ctx)
            -> (labels [N], kept [N] bool)``. The runner restores ``ctx.state`` after it, so
            the method's training code can serve as its own rule.
    """

    head: str = "random"
    ema: bool = False
    view: str = "none"
    threshold: float | None = None
    labels: (
        Callable[[torch.Tensor, torch.Tensor, StepContext], tuple[torch.Tensor, torch.Tensor]]
        | None
    ) = None


@dataclass
class Evaluate:
    """Evaluate ``head`` on the test set and record it under ``name`` (diagnostic only)."""

    name: str
    head: str
    ema: bool = False


@dataclass
class Call:
    """Run ``fn(ctx)`` once (idempotent with respect to resume: runs before its checkpoint)."""

    name: str
    fn: Callable[[StepContext], None]


Step = Train | TrainHead | PseudoLabel | Evaluate | Call


@dataclass
class Batch:
    """One training batch as a loss function sees it.

    Attributes:
        x: the labeled-pool images, augmented with the stage's ``view``.
        y: their labels (true for D, pseudo for U').
        idx: their item ids in D ∪ U.
        u: unlabeled views by name (``{"weak": ..., "strong": ...}``), or empty.
        u_idx: the unlabeled items' ids in D ∪ U.
        lx: the step's :class:`LabeledViews` by view name, or empty.
        ly: their labels (``y`` when the views are of the same images).
    """

    x: torch.Tensor
    y: torch.Tensor
    idx: torch.Tensor
    u: dict[str, torch.Tensor] = field(default_factory=dict)
    u_idx: torch.Tensor | None = None
    lx: dict[str, torch.Tensor] = field(default_factory=dict)
    ly: torch.Tensor | None = None

    @property
    def is_labeled(self) -> torch.Tensor:
        """Mask of items from D (as opposed to pseudo-labeled U)."""
        return self.idx < self.num_labeled

    num_labeled: int = 0


@dataclass
class StepContext:
    """What a loss function or a :class:`Call` may use.

    Attributes:
        model: the model being trained.
        ema: the EMA copy, or ``None``.
        state: method state (tensors), checkpointed by the runner.
        num_classes: C.
        labeled_counts: n_j of D, on the device.
        num_labeled: |D|.
        num_unlabeled: |U|.
        device: the training device.
        generator: the run's seeded CPU generator.
        epoch: epoch within the current step (0-based).
        epochs: epochs of the current step.
        step: optimiser step within the current step.
    """

    model: torch.nn.Module
    ema: torch.nn.Module | None
    state: dict[str, torch.Tensor]
    num_classes: int
    labeled_counts: torch.Tensor
    num_labeled: int
    num_unlabeled: int
    device: torch.device
    generator: torch.Generator
    epoch: int = 0
    epochs: int = 1
    step: int = 0
    logs: dict[str, float] = field(default_factory=dict)

    def pool_counts(self, pool: Pool) -> torch.Tensor:
        """Per-class counts of a pool (D, or D ∪ U' with pseudo labels)."""
        if pool == "labeled":
            return self.labeled_counts
        pseudo = self.state["pseudo"].to(self.device)
        pseudo = pseudo[pseudo >= 0]  # -1: left out of the pool
        return self.labeled_counts + torch.bincount(pseudo, minlength=self.num_classes)
