"""cifar10-sslt: pinned split hashes, counts, sources, cache, pool variant and errors."""

import pickle
import sys
import tarfile
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from sslt_bench.config import build_config
from sslt_bench.data.datasets import _cache, _cifar_sources
from sslt_bench.data.datasets.cifar10 import CLASSES, Cifar10Params, Cifar10SSLT, make_split
from sslt_bench.errors import UsageError

TRAIN_Y = np.repeat(np.arange(10), 5000)
TEST_Y = np.repeat(np.arange(10), 1000)

# Computed once from make_split; any change to the split logic must change these on purpose.
PINNED = {
    (100, 0): "f9d333a3310957a6",
    (100, 1): "db8f7e3b45a3b04e",
    (100, 2): "7cf2832070f52aab",
    (1000, 0): "7696bb30d30bdb6b",
    (1000, 1): "23b30f4ab7a03a46",
    (1000, 2): "64911a7f84060419",
}
COUNTS_100 = [833, 499, 299, 179, 107, 64, 38, 23, 13, 8]
COUNTS_1000 = [833, 386, 179, 83, 38, 17, 8, 3, 1, 1]


def params(**kw):
    return build_config(Cifar10Params, "paper", kw)


@pytest.mark.parametrize("ratio,seed", sorted(PINNED))
def test_pinned_split_hashes(ratio, seed):
    split = make_split(params(imbalance_ratio=ratio), seed, TRAIN_Y, TEST_Y)
    assert split.hash == PINNED[ratio, seed]


@pytest.mark.parametrize("ratio,counts", [(100, COUNTS_100), (1000, COUNTS_1000)])
def test_counts_and_disjoint(ratio, counts):
    split = make_split(params(imbalance_ratio=ratio), 0, TRAIN_Y, TEST_Y)
    assert split.labeled_counts.tolist() == counts
    assert split.unlabeled_counts.tolist() == [5 * n for n in counts]
    assert (TRAIN_Y[split.unlabeled_idx] == split.unlabeled_y_hidden).all()
    assert (TRAIN_Y[split.labeled_idx] == split.labeled_y).all()
    assert not set(split.labeled_idx) & set(split.unlabeled_idx)
    assert split.class_split.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert len(split.test_idx) == 10000 and split.params["n_max"] == 833
    other = make_split(params(imbalance_ratio=ratio), 1, TRAIN_Y, TEST_Y)
    assert not np.array_equal(split.labeled_idx, other.labeled_idx)


def test_planned_counts_match_split():
    p = params(imbalance_ratio=1000)
    info = Cifar10SSLT.planned_counts(p, 0)
    assert info["labeled_counts"] == COUNTS_1000
    assert info["unlabeled_counts"] == [5 * n for n in COUNTS_1000]
    assert info["split_sizes"] == {"many": 3, "medium": 3, "few": 4}


def test_pool_variant_split():
    pool_y = np.concatenate([np.repeat(np.arange(10), 30), -np.ones(5, dtype=int)])
    split = make_split(params(n_max=5, imbalance_ratio=5), 0, TRAIN_Y, TEST_Y, pool_y)
    assert (split.unlabeled_idx >= len(TRAIN_Y)).all()
    assert split.unlabeled_counts.tolist() == (5 * split.labeled_counts).tolist()
    assert (pool_y[split.unlabeled_idx - len(TRAIN_Y)] == split.unlabeled_y_hidden).all()


@pytest.mark.parametrize(
    "kw,msg",
    [
        ({"imbalance_ratio": 0.5}, "imbalance_ratio"),
        ({"n_max": 1000}, "exceeds the 5000"),
        ({"n_max": 6000}, "n_max must be"),
        ({"unlabeled_factor": -1}, "unlabeled_factor"),
        ({"unlabeled_source": "/nonexistent/pool.npz"}, "not a file"),
    ],
)
def test_bad_params(kw, msg):
    with pytest.raises(UsageError, match=msg):
        params(**kw)


def _tiny(rng, per_class):
    """Shuffled tiny CIFAR-like data: images [N, 3, 32, 32] and labels."""
    y = rng.permutation(np.repeat(np.arange(10), per_class))
    return rng.integers(0, 256, (len(y), 3, 32, 32), dtype=np.uint8), y


def _write_copies(root: Path, rng):
    """The same tiny data as official pickles, a PNG folder tree and a tarball of the tree."""
    from PIL import Image

    parts = {"train": _tiny(rng, 7), "test": _tiny(rng, 2)}
    pk = root / "pk" / "cifar-10-batches-py"
    pk.mkdir(parents=True)
    x, y = parts["train"]
    for i, chunk in enumerate(np.array_split(np.arange(len(y)), 5)):
        batch = {b"data": x[chunk].reshape(len(chunk), -1), b"labels": y[chunk].tolist()}
        (pk / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch))
    x, y = parts["test"]
    (pk / "test_batch").write_bytes(pickle.dumps({b"data": x.reshape(len(y), -1), b"labels": y}))
    for part, (x, y) in parts.items():
        for i, (img, c) in enumerate(zip(x, y, strict=True)):
            folder = root / "tree" / "cifar10" / part / CLASSES[c]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{i:04d}.png")
    (root / "tar").mkdir()
    with tarfile.open(root / "tar" / "cifar10-jpg.tar.gz", "w:gz") as tar:
        tar.add(root / "tree" / "cifar10", arcname="cifar10")
    return parts


