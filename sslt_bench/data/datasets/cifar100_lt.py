"""cifar100-lt: CIFAR-100-LT of class-imbalanced SSL (DARP, DASO, ACR, SimPro, CPE).

Papers and code as cifar10-lt (DARP github.com/bbuing9/DARP, DASO github.com/ytaek-oh/daso,
ACR github.com/Gank0078/ACR, SimPro github.com/LeapLabTHU/SimPro). Labeled D: n_k =
int(n1 * gamma_l^(-k/99)) images of fine class k in CIFAR-100's label order (apple = head);
unlabeled U from the train images not in D with the ``unlabeled_dist`` profile (consistent,
uniform, reversed, middle, head-tail; ``_lt_protocol``), m1 at its peak. Defaults n1=150,
m1=300, gamma 10 (DASO/ACR/CPE); also reported: n1=50 m1=400 with gamma 10 or 20 (ACR,
SimPro). Test: the 10,000 CIFAR-100 test images. Many/medium/few: DARP's thirds by labeled
count, 33 / 34 / 33 classes.

Data: torchvision's ``cifar-100-python/{train,test,meta}`` under ``--data-root``/SSLT_DATA;
``--set download=true`` fetches it with torchvision where there is internet. Decoded once and
cached like CIFAR-10. Profiles: quick ResNet-20, paper ResNet-32 (the data set hints).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ...registry import register_dataset
from ..source import SSLTData, TensorSource
from ._cifar_sources import CIFAR100_DIR, load_cifar100
from ._lt_protocol import LTParams, darp_groups, make_lt_split
from .base import DatasetBuilder

#: The fine label names of the official ``meta`` file, in label order (alphabetical).
CLASSES = tuple(
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus "
    "butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch "
    "crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house "
    "kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle "
    "mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree "
    "plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew "
    "skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank "
    "telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree "
    "wolf woman worm".split()
)


@dataclass
class Cifar100LTParams(LTParams):
    """cifar100-lt parameters (see :class:`~._lt_protocol.LTParams`); defaults n1=150, m1=300."""

    n1: int = 150
    m1: int = 300
    imbalance_ratio: float = 10.0

    NUM_CLASSES: ClassVar[int] = 100
    PER_CLASS: ClassVar[int] = 500


def make_split(params: Cifar100LTParams, seed: int, train_labels, test_labels, classes):
    """The cifar100-lt split from the labels alone (pinned in the tests)."""
    groups = darp_groups(params.labeled_counts())
    return make_lt_split(
        "cifar100-lt", params, seed, train_labels, test_labels, tuple(classes), groups
    )


def write_cifar100_pickles(root: Path, train: int, test: int, seed: int = 0) -> Path:
    """Write random CIFAR-100 stand-in files in the official pickle layout (tests, smoke).

    Args:
        root: the ``--data-root``; files go to ``root/cifar-100-python``.
        train: train images per class.
        test: test images per class.
        seed: seed of the pixels and of the (shuffled, as in the real files) item order.
    """
    rng = np.random.default_rng(seed)
    folder = root / CIFAR100_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for part, per_class in (("train", train), ("test", test)):
        y = rng.permutation(np.repeat(np.arange(100), per_class))
        x = rng.integers(0, 256, (len(y), 3 * 32 * 32), dtype=np.uint8)
        batch = {b"data": x, b"fine_labels": y.tolist(), b"coarse_labels": (y // 5).tolist()}
        (folder / part).write_bytes(pickle.dumps(batch))
    names = [c.encode() for c in CLASSES]
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": names}))
    return folder


@register_dataset(
    "cifar100-lt",
    summary="CIFAR-100-LT (DARP/DASO/ACR/SimPro): n1=150, m1=300, gamma 10; unlabeled "
    "consistent/uniform/reversed/middle/head-tail",
)
class Cifar100LT(DatasetBuilder):
    """CIFAR-100-LT with a labeled and a (possibly mismatched) unlabeled long tail."""

    Params = Cifar100LTParams

    @classmethod
    def planned_counts(cls, params: Cifar100LTParams, seed: int) -> dict:
        """Per-class labeled/unlabeled counts and group sizes, without reading any image."""
        return params.planned_counts()

    @classmethod
    def build(cls, params: Cifar100LTParams, seed: int, root: Path | None) -> SSLTData:
        """Load (or decode once) CIFAR-100 and draw the split for ``seed``."""
        data = load_cifar100(root, params.download)
        split = make_split(
            params, seed, data["train_y"].numpy(), data["test_y"].numpy(), data["classes"]
        )
        return SSLTData(
            split,
            TensorSource(data["train_x"]),
            TensorSource(data["test_x"]),
            tuple(data["mean"]),
            tuple(data["std"]),
        )

    @classmethod
    def smoke_fixture(cls, root: Path) -> tuple[Path | None, dict[str, str]]:
        """Official-layout pickles of 100 classes x (3 train + 1 test) random images."""
        write_cifar100_pickles(root, train=3, test=1)
        return root, {"n1": "2", "m1": "1", "imbalance_ratio": "2", "unlabeled_dist": "middle"}
