"""inat2018-sslt: iNaturalist2018-SSLT of the paper (Appendix C) from the iNat 2018 release.

Data: ``ROOT/train2018.json`` and ``ROOT/val2018.json`` (COCO style: ``images`` with ``id`` and
``file_name``, ``annotations`` with ``image_id`` and ``category_id``, ``categories``) and the
images they name, ``file_name`` being relative to ROOT (``train_val2018/<super>/<id>/*.jpg``).
ROOT is ``--data-root``/SSLT_DATA or its ``inat2018`` sub-folder.

Split (paper: "randomly down-sampled one-fifth ... as labeled data, and the remains are assigned
as unsupervised subset. Classes with less than 2 labeled samples are eliminated"): the train
images of each category, sorted by file name and permuted with the split seed; the first
floor(n / 5) are labeled, all the others unlabeled; categories with fewer than 2 labeled images
(n < 10) are dropped. Floor because it is the only rounding that keeps "the unsupervised subset
4 times larger" for every class (|U_j| >= 4 |D_j|; rounding up or to nearest gives, e.g., 8
images -> 2 labeled + 6 unlabeled) and gives the stated labeled range 200 (1,000 images) to 2.
Kept categories are re-indexed 0..C-1 in sorted category-id order. Many >= 100, medium 10..99,
few 2..9 labeled images. Test: the validation images of the kept categories.

The paper reports 8,080 kept classes split 134 / 1,220 / 7,010; these do not add up (134 + 1,220
+ 7,010 = 8,364, more than the 8,142 categories of iNat 2018), so they cannot all be reproduced,
and the annotation files were not available where this was written: the number of classes this
rule keeps on the real data is unverified (``sslt-bench splits show`` prints it).

Budgets: backbone ``resnet50`` in the paper profile (paper Table 6), ``resnet18`` in quick.
Images stream from files (DataLoader workers, ``--workers``); ``image_size`` is the network
input (224; pass a smaller one on CPU, e.g. ``--set image_size=64``). Augmentation
(``augment``) as imagenet-sslt's: ``reference`` (default) = the released code's
RandomResizedCrop + flip / Resize + CenterCrop, ``pad-crop`` = padded crop of resized squares.
Normalisation: the released SSLT code's iNaturalist mean and std.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ...config import in_range, not_split
from ...errors import UsageError
from ...registry import register_dataset
from ..source import SSLTData
from ..split import Split, draw_per_class, splits_by_threshold
from .base import DatasetBuilder
from .imagenet import file_data, write_tiny_jpegs

#: Normalisation of the released SSLT code (dataset/dataloader.py, ``inat``).
INAT_MEAN = (0.466, 0.470, 0.380)
INAT_STD = (0.195, 0.194, 0.192)

GET_DATA = (
    "get train_val2018.tar.gz, train2018.json and val2018.json from "
    "https://github.com/visipedia/inat_comp/tree/master/2018, unpack them into one folder and "
    "pass it as --data-root DIR or SSLT_DATA"
)


@dataclass
class INatParams:
    """inat2018-sslt parameters (defaults: the paper's).

    Attributes:
        labeled_divisor: a category with n train images gets floor(n / labeled_divisor) labeled.
        min_labeled: categories with fewer labeled images are dropped.
        many_at_least: many-shot if n >= many_at_least labeled.
        few_below: few-shot if n < few_below labeled.
        image_size: network input side (decoded larger with ``augment=reference``).
        augment: ``reference`` or ``pad-crop`` (as imagenet-sslt's).
    """

    labeled_divisor: int = in_range(5, "[1, inf)")
    min_labeled: int = in_range(2, "[1, inf)")
    many_at_least: int = in_range(100, "[1, inf)")
    few_below: int = in_range(10, "[1, inf)")
    image_size: int = in_range(224, "[8, inf)", split=False)
    augment: Literal["reference", "pad-crop"] = not_split("reference")

    def validate(self) -> None:
        """Cross-field checks (ranges are declared on the fields)."""
        if not self.few_below < self.many_at_least:
            raise UsageError(
                f"few_below ({self.few_below}) must be < many_at_least ({self.many_at_least})"
            )


def _find_root(root: Path | None) -> Path:
    if root is None:
        raise UsageError(f"inat2018-sslt needs its data: no --data-root or SSLT_DATA; {GET_DATA}")
    for base in (Path(root) / "inat2018", Path(root)):
        if (base / "train2018.json").is_file():
            return base
    raise UsageError(
        f"no iNaturalist 2018 copy found: looked for {Path(root) / 'inat2018' / 'train2018.json'}"
        f" and {Path(root) / 'train2018.json'}; {GET_DATA}"
    )


def read_coco(path: Path) -> tuple[dict[int, list[str]], dict[int, str]]:
    """Read a COCO-style file: (category id -> sorted file names, category id -> name)."""
    try:
        obj = json.loads(path.read_text())
        label = {a["image_id"]: int(a["category_id"]) for a in obj["annotations"]}
        files = defaultdict(list)
        for img in obj["images"]:
            if img["id"] in label:
                files[label[img["id"]]].append(str(img["file_name"]))
        names = {int(c["id"]): str(c.get("name", c["id"])) for c in obj.get("categories", [])}
    except FileNotFoundError:
        raise UsageError(f"{path} not found; {GET_DATA}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot read {path}: {type(exc).__name__} {exc}") from None
    return {c: sorted(f) for c, f in files.items()}, names


@register_dataset(
    "inat2018-sslt",
    summary="iNaturalist 2018, 1/5 of each class labeled (rest unlabeled), classes "
    "with < 2 labeled dropped, val test; needs --data-root",
)
class INat2018SSLT(DatasetBuilder):
    """iNaturalist2018-SSLT (paper Appendix C)."""

    Params = INatParams
    hints = {"quick": {"backbone": "resnet18"}, "paper": {"backbone": "resnet50"}}

    @classmethod
    def build(cls, params: INatParams, seed: int, root: Path | None) -> SSLTData:
        """Read the annotation files and draw the split for ``seed``."""
        base = _find_root(root)
        train, names = read_coco(base / "train2018.json")
        val, _ = read_coco(base / "val2018.json")
        unknown = sorted(set(val) - set(train))
        if unknown:
            raise UsageError(f"val2018.json has categories absent from train: {unknown[:5]}")
        kept = sorted(
            c for c, f in train.items() if len(f) // params.labeled_divisor >= params.min_labeled
        )
        if not kept:
            raise UsageError(
                f"no category of {base / 'train2018.json'} has {params.min_labeled} labeled images"
            )
        sizes = np.array([len(train[c]) for c in kept])
        labels = np.repeat(np.arange(len(kept)), sizes)
        paths = [base / f for c in kept for f in train[c]]
        if not paths[0].is_file():
            raise UsageError(f"image {paths[0]} named in train2018.json not found; {GET_DATA}")
        n = sizes // params.labeled_divisor
        lab, unl = draw_per_class(labels, n, sizes - n, np.random.default_rng(seed))
        test_sizes = [len(val.get(c, [])) for c in kept]
        test_y = np.repeat(np.arange(len(kept)), test_sizes)
        split = Split(
            dataset="inat2018-sslt",
            params=vars(params).copy(),
            seed=seed,
            class_names=tuple(names.get(c, str(c)) for c in kept),
            labeled_idx=lab,
            labeled_y=labels[lab],
            unlabeled_idx=unl,
            test_idx=np.arange(len(test_y)),
            test_y=test_y,
            class_split=splits_by_threshold(n, params.many_at_least - 1, params.few_below - 1),
            unlabeled_y_hidden=labels[unl],
        )
        test = [base / f for c in kept for f in val.get(c, [])]
        return file_data(split, paths, test, params.image_size, params.augment, INAT_MEAN, INAT_STD)

    @classmethod
    def smoke_fixture(cls, root: Path) -> tuple[Path | None, dict[str, str]]:
        """Categories 7, 3, 11 with 10-12 train images (2 labeled each), one dropped (4)."""
        write_inat_copy(root / "inat2018", {7: (10, 2), 3: (12, 2), 11: (10, 1), 5: (4, 1)})
        return root, {"image_size": "16"}


def write_inat_copy(folder: Path, counts: dict[int, tuple[int, int]], size: int = 16) -> None:
    """Write a tiny iNat-2018-style copy: category -> (train images, val images)."""
    parts: dict[str, dict] = {}
    for part, k in (("train", 0), ("val", 1)):
        images, annotations = [], []
        for cat, pair in counts.items():
            sub = f"train_val2018/Plantae/{cat}/{part}"
            write_tiny_jpegs(folder / sub, pair[k], seed=cat * 2 + k, size=size)
            for j in range(pair[k]):
                images.append({"id": len(images) + 1000 * k, "file_name": f"{sub}/img{j:03d}.JPEG"})
                annotations.append({"image_id": images[-1]["id"], "category_id": cat})
        categories = [{"id": c, "name": f"species {c}"} for c in counts]
        parts[part] = {"images": images, "annotations": annotations, "categories": categories}
        (folder / f"{part}2018.json").write_text(json.dumps(parts[part]))
