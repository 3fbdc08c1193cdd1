"""imagenet127: the super-class table, counts and pinned hash, a synthetic ILSVRC tree, errors."""

import collections
import shutil

import numpy as np
import pytest

from sslt_bench.config import build_config
from sslt_bench.data.datasets.imagenet127 import (
    ImageNet127,
    ImageNet127Params,
    load_mapping,
    make_split,
)
from sslt_bench.errors import UsageError

SUPERS, MAPPING = load_mapping()
NAMES = [n for _, n in SUPERS]


def params(**kw):
    return build_config(ImageNet127Params, "paper", {k: str(v) for k, v in kw.items()})


def test_mapping_is_a_partition_of_the_1000_classes():
    assert len(MAPPING) == 1000 and len(SUPERS) == 127
    members = collections.Counter(MAPPING.values())
    assert sorted(members) == list(range(127))  # every super-class has an ILSVRC class
    assert NAMES[members.most_common(1)[0][0]] == "mammal" and max(members.values()) == 218
    for wnid, name in [
        ("n02119789", "mammal"),  # kit fox
        ("n01751748", "snake"),  # sea snake
        ("n09193705", "geological formation"),  # alp
        ("n04263257", "container"),  # soup bowl
    ]:
        assert NAMES[MAPPING[wnid]] == name


def test_counts_and_pinned_hash_on_full_size_layout():
    """1,300 images per ILSVRC class (the real tree has 732-1,300; its hash differs)."""
    members = collections.Counter(MAPPING.values())
    sizes = [1300 * members[i] for i in range(127)]
    split, order = make_split(params(), 0, sizes, NAMES)
    n = split.labeled_counts
    assert n[:3].tolist() == [28340, 16120, 11960] and n[-1] == 130 and n.sum() == 130000
    assert (np.diff(n) <= 0).all()  # class 0 = head, as ACR/SimPro re-index
    assert split.class_names[:3] == ("mammal", "device", "container")
    assert split.unlabeled_counts.tolist() == (9 * n).tolist()
    assert np.bincount(split.class_split).tolist() == [42, 43, 42]
    assert len(split.test_idx) == 127 * 50 and not set(split.labeled_idx) & set(split.unlabeled_idx)
    assert split.hash == "9a7148e21333e8fe"


def test_labeled_fraction_rounds_like_numpy():
    split, _ = make_split(params(labeled_fraction=0.25), 0, [10, 6, 2], ["a", "b", "c"])
    # 2.5 -> 2 and 0.5 -> 0 (round half to even, as np.around in CoSSL/ACR/SimPro)
    assert split.labeled_counts.tolist() == [2, 2, 0]


def test_build_from_synthetic_tree(tmp_path):
    root, sets = ImageNet127.smoke_fixture(tmp_path / "data")
    data = ImageNet127.build(params(**sets), 0, root)
    split = data.split
    assert len(data.train) == sum(2 + i % 2 for i in range(127)) and len(data.test) == 127
    for idx, y in [
        (split.labeled_idx, split.labeled_y),
        (split.unlabeled_idx, split.unlabeled_y_hidden),
    ]:
        for i, c in zip(idx[:50], y[:50], strict=False):
            wnid = data.train.paths[i].parent.name
            assert NAMES[MAPPING[wnid]] == split.class_names[c]
    for i, c in enumerate(split.test_y[:20]):
        assert NAMES[MAPPING[data.test.paths[i].parent.name]] == split.class_names[c]
    assert (np.diff(split.labeled_counts) <= 0).all() and split.labeled_counts.min() >= 1
    again = ImageNet127.build(params(**sets), 0, root)
    assert again.split.hash == split.hash


def test_errors(tmp_path):
    with pytest.raises(UsageError, match="no ILSVRC-2012 train/ and val/"):
        ImageNet127.build(params(), 0, tmp_path / "nowhere")
    root, sets = ImageNet127.smoke_fixture(tmp_path / "data")
    with pytest.raises(UsageError, match="val images, needs 50"):
        ImageNet127.build(params(image_size=8), 0, root)
    (root / "imagenet" / "train" / "not_a_wnid").mkdir()
    (root / "imagenet" / "train" / "not_a_wnid" / "a.JPEG").write_bytes(b"")
    with pytest.raises(UsageError, match="not ILSVRC-2012 classes, e.g. 'not_a_wnid'"):
        ImageNet127.build(params(**sets), 0, root)
    shutil.rmtree(root / "imagenet" / "train" / "not_a_wnid")
    shutil.rmtree(root / "imagenet" / "train" / next(w for w, i in MAPPING.items() if i == 5))
    with pytest.raises(UsageError, match=f"super-class {NAMES[5]!r} .* has 0 train images"):
        ImageNet127.build(params(**sets), 0, root)
    with pytest.raises(UsageError, match="labeled_fraction"):
        params(labeled_fraction=1.5)
