"""digits-sslt: the embedded default, from scikit-learn's bundled UCI digits (no download).

1,797 real 8x8 grey images of 10 digits. Per class, ``test_per_class`` images (default 30)
form a balanced test set; from the rest, a long-tailed labeled set D with exponential counts
n_i = n_max * ratio^(-i/9) (default n_max 28, ratio 10: 28 down to 2 per class, 109 images)
and an unlabeled set U with ``unlabeled_factor`` (default 4) times the labeled count of every
class. Which digit is the head class is a seeded permutation. Many/medium/few: the 3 most
populated classes, the next 3, the last 4 (as CIFAR-10-SSLT).
Default backbone: ``small-cnn`` with batch size 32 in both profiles (D has 109 images), and
an epoch is at least 32 batches (``min_steps_per_epoch``). Normalisation: mean and std of the
training images D ∪ U (no test image; before this, they were taken over all 1,797 images).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...config import in_range
from ...errors import UsageError
from ...registry import register_dataset
from ..source import SSLTData, TensorSource
from ..split import Split, draw_per_class, exponential_counts, splits_by_rank
from .base import DatasetBuilder


@dataclass
class DigitsParams:
    """digits-sslt parameters.

    Attributes:
        imbalance_ratio: n_max / n_min of the labeled counts.
        n_max: labeled images of the head class.
        unlabeled_factor: |U_j| / |D_j| for every class j.
        test_per_class: balanced test images per class.
        min_steps_per_epoch: training epochs shorter than this many batches cycle the shuffled
            pool up to it (D is ~109 images, 4 batches of 32: epoch-based recipes would get
            a few dozen SGD steps in total otherwise). Honoured by the runner for every
            data set whose parameters have this field.
    """

    imbalance_ratio: float = in_range(10.0, "[1, inf)")
    n_max: int = in_range(28, "[1, inf)")
    unlabeled_factor: int = in_range(4, "[0, inf)")
    test_per_class: int = in_range(30, "[1, inf)")
    min_steps_per_epoch: int = in_range(32, "[0, inf)", split=False)


def load_digits_array() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as ([1797, 1, 8, 8] values 0..16, [1797] labels).

    Reads the CSV that ships inside scikit-learn directly (what ``load_digits`` reads), which
    saves the ~1 s import of scikit-learn in every run; falls back to ``load_digits``.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("digits-sslt needs scikit-learn: pip install scikit-learn")
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz"
    if path.is_file():
        table = np.loadtxt(path, delimiter=",")
        return table[:, :-1].reshape(-1, 1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images[:, None], digits.target.astype(np.int64)


def train_stats(images: torch.Tensor, train_idx: np.ndarray) -> tuple[float, float]:
    """Normalisation mean and std (in [0, 1] units) of the training images D ∪ U only.

    As CIFAR's usual constants come from its training set: no test image takes part.
    """
    pixels = images[torch.as_tensor(train_idx)].double() / 255
    return float(pixels.mean()), float(pixels.std())


@register_dataset(
    "digits-sslt",
    summary="sklearn digits (8x8, 10 classes), LT labeled + 4x "
    "unlabeled, balanced test; embedded default, no download",
)
class DigitsSSLT(DatasetBuilder):
    """scikit-learn digits as an SSLT benchmark (the embedded default)."""

    Params = DigitsParams
    hints = {
        "quick": {"backbone": "small-cnn", "batch_size": 32},
        "paper": {"backbone": "small-cnn", "batch_size": 32},
    }

    @classmethod
    def build(cls, params: DigitsParams, seed: int, root: Path | None) -> SSLTData:
        """Split the 1,797 digits into test, D and U for ``seed``."""
        pixels, labels = load_digits_array()
        images = torch.from_numpy(np.round(pixels * (255.0 / 16.0)).astype(np.uint8))
        rng = np.random.default_rng(seed)
        test_idx = np.sort(
            np.concatenate(
                [
                    rng.permutation(np.flatnonzero(labels == c))[: params.test_per_class]
                    for c in range(10)
                ]
            )
        )
        rest = np.setdiff1d(np.arange(len(labels)), test_idx)
        by_rank = exponential_counts(params.n_max, params.imbalance_ratio, 10)
        class_of_rank = rng.permutation(10)
        n = np.empty(10, dtype=np.int64)
        n[class_of_rank] = by_rank
        rest_labels = np.full(len(labels), -1)
        rest_labels[rest] = labels[rest]
        lab, unl = draw_per_class(rest_labels, n, n * params.unlabeled_factor, rng)
        split = Split(
            dataset="digits-sslt",
            params=vars(params).copy(),
            seed=seed,
            class_names=tuple(str(d) for d in range(10)),
            labeled_idx=lab,
            labeled_y=labels[lab],
            unlabeled_idx=unl,
            test_idx=test_idx,
            test_y=labels[test_idx],
            class_split=splits_by_rank(n, (3, 3, 4)),
            unlabeled_y_hidden=labels[unl],
        )
        source = TensorSource(images)
        mean, std = train_stats(images, np.concatenate([lab, unl]))
        return SSLTData(split, source, source, (mean,), (std,), crop_padding=1, flip=False)
