"""imagenet127: ImageNet-127 of CReST, CoSSL, ACR and SimPro, built from an ILSVRC-2012 tree.

Classes: the 127 WordNet super-classes of Huh et al. 2016 ("What makes ImageNet good for
transfer learning?", the up-down label set), which group the 1,000 ILSVRC classes into a
natural long tail (gamma about 286). The wnid -> super-class table is
``sslt_bench/data/datasets/imagenet127.json``: the super-class list of CoSSL's
``prepare_small_imagenet_127/synset_words_up_down_127.txt`` (github.com/YUE-FAN/CoSSL, the file
ACR's and SimPro's READMEs point to) with the membership read off Huh et al.'s released
``val_up_down_127.txt`` (github.com/minyoungg/wmigftl).

Split (CoSSL ``fix_small_imagenet127.py``, ACR and SimPro ``get_smallimagenet``): class c has
N_c train images; D takes n_c = round(labeled_fraction * N_c) of them (numpy's round, 10%),
U the other N_c - n_c (SimPro; CoSSL and ACR also put D's images into U). Classes are
re-indexed by decreasing n_c as ACR and SimPro do (ties: the super-class list's order), so
class 0 is the head. Test: the first ``test_per_class`` (50, SimPro's balanced test set) val
images of every class in (wnid, file name) order; CoSSL and ACR test on all 50,000 val images
and report the mean per-class recall, which a balanced set makes the plain accuracy.
Many/medium/few: no paper reports them for ImageNet-127; we use DARP's thirds by labeled count
(42 / 43 / 42) as for the other LT protocols.

Layout: ``ROOT/train/<wnid>/*.JPEG`` and ``ROOT/val/<wnid>/*.JPEG``, ROOT being ``--data-root``
or its ``imagenet`` sub-folder (as imagenet-sslt). Images stream from the files resized to
``image_size`` (32 or 64 in the papers, which read the downsampled ImageNet of Chrabaszcz et
al., box-resized; ours are bilinear). Profiles: ResNet-18 backbone in both (data set hints).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ...config import in_range
from ...errors import UsageError
from ...registry import register_dataset
from ..source import FileSource, SSLTData
from ..split import Split, draw_per_class
from ._folders import scan_class_folders
from ._lt_protocol import darp_groups
from .base import DatasetBuilder
from .imagenet import GET_DATA, IMAGENET_MEAN, IMAGENET_STD, write_tiny_jpegs


def load_mapping() -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(super-classes as (wnid, name) in CoSSL's order, ILSVRC wnid -> super-class index)."""
    text = resources.files("sslt_bench.data.datasets").joinpath("imagenet127.json").read_text()
    table = json.loads(text)
    return [tuple(s) for s in table["superclasses"]], table["wnid_to_superclass"]


@dataclass
class ImageNet127Params:
    """imagenet127 parameters (defaults: the papers').

    Attributes:
        labeled_fraction: share of every super-class's train images that is labeled.
        image_size: side of the decoded square images (32 or 64 in the papers).
        test_per_class: val images per super-class in the balanced test set.
    """

    labeled_fraction: float = in_range(0.1, "(0, 1)")
    image_size: int = in_range(32, "[8, inf)")
    test_per_class: int = in_range(50, "[1, inf)")


def _find_root(root: Path | None) -> Path:
    if root is None:
        raise UsageError(f"imagenet127 needs its data: no --data-root or SSLT_DATA; {GET_DATA}")
    for base in (Path(root) / "imagenet", Path(root)):
        if (base / "train").is_dir() and (base / "val").is_dir():
            return base
    raise UsageError(f"no ILSVRC-2012 train/ and val/ under {root} or {root}/imagenet; {GET_DATA}")


