"""cifar100-lt: counts, pinned split hashes, the official pickle layout, errors."""

import sys
import types

import numpy as np
import pytest
import torch

from sslt_bench.config import build_config
from sslt_bench.data.datasets.cifar100_lt import (
    CLASSES,
    Cifar100LT,
    Cifar100LTParams,
    make_split,
    write_cifar100_pickles,
)
from sslt_bench.errors import UsageError

TRAIN_Y = np.repeat(np.arange(100), 500)  # the real class-major layout of CIFAR-100 train
TEST_Y = np.repeat(np.arange(100), 100)
NAMES = CLASSES  # the real names, so the real files give the pinned hashes too
# Computed once from make_split; any change to the split logic must change these on purpose.
PINNED = {
    ("consistent", 0): "03a25d5f121e6aaf",
    ("reversed", 0): "b8222abc459df72a",
    ("uniform", 0): "d1eddfba893b0889",
}


def params(**kw):
    return build_config(Cifar100LTParams, "paper", {k: str(v) for k, v in kw.items()})


@pytest.mark.parametrize("dist,seed", sorted(PINNED))
def test_pinned_split_hashes(dist, seed):
    split = make_split(params(unlabeled_dist=dist), seed, TRAIN_Y, TEST_Y, NAMES)
    assert split.hash == PINNED[dist, seed]


def test_default_counts():
    split = make_split(params(), 0, TRAIN_Y, TEST_Y, NAMES)
    n, m = split.labeled_counts, split.unlabeled_counts
    assert n[:5].tolist() == [150, 146, 143, 139, 136] and n[-1] == 15 and n.sum() == 5835
    assert m[:3].tolist() == [300, 293, 286] and m[-1] == 30 and m.sum() == 11720
    assert np.bincount(split.class_split).tolist() == [33, 34, 33]  # DARP's thirds
    assert split.class_split[:33].tolist() == [0] * 33 and split.class_split[-33:].min() == 2
    assert not set(split.labeled_idx) & set(split.unlabeled_idx)
    assert len(split.test_idx) == 10000


def test_other_settings():
    assert params(n1=50, m1=400).labeled_counts().sum() == 1911
    assert params(n1=50, m1=400, imbalance_ratio=20).unlabeled_counts().sum() == 12719
    rev = params(unlabeled_dist="reversed")
    assert rev.unlabeled_counts()[-1] == 300 and rev.unlabeled_counts()[0] == 30
    assert params(unlabeled_dist="middle").unlabeled_counts().argmax() == 49


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"imbalance_ratio": 0}, "imbalance_ratio must be >= 1"),
        ({"unlabeled_dist": "inverse"}, "unknown unlabeled_dist 'inverse'|bad value 'inverse'"),
        ({"n1": 300}, "ask class 0 for 600 images .* has 500"),
    ],
)
def test_bad_params(kw, msg):
    with pytest.raises(UsageError, match=msg):
        params(**kw)


def test_build_from_official_layout_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLT_CACHE", str(tmp_path / "cache"))
    folder = write_cifar100_pickles(tmp_path / "data", train=4, test=2, seed=1)
    p = params(n1=2, m1=2, imbalance_ratio=2)
    data = Cifar100LT.build(p, 0, tmp_path / "data")
    split = data.split
    assert split.class_names == tuple(NAMES) and split.labeled_counts.sum() == 101
    assert data.train.images.shape == (400, 3, 32, 32) and len(split.test_idx) == 200
    raw = __import__("pickle").loads((folder / "train").read_bytes())
    y = np.asarray(raw[b"fine_labels"])
    first = np.flatnonzero(y == 7)[0]  # class-major, original order within a class
    expect = torch.from_numpy(raw[b"data"][first].reshape(3, 32, 32))
    assert torch.equal(data.train.images[7 * 4], expect)
    assert (data_y(data)[split.labeled_idx] == split.labeled_y).all()
    again = Cifar100LT.build(p, 0, folder)  # the folder itself also works; cache reused
    assert again.split.hash == split.hash
    assert len(list((tmp_path / "cache").glob("cifar100-*.pt"))) == 1


def data_y(data):
    """Labels of the train source, read back from the cached class-major order."""
    return np.repeat(np.arange(100), len(data.train) // 100)


def test_missing_data_and_download_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UsageError, match=r"CIFAR-100 not found in .*nodata.*download=true"):
        Cifar100LT.build(params(), 0, tmp_path / "nodata")

    def offline(root, train, download):
        raise RuntimeError("<urlopen error [Errno -2] Name or service not known>")

    fake = types.ModuleType("torchvision.datasets")
    fake.CIFAR100 = offline
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    with pytest.raises(UsageError, match="downloading CIFAR-100 into .* failed: <urlopen"):
        Cifar100LT.build(params(download=True), 0, tmp_path / "nodata")
