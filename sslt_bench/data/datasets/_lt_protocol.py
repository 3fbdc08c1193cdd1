"""The class-imbalanced SSL protocol of DARP/DASO/ACR/SimPro: count profiles, parameters, split.

One implementation shared by ``cifar10-lt``, ``cifar100-lt``, ``stl10-lt`` and ``imagenet127``.

Counts (checked against the released code of DARP ``make_imb_data``, DASO ``make_imbalance``,
ACR and SimPro ``make_imb_data``): class k (0 = head, in the data set's own class order) gets
n_k = int(n1 * gamma^(-k/(C-1))) labeled images, truncated; every setting the papers report
gives the same list under all three codes' float arithmetic, which is what
:func:`~sslt_bench.data.split.exponential_counts` computes (it also keeps at least 1 per
class, where
their code could give 0 for ratios nobody reports).

Unlabeled profiles (``unlabeled_dist``), with base = the same formula from m1 and gamma_u:
``consistent`` base; ``uniform`` m1 for every class (DARP, DASO and ACR: gamma_u = 1 keeps m1
per class; USB and CPE's USB fork instead read ``ulb_num_labels`` as a total and give m1 / C);
``reversed`` base reversed (class C-1 gets m1: DASO reverses the class order, ACR/SimPro reverse
the list); SimPro's ``middle`` (class k gets base[j] for j = [C-2, C-4, .., 0, 1, 3, .., C-1]
when C is even: the peak m1 lands on the middle class) and ``head-tail`` (j = [1, 3, .., C-1,
.., 4, 2, 0]: both ends high, the middle low).

Drawing: per class, a seeded permutation of the class's train items; the first n_k are D, the
next m_k are U, so U is disjoint from D (DARP's MixMatch split, DASO and SimPro; ACR and DARP's
FixMatch split also put D's images into U, which we do not). The papers take images in file
order (DASO shuffles with the seed); ours depend on the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args

import numpy as np

from ...errors import UsageError, choices_error
from ..split import Split, draw_per_class, exponential_counts, splits_by_rank

UnlabeledDist = Literal["consistent", "uniform", "reversed", "middle", "head-tail"]
UNLABELED_DISTS: tuple[str, ...] = get_args(UnlabeledDist)


def unlabeled_profile(m1: int, ratio: float, num_classes: int, dist: str) -> np.ndarray:
    """Per-class unlabeled counts m_k of one of :data:`UNLABELED_DISTS`.

    Args:
        m1: the largest unlabeled class count.
        ratio: gamma_u, largest / smallest count (ignored by ``uniform``).
        num_classes: C.
        dist: the profile's name.
    """
    if dist not in UNLABELED_DISTS:
        raise choices_error("unlabeled_dist", dist, UNLABELED_DISTS)
    if dist == "uniform":
        return np.full(num_classes, m1, dtype=np.int64)
    base = exponential_counts(m1, ratio, num_classes)
    evens, odds = list(range(0, num_classes, 2)), list(range(1, num_classes, 2))
    order = {
        "consistent": list(range(num_classes)),
        "reversed": list(range(num_classes))[::-1],
        "middle": evens[::-1] + odds,
        "head-tail": odds + evens[::-1],
    }[dist]
    return base[order]


def check_ratio(name: str, value: float) -> None:
    """Reject an imbalance ratio below 1 with a one-line error."""
    if not value >= 1:
        raise UsageError(f"{name} must be >= 1, got {value}")


@dataclass
class LTParams:
    """Parameters of a CIFAR-style LT protocol (subclasses set the defaults and class sizes).

    Attributes:
        n1: labeled images of the head class (class 0).
        m1: unlabeled images of the most populated unlabeled class.
        imbalance_ratio: gamma_l = n1 / n_{C-1}.
        unlabeled_imbalance_ratio: gamma_u; ``None`` = gamma_l.
        unlabeled_dist: consistent, uniform, reversed, middle or head-tail.
        download: fetch the official files with torchvision when no copy is found.
    """

    n1: int = 1500
    m1: int = 3000
    imbalance_ratio: float = 100.0
    unlabeled_imbalance_ratio: float | None = None
    unlabeled_dist: UnlabeledDist = "consistent"
    download: bool = False

    NUM_CLASSES: ClassVar[int] = 10
    PER_CLASS: ClassVar[int] = 5000

    @property
    def gamma_u(self) -> float:
        """The unlabeled imbalance ratio in effect."""
        if self.unlabeled_imbalance_ratio is None:
            return self.imbalance_ratio
        return self.unlabeled_imbalance_ratio

    def labeled_counts(self) -> np.ndarray:
        """n_k for every class."""
        return exponential_counts(self.n1, self.imbalance_ratio, self.NUM_CLASSES)

    def unlabeled_counts(self) -> np.ndarray:
        """m_k for every class."""
        return unlabeled_profile(self.m1, self.gamma_u, self.NUM_CLASSES, self.unlabeled_dist)

    def planned_counts(self) -> dict:
        """Per-class labeled/unlabeled counts and group sizes, without reading any image."""
        n = self.labeled_counts()
        sizes = np.bincount(darp_groups(n), minlength=3).tolist()
        return {
            "num_classes": self.NUM_CLASSES,
            "labeled_counts": n.tolist(),
            "unlabeled_counts": self.unlabeled_counts().tolist(),
            "split_sizes": dict(zip(("many", "medium", "few"), sizes, strict=True)),
        }

    def validate(self) -> None:
        """Reject impossible parameters with a one-line error naming the bad value."""
        if self.unlabeled_dist not in UNLABELED_DISTS:
            raise choices_error("unlabeled_dist", self.unlabeled_dist, UNLABELED_DISTS)
        check_ratio("imbalance_ratio", self.imbalance_ratio)
        check_ratio("unlabeled_imbalance_ratio", self.gamma_u)
        if self.n1 < 1 or self.m1 < 0:
            raise UsageError(f"need n1 >= 1 and m1 >= 0, got n1={self.n1} m1={self.m1}")
        need = self.labeled_counts() + self.unlabeled_counts()
        k = int(np.argmax(need))
        if need[k] > self.PER_CLASS:
            raise UsageError(
                f"n1={self.n1}, m1={self.m1} ({self.unlabeled_dist}) ask class {k} for "
                f"{need[k]} images (labeled + unlabeled) but it has {self.PER_CLASS} train "
                "images; lower n1 or m1"
            )

    def to_json(self) -> dict:
        """The split's recorded parameters (``download`` is not part of the split)."""
        out = {k: v for k, v in vars(self).items() if k != "download"}
        out["unlabeled_imbalance_ratio"] = self.gamma_u
        return out