def _group(folder: Path, what: str, mapping: dict[str, int]) -> list[list[Path]]:
    """Files of every super-class (CoSSL index), in (wnid, file name) order."""
    wnids, files = scan_class_folders(folder, what=what)
    unknown = [w for w in wnids if w not in mapping]
    if unknown:
        raise UsageError(
            f"{what} folder {folder} has {len(unknown)} folder(s) that are not ILSVRC-2012 "
            f"classes, e.g. {unknown[0]!r}; expected <wnid> folders such as 'n01440764'"
        )
    out: list[list[Path]] = [[] for _ in range(127)]
    for w, fs in zip(wnids, files, strict=True):
        out[mapping[w]].extend(fs)
    return out


def make_split(
    params: ImageNet127Params, seed: int, sizes, names: list[str]
) -> tuple[Split, np.ndarray]:
    """The split from the per-class train image counts, given in the super-class list's order.

    Returns:
        (the split, whose class ``k`` is the ``k``-th largest super-class and whose train and
        test items are numbered class-major in that order; ``order``: list index of class k).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    n = np.round(params.labeled_fraction * sizes).astype(np.int64)
    order = np.argsort(-n, kind="stable")
    sizes, n = sizes[order], n[order]
    labels = np.repeat(np.arange(len(sizes)), sizes)
    lab, unl = draw_per_class(labels, n, sizes - n, np.random.default_rng(seed))
    test_y = np.repeat(np.arange(len(sizes)), params.test_per_class)
    return Split(
        dataset="imagenet127",
        params={"labeled_fraction": params.labeled_fraction},
        seed=seed,
        class_names=tuple(names[i] for i in order),
        labeled_idx=lab,
        labeled_y=labels[lab],
        unlabeled_idx=unl,
        test_idx=np.arange(len(test_y)),
        test_y=test_y,
        class_split=darp_groups(n),
        unlabeled_y_hidden=labels[unl],
    ), order


@register_dataset(
    "imagenet127",
    summary="ImageNet-127 (CReST/CoSSL/ACR/SimPro): 127 WordNet super-classes, 10% labeled, "
    "rest unlabeled, 32/64 px; needs --data-root",
)
class ImageNet127(DatasetBuilder):
    """ImageNet-127: the naturally long-tailed super-class version of ILSVRC-2012."""

    Params = ImageNet127Params
    hints = {"quick": {"backbone": "resnet18"}, "paper": {"backbone": "resnet18"}}

    @classmethod
    def build(cls, params: ImageNet127Params, seed: int, root: Path | None) -> SSLTData:
        """Scan train/ and val/, group them into super-classes and draw the split."""
        base = _find_root(root)
        supers, mapping = load_mapping()
        train = _group(base / "train", "train", mapping)
        val = _group(base / "val", "val", mapping)
        for what, groups, need in (("train", train, 1), ("val", val, params.test_per_class)):
            short = [i for i, g in enumerate(groups) if len(g) < need]
            if short:
                w, name = supers[short[0]]
                raise UsageError(
                    f"super-class {name!r} ({w}) has {len(groups[short[0]])} {what} images, "
                    f"needs {need} ({len(short)} such super-class(es)); a full ILSVRC-2012 "
                    "copy has every one"
                )
        names = [name for _, name in supers]
        split, order = make_split(params, seed, [len(g) for g in train], names)
        train_files = [p for i in order for p in train[i]]
        test_files = [p for i in order for p in val[i][: params.test_per_class]]
        size = params.image_size
        return SSLTData(
            split,
            FileSource(train_files, size),
            FileSource(test_files, size),
            IMAGENET_MEAN,
            IMAGENET_STD,
            crop_padding=max(1, size // 8),
        )

    @classmethod
    def smoke_fixture(cls, root: Path) -> tuple[Path | None, dict[str, str]]:
        """One wnid per super-class, 2 + (k % 2) train and 1 val 16 px JPEGs each."""
        supers, mapping = load_mapping()
        first = {}
        for w, i in sorted(mapping.items()):
            first.setdefault(i, w)
        for i, w in first.items():
            write_tiny_jpegs(root / "imagenet" / "train" / w, 2 + i % 2, seed=i, size=8)
            write_tiny_jpegs(root / "imagenet" / "val" / w, 1, seed=1000 + i, size=8)
        return root, {"labeled_fraction": "0.4", "image_size": "8", "test_per_class": "1"}
