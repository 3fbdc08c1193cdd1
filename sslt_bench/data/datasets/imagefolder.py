"""imagefolder: bring your own long-tailed data (the paper's SSLT protocol, Section 4.1).

Layout under ``--data-root DIR``: ``DIR/train/<class>/*`` and ``DIR/test/<class>/*`` (the same
class names), optionally ``DIR/unlabeled/**`` (a real unlabeled pool; its labels are unknown, so
pseudo-label diagnostics report them as missing). Grey and colour images of any size are
resized to ``image_size`` squares; ``channels=auto`` keeps 1 channel when every image is grey.

Labeled D and unlabeled U, per class from the sorted train files (permuted by the split seed):
* ``imbalance_ratio`` unset (default): the data's own long tail. With ``unlabeled/``, D = all of
  ``train/``; without it, D_j = max(1, floor(a_j / (1 + f))) of the a_j images of class j and U_j
  = min(f |D_j|, the rest), f = ``unlabeled_factor`` (4: one fifth labeled, as iNat-SSLT).
* ``imbalance_ratio`` r: the exponential profile of Cao et al. 2019 (as CIFAR-10-SSLT), n_i =
  floor(n_max r^(-i/(C-1))) for the i-th most populated class, U_j = f n_j from the rest;
  ``n_max`` unset takes the largest that fits. With ``unlabeled/``, U is the whole pool.
Many/medium/few: rank thirds (default) or thresholds (n > many_above, n <= few_at_most).
Up to 200,000 images are decoded once into a content-keyed uint8 cache and kept in memory;
larger data streams from files through DataLoader workers (``--workers``).
Profiles: the data set hints (quick ResNet-20, paper ResNet-32) unless ``--set backbone=``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...config import in_range, not_split
from ...errors import UsageError, choices_error
from ...registry import register_dataset
from .. import split as sp
from ..imageio import IMAGE_SUFFIXES, is_hidden
from ..source import FileSource, SSLTData, TensorSource
from . import _cache
from ._folders import scan_class_folders
from .base import DatasetBuilder

CACHE_LIMIT = 200_000  # images; more stream from files
LAYOUT = "DIR/train/<class>/*, DIR/test/<class>/* and optionally DIR/unlabeled/*"


@dataclass
class ImageFolderParams:
    """imagefolder parameters.

    Attributes:
        imbalance_ratio: exponential profile n_max / n_min; ``None`` keeps the data's own counts.
        n_max: labeled images of the head class (profile only); ``None`` = largest that fits.
        unlabeled_factor: |U_j| / |D_j| when U is carved from ``train/``.
        split_by: ``rank_thirds`` or ``thresholds`` (many/medium/few).
        many_above: many-shot if n > many_above (``thresholds``).
        few_at_most: few-shot if n <= few_at_most (``thresholds``).
        image_size: side of the decoded square images.
        channels: ``auto``, ``1`` or ``3``.
        flip: whether horizontal flips preserve the label (weak augmentation).
    """

    imbalance_ratio: float | None = in_range(None, "[1, inf)")
    n_max: int | None = in_range(None, "[1, inf)")
    unlabeled_factor: int = in_range(4, "[0, inf)")
    split_by: str = "rank_thirds"
    many_above: int = in_range(100, "[1, inf)")
    few_at_most: int = in_range(10, "[0, inf)")
    image_size: int = in_range(32, "[4, 1024]", split=False)
    channels: str = not_split("auto")
    flip: bool = not_split(True)

    def validate(self) -> None:
        """Choices and cross-field checks (ranges are declared on the fields)."""
        if self.split_by not in ("rank_thirds", "thresholds"):
            raise choices_error("split_by", self.split_by, ("rank_thirds", "thresholds"))
        if not self.few_at_most < self.many_above:
            raise UsageError(
                f"few_at_most ({self.few_at_most}) must be < many_above ({self.many_above})"
            )
        if self.channels not in ("auto", "1", "3"):
            raise choices_error("channels", self.channels, ("auto", "1", "3"))


def plan_counts(params: ImageFolderParams, avail: np.ndarray, pool: bool) -> tuple:
    """Per-class labeled and unlabeled counts, and n_max used, for ``avail`` images per class."""
    f = 0 if pool else params.unlabeled_factor
    if params.imbalance_ratio is None:
        n = np.maximum(avail // (1 + f), 1)
        return n, np.minimum(f * n, avail - n), None
    order = np.argsort(-avail, kind="stable")  # rank i = i-th most populated class

    def fits(n_max: int) -> bool:
        return bool((sp.exponential_counts(n_max, params.imbalance_ratio, len(avail)) * (1 + f)
                     <= avail[order]).all())  # fmt: skip

    n_max = params.n_max
    if n_max is None:
        lo, hi = 1, int(avail.max())
        while lo < hi:  # largest n_max that fits (fits() is monotone in n_max)
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
        n_max = lo
    n = np.empty(len(avail), dtype=np.int64)
    n[order] = sp.exponential_counts(n_max, params.imbalance_ratio, len(avail))
    return n, n * f, n_max


def make_split(params, seed, classes, train_y, test_y, pool_size: int) -> sp.Split:
    """The split as a pure function of the per-class item counts (pool items follow train)."""
    avail = np.bincount(train_y, minlength=len(classes))
    n, m, n_max = plan_counts(params, avail, pool_size > 0)
    short = np.flatnonzero(n + m > avail)
    if len(short):
        c = short[0]
        raise UsageError(
            f"class {classes[c]} has {avail[c]} train images but the split needs {n[c]} labeled"
            f" + {m[c]} unlabeled; lower n_max, imbalance_ratio or unlabeled_factor"
        )
    lab, unl = sp.draw_per_class(train_y, n, m, np.random.default_rng(seed))
    unl_y = train_y[unl]
    if pool_size:
        unl = np.arange(len(train_y), len(train_y) + pool_size)
        unl_y = np.full(pool_size, -1)
    if params.split_by == "thresholds":
        class_split = sp.splits_by_threshold(n, params.many_above, params.few_at_most)
    else:
        class_split = sp.splits_by_rank_thirds(n)
    return sp.Split(
        "imagefolder",
        {**vars(params), "n_max": n_max},
        seed,
        tuple(classes),
        lab,
        train_y[lab],
        unl,
        np.arange(len(test_y)),
        test_y,
        class_split,
        unl_y,
    )


def _decode_all(items, size: int, channels: str) -> dict:
    """Decode every (name, path) to uint8; ``auto`` keeps 1 channel if all images are grey."""
    x = _cache.decode_images(items, size, 1 if channels == "1" else 3)
    if channels == "auto" and bool((x[:, :1] == x[:, 1:]).all()):
        x = x[:, :1].contiguous()
    return {"x": x}


def _sample_channels(paths: list[Path], channels: str) -> int:
    """Channels for streamed data: ``auto`` looks at up to 64 evenly spaced images' modes."""
    if channels != "auto":
        return int(channels)
    from PIL import Image

    for p in paths[:: max(len(paths) // 64, 1)]:
        with Image.open(p) as img:
            if img.mode not in ("1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "F"):
                return 3
    return 1


def _pool_images(folder: Path) -> list[Path]:
    """Every image under ``folder`` (any depth), sorted; hidden files and folders skipped."""
    found = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder).parts
        if p.suffix.lower() in IMAGE_SUFFIXES and not any(is_hidden(Path(x)) for x in rel):
            if p.is_symlink() and not p.exists():
                raise UsageError(f"broken symlink {p}; restore its target or remove it")
            if p.is_file():
                found.append(p)
    return sorted(found)


@register_dataset(
    "imagefolder",
    summary="bring your own data: DIR/train/<class>, DIR/test/<class>, optional "
    "DIR/unlabeled; natural or exponential LT",
)
class ImageFolderSSLT(DatasetBuilder):
    """A user's own image folders as an SSLT benchmark."""

    Params = ImageFolderParams

    @classmethod
    def build(cls, params: ImageFolderParams, seed: int, root: Path | None) -> SSLTData:
        """Scan the folders, draw the split and decode (or stream) the images."""
        if root is None or not (root / "train").is_dir():
            raise UsageError(f"imagefolder needs --data-root DIR with {LAYOUT}; got {root}")
        classes, train = scan_class_folders(root / "train", what="train")
        _, test = scan_class_folders(root / "test", classes, what="test")
        pool: list[Path] = []
        if (root / "unlabeled").is_dir():
            pool = _pool_images(root / "unlabeled")
            if not pool:
                raise UsageError(f"unlabeled folder {root / 'unlabeled'} has no images")
        train_y = np.repeat(np.arange(len(classes)), [len(f) for f in train])
        test_y = np.repeat(np.arange(len(classes)), [len(f) for f in test])
        split = make_split(params, seed, classes, train_y, test_y, len(pool))
        train_paths = [p for fs in train for p in fs] + pool
        test_paths = [p for fs in test for p in fs]
        size, pad = params.image_size, max(params.image_size // 8, 1)
        if len(train_paths) + len(test_paths) > CACHE_LIMIT:
            ch = _sample_channels(train_paths, params.channels)
            sample = [(str(p), p) for p in train_paths[:: max(len(train_paths) // 512, 1)]]
            mean, std = _cache.channel_stats(_decode_all(sample, size, str(ch))["x"])
            train_src = FileSource(train_paths, size, ch)
            test_src = FileSource(test_paths, size, ch)
            return SSLTData(split, train_src, test_src, tuple(mean), tuple(std), pad, params.flip)
        key = hashlib.sha256(
            f"{_cache.files_key(root, train_paths + test_paths)} {size} {params.channels}".encode()
        ).hexdigest()

        def build() -> dict:
            items = [(str(p), p) for p in train_paths + test_paths]
            x = _decode_all(items, size, params.channels)["x"]
            mean, std = _cache.channel_stats(x[: len(train_paths)])
            return {"x": x, "mean": mean, "std": std}

        data = _cache.cached("imagefolder", key, build)
        x = data["x"]
        train_src = TensorSource(x[: len(train_paths)])
        test_src = TensorSource(x[len(train_paths) :])
        return SSLTData(
            split, train_src, test_src, tuple(data["mean"]), tuple(data["std"]), pad, params.flip
        )

    @classmethod
    def smoke_fixture(cls, root: Path) -> tuple[Path | None, dict[str, str]]:
        """4 classes (9/7/5/4 train, 2 test) of grey and RGB images of odd sizes + 6 unlabeled."""
        write_tree(root, {"a": 9, "b": 7, "c": 5, "d": 4}, test=2, unlabeled=6)
        return root, {"image_size": "16", "imbalance_ratio": "4"}


def write_tree(
    root: Path, train: dict[str, int], test: int, unlabeled: int = 0, seed: int = 0
) -> None:
    """Write a tiny image tree: RGB PNGs for even, grey JPEGs for odd indices, odd sizes.

    ``seed`` draws the pixels: another seed gives other images under the same names.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    jobs = [(root / "train" / c, k) for c, k in train.items()]
    jobs += [(root / "test" / c, test) for c in train] + [(root / "unlabeled" / "u", unlabeled)]
    for folder, count in jobs:
        for i in range(count):
            folder.mkdir(parents=True, exist_ok=True)
            shape = (13 + i, 20 + 3 * i) + ((3,) if i % 2 == 0 else ())
            img = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
            img.save(folder / f"{i:03d}.{'png' if i % 2 == 0 else 'jpg'}")
