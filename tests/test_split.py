import numpy as np
import pytest

from sslt_bench.config import build_config
from sslt_bench.data.split import (
    Split,
    draw_per_class,
    exponential_counts,
    splits_by_rank,
    splits_by_rank_thirds,
    splits_by_threshold,
)
from sslt_bench.errors import UsageError
from sslt_bench.registry import DATASETS


def digits_split(seed, **overrides):
    builder = DATASETS.get("digits-sslt")
    params = build_config(builder.Params, "paper", overrides)
    return builder.build(params, seed, None).split


def test_same_seed_same_split_and_hash():
    a, b = digits_split(0), digits_split(0)
    assert a.hash == b.hash
    np.testing.assert_array_equal(a.labeled_idx, b.labeled_idx)
    np.testing.assert_array_equal(a.unlabeled_idx, b.unlabeled_idx)
    np.testing.assert_array_equal(a.test_idx, b.test_idx)


def test_different_seed_different_split():
    a, b = digits_split(0), digits_split(1)
    assert a.hash != b.hash
    assert not np.array_equal(a.labeled_idx, b.labeled_idx)


def test_params_change_hash():
    assert digits_split(0).hash != digits_split(0, imbalance_ratio=5).hash


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_digits_invariants(seed):
    s = digits_split(seed)
    # D, U, test pairwise disjoint
    assert not set(s.labeled_idx) & set(s.unlabeled_idx)
    assert not set(s.labeled_idx) & set(s.test_idx)
    assert not set(s.unlabeled_idx) & set(s.test_idx)
    # U has D's class distribution, 4x larger
    np.testing.assert_array_equal(s.unlabeled_counts, 4 * s.labeled_counts)
    # balanced test set
    test_counts = np.bincount(s.test_y, minlength=10)
    assert (test_counts == test_counts[0]).all() and test_counts[0] == 30
    # long tail: 28 down to 2, ratio 10 (floor of the exponential profile)
    assert (
        sorted(s.labeled_counts.tolist(), reverse=True) == exponential_counts(28, 10, 10).tolist()
    )
    assert s.labeled_counts.max() == 28 and s.labeled_counts.min() == 2
    # many/medium/few = 3 most populated, next 3, last 4
    order = np.argsort(-s.labeled_counts, kind="stable")
    assert s.class_split[order].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert s.split_sizes == {"many": 3, "medium": 3, "few": 4}


def test_exponential_counts_cao_profile():
    counts = exponential_counts(5000, 100, 10)
    assert counts[0] == 5000 and counts[-1] == 50
    assert counts.tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert exponential_counts(10, 1000, 10).min() == 1  # every class keeps >= 1 image
    with pytest.raises(UsageError, match="imbalance_ratio"):
        exponential_counts(10, 0.5, 10)


def test_split_assignments():
    counts = np.array([5, 50, 500, 7, 70, 700])
    assert splits_by_rank(counts, (2, 2, 2)).tolist() == [2, 1, 0, 2, 1, 0]
    assert splits_by_rank_thirds(counts).tolist() == [2, 1, 0, 2, 1, 0]
    assert splits_by_threshold(counts, 100, 10).tolist() == [2, 1, 0, 2, 1, 0]
    assert splits_by_threshold(np.array([100, 101, 10, 11]), 100, 10).tolist() == [1, 0, 2, 1]


def test_draw_per_class_disjoint_and_exact():
    labels = np.repeat(np.arange(3), 20)
    rng = np.random.default_rng(0)
    lab, unl = draw_per_class(labels, np.array([5, 3, 1]), np.array([10, 6, 2]), rng)
    assert np.bincount(labels[lab]).tolist() == [5, 3, 1]
    assert np.bincount(labels[unl]).tolist() == [10, 6, 2]
    assert not set(lab) & set(unl)
    with pytest.raises(UsageError, match="class 0 has 20 images"):
        draw_per_class(labels, np.array([15, 1, 1]), np.array([10, 1, 1]), rng)


def test_json_roundtrip_and_tamper(tmp_path):
    s = digits_split(0)
    obj = s.to_json()
    again = Split.from_json(obj)
    assert again.hash == s.hash
    obj["labeled_idx"] = obj["labeled_idx"][1:] + [obj["labeled_idx"][0]]
    obj["labeled_idx"][0] = 10**6
    with pytest.raises(UsageError, match="does not match"):
        Split.from_json(obj)


def test_overlap_rejected():
    with pytest.raises(ValueError, match="overlap"):
        Split("x", {}, 0, ("a",), [0, 1], [0, 0], [1], [0], [0], [0], [0])
