"""cifar10-sslt: CIFAR-10-SSLT of the paper (Section 4.1; Cao et al. 2019 for the profile).

Labeled D: n_i = floor(n_max * ratio^(-i/9)) images of CIFAR class i (airplane = head, truck =
tail), at least 1 each; ratio 100 (default) or 1000. Unlabeled U: the same class distribution,
``unlabeled_factor`` (5) times larger. The paper took U from Tiny Images (withdrawn), so by
default U comes from the CIFAR-10 train images not in D, which needs n_max = 5000 // (1 + 5) =
833 (``n_max`` unset = 5000 // (1 + unlabeled_factor)). The floors and the at-least-one rule
make the achieved ratio n_max / n_min of the actual counts (``splits show``, and
``split.achieved_ratio`` in every record) differ from ``imbalance_ratio``: 833 / 8 = 104.1
at ratio 100, and at ratio 1000 the counts end 8, 3, 1, 1, so 833 / 1 = 833 (the paper's
n_max = 5000 gives 5000 / 5 = 1000 exactly).
Paper-faithful variant: ``--set unlabeled_source=POOL`` keeps the paper's n_max = 5000 and
draws U class-proportionally from an external pool file: ``.npz`` (or a ``torch.save``-d
dict) with ``images`` (uint8 ``[N, 32, 32, 3]`` or ``[N, 3, 32, 32]``) and ``labels``
(``[N]``, class index or -1); the labels only select images per class and score pseudo-labels.
Many/medium/few: the 3 most populated classes, the next 3, the last 4. Test: 10,000 images.

Sources under ``--data-root``/SSLT_DATA, first found wins: ``cifar-10-batches-py`` (official
pickles, ``--set download=true`` fetches them with torchvision), an ImageFolder copy
``cifar10/{train,test}/<class>/*`` or ``{train,test}/<class>/*``, or ``cifar10-jpg.tar.gz``.
Items are ordered class-major (original index or file name within a class), so the split is a
function of (params, seed, per-class counts) only and identical for every source. Images are
decoded once into a uint8 cache keyed by the source's content.
Profiles: quick trains ResNet-20; paper trains the CIFAR ResNet-18 of the authors' released
code (``resnet18-cifar``: 3x3 stride-1 stem, no max-pool), the backbone of the paper's Tables 1
and 5 (``--set backbone=resnet32`` for Table 4) (the data set hints).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...config import in_range, not_split
from ...errors import UsageError
from ...registry import register_dataset
from ..source import SSLTData, TensorSource
from ..split import Split, draw_per_class, exponential_counts, splits_by_rank
from ._cifar_sources import CLASSES, load_cifar10, load_pool
from .base import DatasetBuilder

PER_CLASS = 5000


@dataclass
class Cifar10Params:
    """cifar10-sslt parameters.

    Attributes:
        imbalance_ratio: n_max / n_min of the labeled counts (100 or 1000 in the paper).
        n_max: labeled images of the head class; ``None`` = 5000 // (1 + unlabeled_factor)
            (833 by default) with U from CIFAR, or 5000 with U from ``unlabeled_source``.
        unlabeled_factor: |U_j| / |D_j| for every class j.
        unlabeled_source: path of an external unlabeled pool (the paper-faithful variant).
        download: fetch the official batches with torchvision when no copy is found.
    """

    imbalance_ratio: float = in_range(100.0, "[1, inf)")
    n_max: int | None = in_range(None, f"[1, {PER_CLASS}]")
    unlabeled_factor: int = in_range(5, "[0, inf)")
    unlabeled_source: str | None = None
    download: bool = not_split(False)

    def validate(self) -> None:
        """Cross-field checks (ranges are declared on the fields)."""
        if self.unlabeled_source is not None:
            if not Path(self.unlabeled_source).is_file():
                raise UsageError(f"unlabeled_source {self.unlabeled_source} is not a file")
        elif self.effective_n_max * (1 + self.unlabeled_factor) > PER_CLASS:
            raise UsageError(
                f"n_max {self.effective_n_max} x (1 + unlabeled_factor {self.unlabeled_factor})"
                f" exceeds the {PER_CLASS} CIFAR-10 train images per class; lower n_max "
                f"(<= {PER_CLASS // (1 + self.unlabeled_factor)}) or set unlabeled_source"
            )

    @property
    def effective_n_max(self) -> int:
        """n_max, or its default for the chosen unlabeled source."""
        if self.n_max is not None:
            return self.n_max
        return PER_CLASS if self.unlabeled_source else PER_CLASS // (1 + self.unlabeled_factor)


def make_split(
    params: Cifar10Params,
    seed: int,
    train_labels: np.ndarray,
    test_labels: np.ndarray,
    pool_labels: np.ndarray | None = None,
) -> Split:
    """The cifar10-sslt split as a pure function of its inputs (no images needed).

    Args:
        params: the parameters.
        seed: split seed.
        train_labels: class of every train item, in the class-major item order.
        test_labels: class of every test item.
        pool_labels: classes of an external unlabeled pool (-1 = unknown), indexed after the
            train items; ``None`` draws U from the train items.
    """
    rng = np.random.default_rng(seed)
    n = exponential_counts(params.effective_n_max, params.imbalance_ratio, len(CLASSES))
    m = n * params.unlabeled_factor
    train_labels = np.asarray(train_labels, dtype=np.int64)
    if pool_labels is None:
        lab, unl = draw_per_class(train_labels, n, m, rng)
        unl_y = train_labels[unl]
    else:
        lab, _ = draw_per_class(train_labels, n, np.zeros_like(n), rng)
        pool_labels = np.asarray(pool_labels, dtype=np.int64)
        have = np.bincount(pool_labels[pool_labels >= 0], minlength=len(CLASSES))
        short = np.flatnonzero(have[: len(CLASSES)] < m)
        if len(short):
            c = short[0]
            raise UsageError(
                f"unlabeled_source has {have[c]} images of class {CLASSES[c]} but U needs "
                f"{m[c]}; lower n_max or unlabeled_factor, or use a larger pool"
            )
        unl, _ = draw_per_class(pool_labels, m, np.zeros_like(m), rng)
        unl_y = pool_labels[unl]
        unl = unl + len(train_labels)
    params_json = {**vars(params), "n_max": params.effective_n_max}
    params_json.pop("download")
    return Split(
        dataset="cifar10-sslt",
        params=params_json,
        seed=seed,
        class_names=CLASSES,
        labeled_idx=lab,
        labeled_y=train_labels[lab],
        unlabeled_idx=unl,
        test_idx=np.arange(len(test_labels)),
        test_y=test_labels,
        class_split=splits_by_rank(n, (3, 3, 4)),
        unlabeled_y_hidden=unl_y,
    )


@register_dataset(
    "cifar10-sslt",
    summary="CIFAR-10, exponential LT labeled (ratio 100/1000) + 5x unlabeled, "
    "10k test (paper Sec. 4.1)",
)
class Cifar10SSLT(DatasetBuilder):
    """CIFAR-10-SSLT (the paper's CIFAR benchmark)."""

    Params = Cifar10Params
    hints = {"quick": {"backbone": "resnet20"}, "paper": {"backbone": "resnet18-cifar"}}

    @classmethod
    def planned_counts(cls, params: Cifar10Params, seed: int) -> dict:
        """Per-class labeled/unlabeled counts and split sizes, without reading any image."""
        n = exponential_counts(params.effective_n_max, params.imbalance_ratio, len(CLASSES))
        sizes = np.bincount(splits_by_rank(n, (3, 3, 4)), minlength=3).tolist()
        return {
            "num_classes": len(CLASSES),
            "labeled_counts": n.tolist(),
            "unlabeled_counts": (n * params.unlabeled_factor).tolist(),
            "split_sizes": dict(zip(("many", "medium", "few"), sizes, strict=True)),
        }

    @classmethod
    def build(cls, params: Cifar10Params, seed: int, root: Path | None) -> SSLTData:
        """Load (or decode once) CIFAR-10 and draw the split for ``seed``."""
        data = load_cifar10(root, params.download)
        train_x, train_y = data["train_x"], data["train_y"].numpy()
        pool_y = None
        if params.unlabeled_source:
            pool_x, pool_y = load_pool(params.unlabeled_source)
            train_x = torch.cat([train_x, pool_x])
        split = make_split(params, seed, train_y, data["test_y"].numpy(), pool_y)
        return SSLTData(
            split,
            TensorSource(train_x),
            TensorSource(data["test_x"]),
            tuple(data["mean"]),
            tuple(data["std"]),
        )

    @classmethod
    def smoke_fixture(cls, root: Path) -> tuple[Path | None, dict[str, str]]:
        """A tiny ImageFolder copy: 10 classes x (7 train + 2 test) random 32x32 PNGs."""
        from PIL import Image

        rng = np.random.default_rng(0)
        for part, count in (("train", 7), ("test", 2)):
            for c in CLASSES:
                folder = root / "cifar10" / part / c
                folder.mkdir(parents=True, exist_ok=True)
                for i in range(count):
                    pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                    Image.fromarray(pixels).save(folder / f"{i:04d}.png")
        return root, {"n_max": "2", "imbalance_ratio": "2", "unlabeled_factor": "2"}