def test_sources_agree_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLT_CACHE", str(tmp_path / "cache"))
    parts = _write_copies(tmp_path, np.random.default_rng(0))
    p = params(n_max=2, imbalance_ratio=2, unlabeled_factor=2)
    built = [Cifar10SSLT.build(p, 3, tmp_path / d) for d in ("pk", "tree", "tar")]
    assert len({b.split.hash for b in built}) == 1
    for b in built[1:]:  # PNG is lossless: every source yields the same class-major pixels
        assert torch.equal(b.train.images, built[0].train.images)
        assert torch.equal(b.test.images, built[0].test.images)
    x, y = parts["train"]
    order = np.argsort(y, kind="stable")
    assert torch.equal(built[0].train.images, torch.from_numpy(x[order]))
    assert built[0].split.labeled_counts.tolist() == [2, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    assert len(list((tmp_path / "cache").glob("cifar10-*.pt"))) == 3

    def boom(*a, **k):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(_cifar_sources, "_decode_parts", boom)
    again = Cifar10SSLT.build(p, 3, tmp_path / "tar")
    assert again.split.hash == built[0].split.hash


def test_pool_source_build(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLT_CACHE", str(tmp_path / "cache"))
    _write_copies(tmp_path, np.random.default_rng(1))
    rng = np.random.default_rng(2)
    pool_y = np.repeat(np.arange(10), 12)
    pool_x = rng.integers(0, 256, (120, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "pool.npz", images=pool_x, labels=pool_y)
    p = params(n_max=2, imbalance_ratio=2, unlabeled_source=str(tmp_path / "pool.npz"))
    data = Cifar10SSLT.build(p, 0, tmp_path / "tree")
    split = data.split
    assert len(data.train) == 70 + 120 and (split.unlabeled_idx >= 70).all()
    assert split.unlabeled_counts.tolist() == (5 * split.labeled_counts).tolist()
    i = split.unlabeled_idx[0]
    assert torch.equal(data.train.images[i], torch.from_numpy(pool_x[i - 70]).permute(2, 0, 1))
    assert params(unlabeled_source=str(tmp_path / "pool.npz")).effective_n_max == 5000
    with pytest.raises(UsageError, match="has 12 images of class airplane but U needs 15"):
        big = params(n_max=3, imbalance_ratio=2, unlabeled_source=str(tmp_path / "pool.npz"))
        Cifar10SSLT.build(big, 0, tmp_path / "tree")
    np.savez(tmp_path / "bad.npz", images=pool_x)
    with pytest.raises(UsageError, match="need 'images' and 'labels'"):
        Cifar10SSLT.build(params(unlabeled_source=str(tmp_path / "bad.npz")), 0, tmp_path / "tree")


def test_missing_data_and_download_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(UsageError, match=r"not found in .*nodata.*download=true"):
        Cifar10SSLT.build(params(), 0, tmp_path / "nodata")

    def offline(root, train, download):
        raise RuntimeError("<urlopen error [Errno -2] Name or service not known>")

    fake = types.ModuleType("torchvision.datasets")
    fake.CIFAR10 = offline
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake)
    with pytest.raises(UsageError, match="downloading CIFAR-10 into .* failed: <urlopen"):
        Cifar10SSLT.build(params(download=True), 0, tmp_path / "nodata")


def test_unreadable_image_named(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLT_CACHE", str(tmp_path / "cache"))
    _write_copies(tmp_path, np.random.default_rng(3))
    bad = tmp_path / "tree" / "cifar10" / "train" / "cat" / "9999.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(UsageError, match="cannot read image .*tree/cifar10/train/cat/9999.png"):
        Cifar10SSLT.build(params(n_max=2), 0, tmp_path / "tree")


TARBALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg.tar.gz"


@pytest.mark.slow
@pytest.mark.needs_shared("data/cifar10-jpg.tar.gz")
def test_real_cifar10_tarball():
    data = Cifar10SSLT.build(params(), 0, TARBALL.parent)
    assert data.train.images.shape == (50000, 3, 32, 32)
    assert data.test.images.shape == (10000, 3, 32, 32)
    assert data.split.hash == PINNED[100, 0]
    assert data.split.labeled_counts.tolist() == COUNTS_100
    assert np.bincount(data.split.test_y).tolist() == [1000] * 10
    assert 0.4 < data.mean[0] < 0.55 and 0.2 < data.std[2] < 0.3
    assert _cache.cache_path("cifar10-tar", _cache.file_digest(TARBALL)).exists()


def test_tarball_missing_class(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLT_CACHE", str(tmp_path / "cache"))
    _write_copies(tmp_path, np.random.default_rng(4))
    with tarfile.open(tmp_path / "partial.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "tree" / "cifar10" / "train" / "cat", arcname="cifar10/train/cat")
        tar.add(tmp_path / "tree" / "cifar10" / "test", arcname="cifar10/test")
    with pytest.raises(UsageError, match="no train/<class>/<image> files for class.*airplane"):
        Cifar10SSLT.build(params(n_max=2), 0, tmp_path / "partial.tar.gz")


def test_auto_n_max_follows_unlabeled_factor():
    assert params().effective_n_max == 833
    assert params(unlabeled_factor=4).effective_n_max == 1000
    assert params(n_max=100, unlabeled_factor=9).effective_n_max == 100
