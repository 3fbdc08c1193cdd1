"""cifar10-lt: published per-class counts, unlabeled profiles, pinned split hashes, bad values."""

from pathlib import Path

import numpy as np
import pytest

from sslt_bench.config import build_config
from sslt_bench.data.datasets._lt_protocol import UNLABELED_DISTS, unlabeled_profile
from sslt_bench.data.datasets.cifar10_lt import Cifar10LT, Cifar10LTParams, make_split
from sslt_bench.errors import UsageError

TRAIN_Y = np.repeat(np.arange(10), 5000)  # the real class-major layout of CIFAR-10 train
TEST_Y = np.repeat(np.arange(10), 1000)

# DARP/DASO/ACR's n1=1500 gamma 100 list, and their m1=3000 list.
LABELED = [1500, 899, 539, 323, 193, 116, 69, 41, 25, 15]
UNLABELED = [3000, 1798, 1078, 646, 387, 232, 139, 83, 50, 30]
# Computed once from make_split; any change to the split logic must change these on purpose.
PINNED = {
    ("consistent", 0): "90f3574f46837ef8",
    ("consistent", 1): "f65c680afe279abe",
    ("reversed", 0): "245d29b9e581a307",
    ("reversed", 1): "5e95c7a2f28ac603",
    ("uniform", 0): "d9001ceac1b0daee",
    ("middle", 0): "30d962c3bda37024",
    ("head-tail", 0): "919b3fdd6332768f",
}


def params(**kw):
    return build_config(Cifar10LTParams, "paper", {k: str(v) for k, v in kw.items()})


@pytest.mark.parametrize("dist,seed", sorted(PINNED))
def test_pinned_split_hashes(dist, seed):
    split = make_split(params(unlabeled_dist=dist), seed, TRAIN_Y, TEST_Y)
    assert split.hash == PINNED[dist, seed]


def test_default_counts_are_the_published_ones():
    split = make_split(params(), 0, TRAIN_Y, TEST_Y)
    assert split.labeled_counts.tolist() == LABELED
    assert split.unlabeled_counts.tolist() == UNLABELED
    assert (TRAIN_Y[split.unlabeled_idx] == split.unlabeled_y_hidden).all()
    assert not set(split.labeled_idx) & set(split.unlabeled_idx)
    assert split.class_split.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]  # DARP's thirds
    assert len(split.test_idx) == 10000
    assert split.params["unlabeled_imbalance_ratio"] == 100.0
    assert "download" not in split.params


@pytest.mark.parametrize(
    "dist,expected",
    [
        ("consistent", UNLABELED),
        ("reversed", UNLABELED[::-1]),
        ("uniform", [3000] * 10),
        # SimPro's flag 3 (middle) and 4 (head-tail) orders of the consistent list.
        ("middle", [50, 139, 387, 1078, 3000, 1798, 646, 232, 83, 30]),
        ("head-tail", [1798, 646, 232, 83, 30, 50, 139, 387, 1078, 3000]),
    ],
)
def test_unlabeled_profiles(dist, expected):
    assert unlabeled_profile(3000, 100, 10, dist).tolist() == expected
    split = make_split(params(unlabeled_dist=dist), 0, TRAIN_Y, TEST_Y)
    assert split.unlabeled_counts.tolist() == expected


def test_reversed_puts_unlabeled_head_on_labeled_tail():
    split = make_split(params(unlabeled_dist="reversed"), 0, TRAIN_Y, TEST_Y)
    n, m = split.labeled_counts, split.unlabeled_counts
    assert np.argmax(m) == np.argmin(n) == 9 and np.argmin(m) == np.argmax(n) == 0


def test_other_reported_settings():
    p = params(n1=500, m1=4000, imbalance_ratio=150)
    assert p.labeled_counts().tolist() == [500, 286, 164, 94, 53, 30, 17, 10, 5, 3]
    assert p.unlabeled_counts().tolist() == [4000, 2292, 1313, 752, 431, 247, 141, 81, 46, 26]
    p = params(unlabeled_imbalance_ratio=1, unlabeled_dist="consistent")
    assert p.unlabeled_counts().tolist() == [3000] * 10  # ACR's uniform spelling: gamma_u = 1
    assert params(unlabeled_imbalance_ratio=50).unlabeled_counts()[-1] == 60


def test_seed_changes_the_draw_not_the_counts():
    a = make_split(params(), 0, TRAIN_Y, TEST_Y)
    b = make_split(params(), 1, TRAIN_Y, TEST_Y)
    assert not np.array_equal(a.labeled_idx, b.labeled_idx)
    assert a.labeled_counts.tolist() == b.labeled_counts.tolist()


def test_planned_counts_match_split():
    info = Cifar10LT.planned_counts(params(unlabeled_dist="reversed"), 0)
    assert info["labeled_counts"] == LABELED and info["unlabeled_counts"] == UNLABELED[::-1]
    assert info["split_sizes"] == {"many": 3, "medium": 4, "few": 3}


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"imbalance_ratio": 0.5}, "imbalance_ratio must be >= 1, got 0.5"),
        ({"unlabeled_imbalance_ratio": 0.9}, "unlabeled_imbalance_ratio must be >= 1"),
        ({"unlabeled_dist": "flat"}, "choose from: " + ", ".join(UNLABELED_DISTS)),
        ({"n1": 3000}, "ask class 0 for 6000 images .* has 5000"),
        ({"m1": 4000, "unlabeled_dist": "uniform"}, "ask class 0 for 5500"),
        ({"n1": 0}, "need n1 >= 1"),
    ],
)
def test_bad_params(kw, msg):
    with pytest.raises(UsageError, match=msg):
        params(**kw)


def test_bad_value_exits_2_with_one_line(cli_run, tmp_path):
    code, text = cli_run(
        "splits", "show", "--dataset", "cifar10-lt", "--set", "unlabeled_dist=flat", expect=2
    )
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and "'flat'" in lines[0] and "head-tail" in lines[0], text


def test_build_from_tiny_copy(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLT_CACHE", str(tmp_path / "cache"))
    root, sets = Cifar10LT.smoke_fixture(tmp_path / "data")
    data = Cifar10LT.build(params(**sets), 0, root)
    assert data.split.labeled_counts.tolist() == [2, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert data.split.unlabeled_counts.tolist() == [1, 1, 1, 1, 2, 2, 2, 2, 2, 3]
    assert data.train.images.shape == (70, 3, 32, 32) and len(data.split.test_idx) == 20


TARBALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.tar.gz"


@pytest.mark.slow
@pytest.mark.needs_shared("data/cifar10-jpg.tar.gz")
def test_real_cifar10_tarball():
    data = Cifar10LT.build(params(unlabeled_dist="reversed"), 0, TARBALL.parent)
    assert data.split.hash == PINNED["reversed", 0]  # the real data is class-major 10 x 5000
    assert data.split.unlabeled_counts.tolist() == UNLABELED[::-1]
