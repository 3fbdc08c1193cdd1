"""digits-sslt normalises with statistics of its training images D ∪ U, never the test set."""

import numpy as np

from sslt_bench.config import build_config
from sslt_bench.data.datasets import digits

_ORIGINAL = digits.load_digits_array


def _build(monkeypatch, edit=None):
    pixels, labels = _ORIGINAL()
    if edit is not None:
        pixels = pixels.copy()
        edit(pixels)
    monkeypatch.setattr(digits, "load_digits_array", lambda: (pixels, labels))
    params = build_config(digits.DigitsParams, "paper")
    return digits.DigitsSSLT.build(params, 0, None)


def test_stats_are_those_of_d_and_u(monkeypatch):
    data = _build(monkeypatch)
    split = data.split
    train = np.concatenate([split.labeled_idx, split.unlabeled_idx])
    pixels, _ = _ORIGINAL()
    vals = np.round(pixels * (255.0 / 16.0))[train] / 255
    assert np.isclose(data.mean[0], vals.mean()) and np.isclose(data.std[0], vals.std(ddof=1))


def test_test_images_do_not_move_the_stats_but_unlabeled_ones_do(monkeypatch):
    base = _build(monkeypatch)
    test_idx, unl_idx = base.split.test_idx, base.split.unlabeled_idx

    def blank_test(p):
        p[test_idx] = 16.0

    def blank_unlabeled(p):
        p[unl_idx[:50]] = 16.0

    moved_test = _build(monkeypatch, blank_test)
    assert moved_test.split.hash == base.split.hash
    assert (moved_test.mean, moved_test.std) == (base.mean, base.std)
    moved_u = _build(monkeypatch, blank_unlabeled)
    assert moved_u.mean[0] > base.mean[0]