def darp_groups(labeled_counts: np.ndarray) -> np.ndarray:
    """Many/medium/few as DARP's code scores them (``validate``: major, neutral, minor).

    The ``C // 3`` classes with the most labeled images are many, the ``C // 3`` with the
    fewest are few, the rest medium (3/4/3 for 10 classes, 33/34/33 for 100). DARP indexes
    classes head first, so its thirds are labeled-count ranks, which is what we use.
    """
    n = len(labeled_counts)
    third = n // 3
    return splits_by_rank(labeled_counts, (third, n - 2 * third, third))


def make_lt_split(
    dataset: str,
    params: LTParams,
    seed: int,
    train_labels: np.ndarray,
    test_labels: np.ndarray,
    class_names: tuple[str, ...],
    class_split: np.ndarray,
) -> Split:
    """The split of a CIFAR-style LT protocol, a pure function of its inputs (no images).

    Args:
        dataset: registered name.
        params: the protocol's parameters.
        seed: split seed.
        train_labels: class of every train item, in the class-major item order.
        test_labels: class of every test item (all of them are the test set).
        class_names: one name per class.
        class_split: many/medium/few of every class.
    """
    rng = np.random.default_rng(seed)
    train_labels = np.asarray(train_labels, dtype=np.int64)
    lab, unl = draw_per_class(train_labels, params.labeled_counts(), params.unlabeled_counts(), rng)
    return Split(
        dataset=dataset,
        params=params.to_json(),
        seed=seed,
        class_names=class_names,
        labeled_idx=lab,
        labeled_y=train_labels[lab],
        unlabeled_idx=unl,
        test_idx=np.arange(len(test_labels)),
        test_y=np.asarray(test_labels, dtype=np.int64),
        class_split=class_split,
        unlabeled_y_hidden=train_labels[unl],
    )
