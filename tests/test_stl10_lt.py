"""stl10-lt: counts, pinned split hashes, the official binary layout, U of unknown labels."""

import json

import numpy as np
import pytest
import torch

from sslt_bench.config import build_config
from sslt_bench.data.datasets.stl10_lt import Stl10LT, Stl10LTParams, make_split, write_stl10_binary
from sslt_bench.errors import UsageError

TRAIN_Y = np.repeat(np.arange(10), 500)  # the real class-major layout of STL-10 train
TEST_Y = np.repeat(np.arange(10), 800)
# Computed once from make_split with the real sizes (100,000 unlabeled images).
PINNED = {(10, 0): "7f79ae3548df1154", (20, 0): "6913bb8633dd248c"}


def params(**kw):
    return build_config(Stl10LTParams, "paper", {k: str(v) for k, v in kw.items()})


@pytest.mark.parametrize("ratio,seed", sorted(PINNED))
def test_pinned_split_hashes(ratio, seed):
    split = make_split(params(imbalance_ratio=ratio), seed, TRAIN_Y, TEST_Y, 100000)
    assert split.hash == PINNED[ratio, seed]


def test_counts_and_unknown_unlabeled_labels():
    split = make_split(params(), 0, TRAIN_Y, TEST_Y, 100000)
    assert split.labeled_counts.tolist() == [450, 348, 269, 208, 161, 125, 96, 75, 58, 45]
    assert (split.unlabeled_y_hidden == -1).all() and len(split.unlabeled_idx) == 100000
    assert split.unlabeled_idx.min() == 5000  # U follows the 5,000 train images
    assert split.unlabeled_counts.tolist() == [0] * 10
    assert split.class_split.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert len(split.test_idx) == 8000
    ratio20 = params(imbalance_ratio=20)
    assert make_split(ratio20, 0, TRAIN_Y, TEST_Y, 10).labeled_counts.tolist() == [
        450, 322, 231, 165, 118, 85, 61, 43, 31, 22,
    ]  # fmt: skip


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"imbalance_ratio": 0.5}, "imbalance_ratio must be >= 1"),
        ({"n1": 501}, r"n1 must be in \[1, 500\]"),
        ({"image_size": 64}, "image_size; choose from: 32, 96"),
    ],
)
def test_bad_params(kw, msg):
    with pytest.raises(UsageError, match=msg):
        params(**kw)


@pytest.mark.parametrize("size", [32, 96])
def test_build_from_official_layout(tmp_path, monkeypatch, size):
    monkeypatch.setenv("SSLT_CACHE", str(tmp_path / "cache"))
    folder = write_stl10_binary(tmp_path / "data", train=3, test=2, unlabeled=7, seed=1)
    data = Stl10LT.build(params(n1=2, imbalance_ratio=2, image_size=size), 0, tmp_path / "data")
    assert data.train.images.shape == (37, 3, size, size) and len(data.test) == 20
    assert data.split.unlabeled_idx.tolist() == list(range(30, 37))
    y = np.fromfile(folder / "train_y.bin", dtype=np.uint8).astype(int) - 1
    raw = np.fromfile(folder / "train_X.bin", dtype=np.uint8).reshape(-1, 3, 96, 96)
    first = np.flatnonzero(y == 4)[0]  # class-major, file order within a class
    img = torch.from_numpy(raw[first]).transpose(1, 2)  # the files store images column-major
    if size == 96:
        assert torch.equal(data.train.images[4 * 3], img)
    else:
        small = torch.nn.functional.interpolate(img[None].float(), size=(32, 32), mode="area")
        assert (data.train.images[4 * 3].float() - small[0]).abs().mean() < 12
    unl = np.fromfile(folder / "unlabeled_X.bin", dtype=np.uint8).reshape(-1, 3, 96, 96)
    if size == 96:
        assert torch.equal(data.train.images[30], torch.from_numpy(unl[0]).transpose(1, 2))


def test_missing_files_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLT_CACHE", str(tmp_path / "cache"))
    write_stl10_binary(tmp_path / "data", train=1, test=1, unlabeled=1)
    (tmp_path / "data" / "stl10_binary" / "unlabeled_X.bin").unlink()
    with pytest.raises(UsageError, match="STL-10 not found in .*unlabeled_X.bin.*download=true"):
        Stl10LT.build(params(n1=1), 0, tmp_path / "data")


@pytest.mark.parametrize("method", ["fixmatch", "alternate"])
def test_ssl_run_copes_with_unknown_unlabeled_labels(tmp_path, monkeypatch, method):
    """Pseudo-labelling methods run end to end with U's hidden labels all -1."""
    from sslt_bench.registry import METHODS
    from sslt_bench.train.runner import Runner, RunSpec

    monkeypatch.setenv("SSLT_CACHE", str(tmp_path / "cache"))
    root, sets = Stl10LT.smoke_fixture(tmp_path / "data")
    smoke = METHODS.get(method).Config.SMOKE
    spec = RunSpec(
        method=method,
        dataset="stl10-lt",
        out=tmp_path / "out",
        progress=False,
        device="cpu",
        data_root=str(root),
        overrides=(*(f"{k}={v}" for k, v in smoke.items()), *(f"{k}={v}" for k, v in sets.items())),
    )
    rec = Runner(spec).run()
    assert rec["status"] == "ok" and rec["metrics"]["overall"] is not None
    json.dumps(rec["history"], allow_nan=False)  # diagnostics stay valid JSON with -1 labels
