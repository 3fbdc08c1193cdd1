import numpy as np
import pytest

from sslt_bench.train.metrics import accuracy_report


def test_known_answer():
    # 4 classes, 2 test images each; class 0,1 many, 2 medium, 3 few
    target = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    pred = np.array([0, 0, 1, 0, 2, 1, 0, 0])
    rep = accuracy_report(pred, target, np.array([0, 0, 1, 2]), 4)
    assert rep["per_class"] == [100.0, 50.0, 50.0, 0.0]
    assert rep["overall"] == pytest.approx(100 * 4 / 8)
    assert rep["many"] == pytest.approx(75.0)
    assert rep["medium"] == pytest.approx(50.0)
    assert rep["few"] == pytest.approx(0.0)


def test_empty_split_is_missing_not_zero():
    target = np.array([0, 1])
    rep = accuracy_report(np.array([0, 1]), target, np.array([0, 0]), 2)
    assert rep["medium"] is None and rep["few"] is None
    assert rep["many"] == 100.0


def test_absent_class_is_none_and_excluded():
    target = np.array([0, 0, 2])
    rep = accuracy_report(np.array([0, 1, 2]), target, np.array([0, 0, 1]), 3)
    assert rep["per_class"] == [50.0, None, 100.0]
    assert rep["many"] == 50.0  # class 1 has no test images: left out of the mean
    assert rep["overall"] == pytest.approx(200 / 3)
