"""cifar10-lt: CIFAR-10-LT of class-imbalanced SSL (DARP, DASO, ABC, CReST, ACR, SimPro, CPE).

Papers: Kim et al., DARP (NeurIPS 2020, github.com/bbuing9/DARP); Oh et al., DASO (CVPR 2022,
github.com/ytaek-oh/daso); Wei & Gan, ACR (CVPR 2023, github.com/Gank0078/ACR); Du et al., SimPro
(ICML 2024, github.com/LeapLabTHU/SimPro). Labeled D: n_k = int(n1 * gamma_l^(-k/9)) images of
CIFAR class k (airplane = head, truck = tail); unlabeled U: m1 at the head of the profile chosen
by ``unlabeled_dist`` (consistent, uniform, reversed, middle, head-tail; see ``_lt_protocol``),
ratio ``unlabeled_imbalance_ratio`` (default gamma_l), drawn from the train images not in D.
Defaults n1=1500, m1=3000, gamma 100 (DARP/DASO/ACR's main setting), labeled counts
[1500, 899, 539, 323, 193, 116, 69, 41, 25, 15]; also reported: n1=500 m1=4000, gamma 150.
Test: the 10,000 CIFAR-10 test images.

Many/medium/few: DARP's released code scores major/neutral/minor as the first, middle and
last ``C // 3`` classes by labeled count: 3 / 4 / 3 here (``_lt_protocol.darp_groups``).

Images come from the same CIFAR-10 copies as cifar10-sslt (``_cifar_sources``: official
pickles, an ImageFolder copy or ``cifar10-jpg.tar.gz`` under ``--data-root``; decoded once and
cached). Profiles: quick ResNet-20, paper ResNet-32 (the data set hints; the papers train
WRN-28-2, which ``--set backbone=`` can select where the model zoo has it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...registry import register_dataset
from ..source import SSLTData, TensorSource
from ._cifar_sources import CLASSES, load_cifar10
from ._lt_protocol import LTParams, darp_groups, make_lt_split
from .base import DatasetBuilder
from .cifar10 import Cifar10SSLT


@dataclass
class Cifar10LTParams(LTParams):
    """cifar10-lt parameters (see :class:`~._lt_protocol.LTParams`); defaults n1=1500, m1=3000."""

    n1: int = 1500
    m1: int = 3000
    imbalance_ratio: float = 100.0


def make_split(params: Cifar10LTParams, seed: int, train_labels, test_labels):
    """The cifar10-lt split from the labels alone (pinned in the tests)."""
    groups = darp_groups(params.labeled_counts())
    return make_lt_split("cifar10-lt", params, seed, train_labels, test_labels, CLASSES, groups)


@register_dataset(
    "cifar10-lt",
    summary="CIFAR-10-LT (DARP/DASO/ACR/SimPro): n1=1500, m1=3000, gamma 100; unlabeled "
    "consistent/uniform/reversed/middle/head-tail",
)
class Cifar10LT(DatasetBuilder):
    """CIFAR-10-LT with a labeled and a (possibly mismatched) unlabeled long tail."""

    Params = Cifar10LTParams

    @classmethod
    def planned_counts(cls, params: Cifar10LTParams, seed: int) -> dict:
        """Per-class labeled/unlabeled counts and group sizes, without reading any image."""
        return params.planned_counts()

    @classmethod
    def build(cls, params: Cifar10LTParams, seed: int, root: Path | None) -> SSLTData:
        """Load (or decode once) CIFAR-10 and draw the split for ``seed``."""
        data = load_cifar10(root, params.download)
        split = make_split(params, seed, data["train_y"].numpy(), data["test_y"].numpy())
        return SSLTData(
            split,
            TensorSource(data["train_x"]),
            TensorSource(data["test_x"]),
            tuple(data["mean"]),
            tuple(data["std"]),
        )

    @classmethod
    def smoke_fixture(cls, root: Path) -> tuple[Path | None, dict[str, str]]:
        """cifar10-sslt's tiny ImageFolder copy (10 classes x 7 train + 2 test PNGs)."""
        root, _ = Cifar10SSLT.smoke_fixture(root)
        return root, {"n1": "2", "m1": "3", "imbalance_ratio": "2", "unlabeled_dist": "reversed"}
