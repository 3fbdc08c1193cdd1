"""imagefolder: tiny trees made here (grey/RGB, odd sizes), counts, pool, cache, errors."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from sslt_bench.config import build_config
from sslt_bench.data.datasets import imagefolder
from sslt_bench.data.datasets.imagefolder import ImageFolderParams, ImageFolderSSLT, write_tree
from sslt_bench.errors import UsageError

TRAIN = {"ant": 10, "bee": 6, "cow": 3}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLT_CACHE", str(tmp_path / "cache"))


def build(root, seed=0, **kw):
    return ImageFolderSSLT.build(build_config(ImageFolderParams, "paper", kw), seed, root)


def test_natural_counts_mixed_grey_rgb(tmp_path):
    write_tree(tmp_path, TRAIN, test=2)
    data = build(tmp_path, image_size=16)
    s = data.split
    assert s.class_names == ("ant", "bee", "cow")
    assert s.labeled_counts.tolist() == [2, 1, 1]  # floor(a / 5), at least 1
    assert s.unlabeled_counts.tolist() == [8, 4, 2]  # min(4 n, the rest)
    assert data.train.images.shape == (19, 3, 16, 16)
    assert data.test.images.shape == (6, 3, 16, 16) and s.test_y.tolist() == [0, 0, 1, 1, 2, 2]
    assert s.class_split.tolist() == [0, 1, 2]
    assert (np.repeat([0, 1, 2], [10, 6, 3])[s.unlabeled_idx] == s.unlabeled_y_hidden).all()
    assert build(tmp_path, seed=1, image_size=16).split.hash != s.hash
    assert build(tmp_path, image_size=16).split.hash == s.hash


def test_grey_auto_channels_and_forced(tmp_path):
    for c, k in TRAIN.items():
        for part, count in (("train", k), ("test", 1)):
            (tmp_path / part / c).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                arr = np.full((7 + i, 9), 25 * i, dtype=np.uint8)
                Image.fromarray(arr).save(tmp_path / part / c / f"{i}.png")
    assert build(tmp_path).train.images.shape[1:] == (1, 32, 32)
    assert build(tmp_path, channels="3").train.images.shape[1:] == (3, 32, 32)


def test_exponential_profile_auto_n_max(tmp_path):
    write_tree(tmp_path, TRAIN, test=1)
    s = build(tmp_path, imbalance_ratio=2, unlabeled_factor=1).split
    assert s.params["n_max"] == 3  # largest with floor(n_max 2^(-i/2)) * 2 <= [10, 6, 3]
    assert s.labeled_counts.tolist() == [3, 2, 1]
    assert s.unlabeled_counts.tolist() == [3, 2, 1]
    with pytest.raises(UsageError, match="class cow has 3 train images but the split needs"):
        build(tmp_path, imbalance_ratio=2)  # 1 labeled + 4 unlabeled > 3
    t = build(tmp_path, imbalance_ratio=2, unlabeled_factor=1, split_by="thresholds",
              many_above=2, few_at_most=1).split  # fmt: skip
    assert t.class_split.tolist() == [0, 1, 2]


def test_unlabeled_pool_unknown_labels(tmp_path):
    write_tree(tmp_path, TRAIN, test=1, unlabeled=5)
    data = build(tmp_path, imbalance_ratio=3)
    s = data.split
    assert s.unlabeled_idx.tolist() == [19, 20, 21, 22, 23]
    assert (s.unlabeled_y_hidden == -1).all() and s.unlabeled_counts.tolist() == [0, 0, 0]
    assert s.labeled_counts.tolist() == [10, 5, 3] and len(data.train) == 24
    assert s.summary()["unlabeled"] == 5
    assert build(tmp_path).split.labeled_counts.tolist() == [10, 6, 3]  # natural: all labeled


def test_cache_and_streamed_sources_agree(tmp_path, monkeypatch):
    write_tree(tmp_path, TRAIN, test=1)
    cached = build(tmp_path, image_size=12)

    def boom(*a, **k):
        raise AssertionError("decoded again despite the cache")

    with monkeypatch.context() as m:
        m.setattr(imagefolder, "_decode_all", boom)
        assert build(tmp_path, image_size=12).split.hash == cached.split.hash
    copy = tmp_path / "copy"
    for part in ("train", "test"):
        shutil.copytree(tmp_path / part, copy / part)
    assert build(copy, image_size=12).split.hash == cached.split.hash
    monkeypatch.setattr(imagefolder, "CACHE_LIMIT", 0)
    streamed = build(tmp_path, image_size=12, channels="3")
    assert type(streamed.train).__name__ == "FileSource"
    idx = np.concatenate([cached.split.labeled_idx, cached.split.unlabeled_idx])
    x = next(streamed.train.iter_batches([idx], torch.device("cpu")))
    assert torch.equal(x, cached.train.images[idx])  # same decode and resize either way


def test_errors_name_file_or_class(tmp_path):
    with pytest.raises(UsageError, match="needs --data-root DIR with DIR/train"):
        build(tmp_path / "none")
    write_tree(tmp_path, TRAIN, test=1)
    bad = tmp_path / "train" / "bee" / "zz.jpg"
    bad.write_bytes((tmp_path / "train" / "bee" / "001.jpg").read_bytes()[:60])
    with pytest.raises(UsageError, match="cannot read image .*bee/zz.jpg"):
        build(tmp_path)
    bad.unlink()
    (tmp_path / "test" / "emu").mkdir()
    (tmp_path / "test" / "emu" / "0.png").write_bytes(b"")
    with pytest.raises(UsageError, match="emu .* absent from train"):
        build(tmp_path)
    shutil.rmtree(tmp_path / "test" / "emu")
    (tmp_path / "train" / "dog").mkdir()
    with pytest.raises(UsageError, match="class folder .*dog has no images"):
        build(tmp_path)
    with pytest.raises(UsageError, match="split_by 'tails'; choose from"):
        build(tmp_path, split_by="tails")
    with pytest.raises(UsageError, match="channels '2'; choose from"):
        build(tmp_path, channels="2")
