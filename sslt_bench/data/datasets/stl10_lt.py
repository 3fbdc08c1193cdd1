"""stl10-lt: STL-10-LT of class-imbalanced SSL (DARP, DASO, ACR, SimPro, CPE).

Papers and code: DARP (github.com/bbuing9/DARP, ``dataset/all_stl10.py``), DASO
(github.com/ytaek-oh/daso, ``lib/dataset/stl10.py``), ACR (github.com/Gank0078/ACR). Labeled D:
n_k = int(n1 * gamma^(-k/9)) of STL-10's 5,000 train images of class k (airplane = head, truck =
tail, the ``class_names.txt`` order), n1 = 450, gamma 10 or 20 (150 also reported). Unlabeled U:
all 100,000 unlabeled images, whose class distribution is unknown (some are not of the 10
classes at all), so their hidden labels are -1 and no U diagnostic can score them. Test: the
8,000 test images. ``image_size`` 32 (default; DARP, DASO and ACR resize to 32 px) or 96
(native). Many/medium/few: DARP's thirds by labeled count, 3 / 4 / 3 classes.

Data: torchvision's ``stl10_binary/{train,test}_{X,y}.bin`` and ``unlabeled_X.bin`` under
``--data-root``/SSLT_DATA (``--set download=true`` fetches the 2.6 GB archive). Decoded once
into a uint8 cache per image size (about 0.3 GB at 32 px, 2.9 GB at 96 px). Profiles: quick
ResNet-20, paper ResNet-32 (the data set hints).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...errors import UsageError
from ...registry import register_dataset
from ..source import SSLTData, TensorSource
from ..split import Split, draw_per_class, exponential_counts
from . import _cache
from ._cifar_sources import _download
from ._lt_protocol import check_ratio, darp_groups
from .base import DatasetBuilder, cache_dir

CLASSES = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")
FOLDER = "stl10_binary"
FILES = ("train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin", "unlabeled_X.bin")
PER_CLASS = 500


@dataclass
class Stl10LTParams:
    """stl10-lt parameters.

    Attributes:
        n1: labeled images of the head class (at most 500).
        imbalance_ratio: gamma_l = n1 / n_9.
        image_size: 32 (as the papers train) or 96 (native).
        download: fetch the official archive with torchvision when no copy is found.
    """

    n1: int = 450
    imbalance_ratio: float = 10.0
    image_size: int = 32
    download: bool = False

    def validate(self) -> None:
        """Reject impossible parameters with a one-line error naming the bad value."""
        check_ratio("imbalance_ratio", self.imbalance_ratio)
        if not 1 <= self.n1 <= PER_CLASS:
            raise UsageError(
                f"n1 must be in [1, {PER_CLASS}] (STL-10 has {PER_CLASS} train images per "
                f"class), got {self.n1}"
            )
        if self.image_size not in (32, 96):
            raise UsageError(f"bad value {self.image_size} for image_size; choose from: 32, 96")


def make_split(params: Stl10LTParams, seed: int, train_y, test_y, num_unlabeled: int) -> Split:
    """The split: D from the class-major train items, U = the unlabeled items after them."""
    train_y = np.asarray(train_y, dtype=np.int64)
    n = exponential_counts(params.n1, params.imbalance_ratio, len(CLASSES))
    lab, _ = draw_per_class(train_y, n, np.zeros_like(n), np.random.default_rng(seed))
    return Split(
        dataset="stl10-lt",
        params={"n1": params.n1, "imbalance_ratio": params.imbalance_ratio},
        seed=seed,
        class_names=CLASSES,
        labeled_idx=lab,
        labeled_y=train_y[lab],
        unlabeled_idx=np.arange(len(train_y), len(train_y) + num_unlabeled),
        test_idx=np.arange(len(test_y)),
        test_y=np.asarray(test_y, dtype=np.int64),
        class_split=darp_groups(n),
        unlabeled_y_hidden=np.full(num_unlabeled, -1, dtype=np.int64),
    )


def _read_images(path: Path, size: int, chunk: int = 2048) -> torch.Tensor:
    """uint8 ``[N, 3, size, size]`` from an STL-10 ``*_X.bin`` (column-major 96x96 images)."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % (3 * 96 * 96):
        raise UsageError(f"{path} is not an STL-10 image file ({raw.size} bytes)")
    x = torch.from_numpy(raw.reshape(-1, 3, 96, 96)).transpose(2, 3)
    if size == 96:
        return x.contiguous()
    out = torch.empty(len(x), 3, size, size, dtype=torch.uint8)
    for s in range(0, len(x), chunk):  # antialiased bilinear, like PIL's resize
        part = torch.nn.functional.interpolate(
            x[s : s + chunk].float(), size=(size, size), mode="bilinear", antialias=True
        )
        out[s : s + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


def load_stl10(root: Path | None, size: int, download: bool = False) -> dict:
    """Find STL-10's binary files under ``root`` and return cached tensors at ``size`` px.

    ``train_x`` holds the class-major train images followed by the ``num_unlabeled``
    unlabeled ones; ``train_y`` labels the train images only.
    """
    base = root if root is not None else cache_dir() / "data"
    found = [f for f in (base / FOLDER, base) if all((f / n).is_file() for n in FILES)]
    if not found and download:
        _download("STL10", base, split="train")
        found = [base / FOLDER]
    if not found:
        raise UsageError(
            f"STL-10 not found in {base} (looked for {FOLDER}/{{{','.join(FILES)}}}); pass "
            "--data-root DIR holding it, or add --set download=true to fetch it with torchvision"
        )
    folder = found[0]

    def build() -> dict:
        out: dict = {}
        for part in ("train", "test"):
            y = np.fromfile(folder / f"{part}_y.bin", dtype=np.uint8).astype(np.int64) - 1
            order = np.argsort(y, kind="stable")  # class-major, file order within a class
            out[f"{part}_x"] = _read_images(folder / f"{part}_X.bin", size)[order]
            out[f"{part}_y"] = torch.from_numpy(y[order])
        out["mean"], out["std"] = _cache.channel_stats(out["train_x"])
        unlabeled = _read_images(folder / "unlabeled_X.bin", size)
        out["num_unlabeled"] = len(unlabeled)
        out["train_x"] = torch.cat([out["train_x"], unlabeled])  # U after the train images
        return out

    key = _cache.files_key(folder, [folder / n for n in FILES]) + f"-{size}"
    return _cache.cached(f"stl10-{size}", key, build)


def write_stl10_binary(root: Path, train: int, test: int, unlabeled: int, seed: int = 0) -> Path:
    """Write random STL-10 stand-in files in the official binary layout (tests, smoke)."""
    rng = np.random.default_rng(seed)
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for part, per_class in (("train", train), ("test", test)):
        y = rng.permutation(np.repeat(np.arange(10), per_class)) + 1  # 1-based, as the files
        y.astype(np.uint8).tofile(folder / f"{part}_y.bin")
        rng.integers(0, 256, (len(y), 3, 96, 96), dtype=np.uint8).tofile(folder / f"{part}_X.bin")
    rng.integers(0, 256, (unlabeled, 3, 96, 96), dtype=np.uint8).tofile(folder / FILES[-1])
    (folder / "class_names.txt").write_text("\n".join(CLASSES) + "\n")
    return folder


@register_dataset(
    "stl10-lt",
    summary="STL-10-LT (DARP/DASO/ACR): n1=450, gamma 10/20 labeled; U = the 100k unlabeled "
    "images (labels unknown); 32 or 96 px",
)
class Stl10LT(DatasetBuilder):
    """STL-10 with a long-tailed labeled set and its unlabeled split of unknown distribution."""

    Params = Stl10LTParams

    @classmethod
    def build(cls, params: Stl10LTParams, seed: int, root: Path | None) -> SSLTData:
        """Load (or decode once) STL-10 and draw the split for ``seed``."""
        data = load_stl10(root, params.image_size, params.download)
        train_y, test_y = data["train_y"].numpy(), data["test_y"].numpy()
        split = make_split(params, seed, train_y, test_y, int(data["num_unlabeled"]))
        return SSLTData(
            split,
            TensorSource(data["train_x"]),
            TensorSource(data["test_x"]),
            tuple(data["mean"]),
            tuple(data["std"]),
            crop_padding=params.image_size // 8,
        )

    @classmethod
    def smoke_fixture(cls, root: Path) -> tuple[Path | None, dict[str, str]]:
        """Official-layout binaries: 10 classes x (3 train + 1 test), 20 unlabeled, 96 px."""
        write_stl10_binary(root, train=3, test=1, unlabeled=20)
        return root, {"n1": "2", "imbalance_ratio": "2"}
