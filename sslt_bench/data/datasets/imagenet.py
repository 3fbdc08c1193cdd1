"""imagenet-sslt: ImageNet-SSLT of the paper (Section 4.1) from an ILSVRC-2012 copy.

Layout: ``ROOT/train/<wnid>/*.JPEG`` and ``ROOT/val/<wnid>/*.JPEG`` (validation images sorted
into class folders), ROOT being ``--data-root``/SSLT_DATA or its ``imagenet`` sub-folder.

Labeled counts. The paper samples D "with Lomax distribution, shape 6, scale 1000" and reports
41,134 images, 250 to 2 per class, 140 many (n > 100), 433 medium, 427 few (n <= 10) classes.
The deterministic profile that reproduces all of these exactly is the Lomax density at the
class rank, scaled so that the head class gets ``n_max``::

    n_i = round(n_max * (1 + i / scale) ** -(shape + 1)),   i = 0 .. C-1 (round half to even)

With C = 1000, n_max = 250, shape = 6, scale = 1000: 41,134 labeled, max 250, min 2 (the last
value is 1.96, so no clipping), 140/433/427. Floor instead gives 40,650 (139/424/437) and
ceil 41,643 (140/444/416). Counts are kept at >= 1 for other parameters.

Which class gets which count: the sorted classes in a seeded order; rank i (largest count
first) goes to the first class in that order not yet used that has at least
(1 + unlabeled_factor) * n_i train images. ILSVRC classes have 732 to 1,300 images, so a plain
permutation could ask a small class for 1,250; when every class is large enough this is
exactly the plain permutation. U: ``unlabeled_factor`` (4) times n_j further train images of
every class j, so |U| = 4|D| = 164,536. Test: every validation image (50,000). Many/medium/few
by the thresholds above. ``sslt-bench splits show --dataset imagenet-sslt --counts-only``
prints the counts without the images.

Released split: ``--set split_source=released`` (optionally ``split_lists=DIR``, default
``ROOT/ImageNet_SSLT``) reads the authors' lists ImageNet_SSLT_{train,ext,test}.txt (github
BoLiu-SVCL/SSLT, data/ImageNet_SSLT/; format in :mod:`._released_lists`): D, U and the test set
exactly as theirs, their class indices. Its sorted per-class labeled counts equal the profile
above exactly (checked on their train list: 41,134 images, the same 1,000 counts; docs/
fidelity.md); which class gets which count differs (their own draw). The leaderboard uses the
generated split.

Budgets: backbone ``resnet18`` (paper; the paper also reports ``--set backbone=resnet50``) in
both profiles. Images stream from files (DataLoader workers, ``--workers``) resized to
``image_size`` squares: 224 in the paper; data parameters do not change with the profile, so on
CPU pass a smaller one (``--set image_size=64``). Augmentation (``augment``): ``reference``
(default), the released code's RandomResizedCrop(224) + flip for training and Resize(256) +
CenterCrop(224) for test, run batched on the device (:func:`file_data` says where it is
approximate); ``pad-crop`` the earlier padded random crop of resized squares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ...config import in_range, not_split
from ...errors import UsageError
from ...registry import register_dataset
from ..source import FileSource, SSLTData
from ..split import Split, draw_per_class, splits_by_threshold
from ._folders import scan_class_folders
from ._released_lists import class_names_of, positions, released_split
from .base import DatasetBuilder

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
GET_DATA = (
    "get ILSVRC-2012 from https://image-net.org/download (train/<wnid>/*.JPEG, val sorted into "
    "val/<wnid>/) and pass --data-root DIR or set SSLT_DATA (splits show --counts-only "
    "needs no data)"
)


@dataclass
class ImageNetParams:
    """imagenet-sslt parameters (defaults: the paper's).

    Attributes:
        num_classes: class folders expected under train/ (1000 for ILSVRC-2012).
        n_max: labeled images of the head class.
        lomax_shape: shape (alpha) of the Lomax profile.
        lomax_scale: scale (lambda) of the Lomax profile, in class ranks.
        unlabeled_factor: |U_j| / |D_j| for every class j.
        many_above: many-shot if n > many_above.
        few_at_most: few-shot if n <= few_at_most.
        image_size: network input side (decoded larger with ``augment=reference``).
        split_source: ``generated`` (the Lomax profile above, seeded) or ``released`` (the
            authors' lists ImageNet_SSLT_{train,ext,test}.txt, same per-class counts).
        split_lists: folder of the released lists; unset = ``ROOT/ImageNet_SSLT``.
        augment: ``reference`` (the released code's torchvision pipeline: RandomResizedCrop
            + flip for training, Resize + CenterCrop for test, see :func:`file_data`) or
            ``pad-crop`` (squares resized to ``image_size``, padded random crop + flip).
    """

    num_classes: int = in_range(1000, "[1, inf)")
    n_max: int = in_range(250, "[1, inf)")
    lomax_shape: float = in_range(6.0, "(0, inf)")
    lomax_scale: float = in_range(1000.0, "(0, inf)")
    unlabeled_factor: int = in_range(4, "[0, inf)")
    many_above: int = in_range(100, "[1, inf)")
    few_at_most: int = in_range(10, "[0, inf)")
    image_size: int = in_range(224, "[8, inf)", split=False)
    split_source: Literal["generated", "released"] = "generated"
    split_lists: str | None = None
    augment: Literal["reference", "pad-crop"] = not_split("reference")

    def validate(self) -> None:
        """Cross-field checks (ranges are declared on the fields)."""
        if not self.few_at_most < self.many_above:
            raise UsageError(
                f"few_at_most ({self.few_at_most}) must be < many_above ({self.many_above})"
            )


def lomax_counts(num_classes: int, n_max: int = 250, shape: float = 6.0, scale: float = 1000.0):
    """Labeled count of every rank: round(n_max * (1 + i/scale)^-(shape+1)), at least 1."""
    rank = np.arange(num_classes, dtype=np.float64)
    counts = np.round(n_max * (1.0 + rank / scale) ** -(shape + 1.0))
    return np.maximum(counts, 1).astype(np.int64)


def assign_counts(
    by_rank: np.ndarray, class_sizes: np.ndarray, factor: int, rng: np.random.Generator
) -> np.ndarray:
    """Give rank i's count to the first unused class, in a seeded order, with enough images.

    Args:
        by_rank: labeled count of each rank, non-increasing.
        class_sizes: train images of each class.
        factor: unlabeled factor; class j needs (1 + factor) * n_j images.
        rng: the split's random generator.

    Returns:
        Labeled count of each class.
    """
    free = list(rng.permutation(len(class_sizes)))
    out = np.zeros(len(class_sizes), dtype=np.int64)
    for rank, n in enumerate(by_rank):
        need = int(n) * (1 + factor)
        pos = next((k for k, c in enumerate(free) if class_sizes[c] >= need), None)
        if pos is None:
            raise UsageError(
                f"no class left with {need} train images for count rank {rank} ({n} labeled + "
                f"{n * factor} unlabeled); lower n_max or unlabeled_factor"
            )
        out[free.pop(pos)] = n
    return out


def _find_root(root: Path | None) -> Path:
    if root is None:
        raise UsageError(
            f"imagenet-sslt needs its data: no --data-root or SSLT_DATA given; {GET_DATA}"
        )
    for base in (Path(root) / "imagenet", Path(root)):
        if (base / "train").is_dir():
            return base
    raise UsageError(
        f"no ILSVRC-2012 copy found: looked for {Path(root) / 'imagenet' / 'train'} and "
        f"{Path(root) / 'train'}; {GET_DATA}"
    )


def write_tiny_jpegs(folder: Path, count: int, seed: int, size: int = 16) -> None:
    """Write ``count`` random ``size``-pixel RGB JPEGs (smoke fixtures and tests)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{k:03d}.JPEG", quality=90)


def file_data(
    split: Split, train: list, test: list, size: int, augment: str, mean, std
) -> SSLTData:
    """The data bundle of a file-backed ImageNet-style data set.

    ``reference``: images decoded with the shorter side at S = round(size * 256 / 224) and the
    centre S x S kept; training views are RandomResizedCrop(size) + flip of that square, test
    the centre size x size crop (exactly Resize(256) + CenterCrop(224) at size 224). The
    training crop can only come from the centre square of a non-square image (torchvision's
    from the whole image) and is resampled bilinearly without antialiasing.
    ``pad-crop``: size x size squares (aspect not kept), padded random crop + flip.
    """
    pad = max(1, size // 8)
    if augment == "reference":
        big = round(size * 256 / 224)
        src, tst = FileSource(train, big, fit="shorter"), FileSource(test, big, fit="shorter")
        return SSLTData(split, src, tst, mean, std, pad, crop="resized", crop_size=size)
    return SSLTData(split, FileSource(train, size), FileSource(test, size), mean, std, pad)


def _data(params: ImageNetParams, split: Split, train_files: list, val_files: list) -> SSLTData:
    train = [p for f in train_files for p in f]
    test = [p for f in val_files for p in f]
    return file_data(
        split, train, test, params.image_size, params.augment, IMAGENET_MEAN, IMAGENET_STD
    )


def _released(params: ImageNetParams, seed: int, base: Path, train_files, val_files) -> Split:
    """The split of the authors' lists (their class indices; train/ and val/ item order)."""
    lists = released_split(Path(params.split_lists or base / "ImageNet_SSLT"))
    names = class_names_of(list(lists.values()), params.num_classes)
    flat_train = [p for f in train_files for p in f]
    (d_paths, d_y), (u_paths, u_y), (t_paths, t_y) = lists["train"], lists["ext"], lists["test"]
    lab = positions(d_paths, flat_train, base, "train")
    unl = positions(u_paths, flat_train, base, "ext")
    if len(np.intersect1d(lab, unl)):
        raise UsageError("the released train and ext lists share images")
    counts = np.bincount(d_y, minlength=params.num_classes)
    return Split(
        dataset="imagenet-sslt",
        params=vars(params).copy(),
        seed=seed,
        class_names=tuple(names),
        labeled_idx=lab,
        labeled_y=d_y,
        unlabeled_idx=unl,
        test_idx=positions(t_paths, [p for f in val_files for p in f], base, "test"),
        test_y=t_y,
        class_split=splits_by_threshold(counts, params.many_above, params.few_at_most),
        unlabeled_y_hidden=u_y,
    )


@register_dataset(
    "imagenet-sslt",
    summary="ILSVRC-2012, Lomax(6, 1000) labeled counts 250..2 (41,134 images), 4x "
    "unlabeled, 50k val test; needs --data-root",
)
class ImageNetSSLT(DatasetBuilder):
    """ImageNet-SSLT (paper Section 4.1)."""

    Params = ImageNetParams
    hints = {"quick": {"backbone": "resnet18"}, "paper": {"backbone": "resnet18"}}

    @classmethod
    def planned_counts(cls, params: ImageNetParams, seed: int) -> dict:
        """The per-rank labeled/unlabeled counts and split sizes, without reading any image."""
        n = lomax_counts(params.num_classes, params.n_max, params.lomax_shape, params.lomax_scale)
        sizes = np.bincount(
            splits_by_threshold(n, params.many_above, params.few_at_most), minlength=3
        )
        return {
            "num_classes": params.num_classes,
            "labeled_counts": n.tolist(),
            "unlabeled_counts": (n * params.unlabeled_factor).tolist(),
            "split_sizes": dict(zip(("many", "medium", "few"), map(int, sizes), strict=True)),
        }

    @classmethod
    def build(cls, params: ImageNetParams, seed: int, root: Path | None) -> SSLTData:
        """Scan train/ and val/ and draw the split for ``seed``."""
        base = _find_root(root)
        classes, train_files = scan_class_folders(base / "train", what="train")
        if len(classes) != params.num_classes:
            raise UsageError(
                f"found {len(classes)} class folders in {base / 'train'}, expected "
                f"{params.num_classes}; use --set num_classes={len(classes)} for a partial copy"
            )
        _, val_files = scan_class_folders(base / "val", classes, what="val")
        if params.split_source == "released":
            split = _released(params, seed, base, train_files, val_files)
            return _data(params, split, train_files, val_files)
        sizes = np.array([len(f) for f in train_files])
        labels = np.repeat(np.arange(len(classes)), sizes)
        rng = np.random.default_rng(seed)
        by_rank = lomax_counts(len(classes), params.n_max, params.lomax_shape, params.lomax_scale)
        n = assign_counts(by_rank, sizes, params.unlabeled_factor, rng)
        lab, unl = draw_per_class(labels, n, n * params.unlabeled_factor, rng)
        test_y = np.repeat(np.arange(len(classes)), [len(f) for f in val_files])
        split = Split(
            dataset="imagenet-sslt",
            params=vars(params).copy(),
            seed=seed,
            class_names=tuple(classes),
            labeled_idx=lab,
            labeled_y=labels[lab],
            unlabeled_idx=unl,
            test_idx=np.arange(len(test_y)),
            test_y=test_y,
            class_split=splits_by_threshold(n, params.many_above, params.few_at_most),
            unlabeled_y_hidden=labels[unl],
        )
        return _data(params, split, train_files, val_files)

    @classmethod
    def smoke_fixture(cls, root: Path) -> tuple[Path | None, dict[str, str]]:
        """Three classes of ten 16x16 JPEGs (two val each); counts 2, 1, 1."""
        for c in range(3):
            write_tiny_jpegs(root / "imagenet" / "train" / f"n0000000{c}", 10, seed=c)
            write_tiny_jpegs(root / "imagenet" / "val" / f"n0000000{c}", 2, seed=10 + c)
        return root, {"num_classes": "3", "n_max": "2", "lomax_scale": "3", "image_size": "16"}
