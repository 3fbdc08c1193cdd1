"""imagenet-sslt: the published count statistics (no images) and a build on a synthetic tree."""

import hashlib

import numpy as np
import pytest
import torch

from sslt_bench.config import check_config
from sslt_bench.data.datasets.imagenet import (
    ImageNetParams,
    ImageNetSSLT,
    assign_counts,
    lomax_counts,
    write_tiny_jpegs,
)
from sslt_bench.data.split import splits_by_threshold
from sslt_bench.errors import UsageError


def test_lomax_counts_reproduce_the_published_statistics():
    n = lomax_counts(1000, 250, 6.0, 1000.0)
    assert len(n) == 1000 and n.sum() == 41134
    assert n.max() == 250 and n.min() == 2 and np.all(np.diff(n) <= 0)
    sizes = np.bincount(splits_by_threshold(n, 100, 10), minlength=3).tolist()
    assert sizes == [140, 433, 427]
    assert n[:5].tolist() == [250, 248, 247, 245, 243] and n[-3:].tolist() == [2, 2, 2]
    digest = hashlib.sha256(n.astype("<i8").tobytes()).hexdigest()[:16]
    assert digest == "b7afa2f3434a1b58"


def test_splits_show_counts_only_prints_the_published_statistics(cli_run):
    _, out = cli_run("splits", "show", "--dataset", "imagenet-sslt", "--counts-only")
    assert "1000 classes, 41134 labeled, 164536 unlabeled" in out
    assert "max 250, min 2" in out and "many 140, medium 433, few 427" in out
    cli_run("splits", "show", "--dataset", "digits-sslt", "--counts-only", expect=2)


def test_assign_counts_is_a_permutation_when_every_class_is_large_enough():
    by_rank = np.array([5, 3, 2, 1])
    out = assign_counts(by_rank, np.full(4, 100), 4, np.random.default_rng(0))
    perm = np.random.default_rng(0).permutation(4)
    assert out[perm].tolist() == by_rank.tolist()


def test_assign_counts_gives_large_counts_to_classes_with_enough_images():
    by_rank = np.array([5, 3, 2, 1])
    sizes = np.array([10, 25, 15, 40])
    for seed in range(5):
        out = assign_counts(by_rank, sizes, 4, np.random.default_rng(seed))
        assert sorted(out.tolist()) == [1, 2, 3, 5] and np.all(sizes >= 5 * out)
    with pytest.raises(UsageError, match="no class left with 25"):
        assign_counts(by_rank, np.array([10, 20, 15, 20]), 4, np.random.default_rng(0))


SIZES = {"n01": 20, "n02": 6, "n03": 8, "n04": 5, "n05": 5}
PARAMS = ImageNetParams(num_classes=5, n_max=4, lomax_scale=5.0, image_size=16)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for k, (wnid, count) in enumerate(SIZES.items()):
        write_tiny_jpegs(root / "imagenet" / "train" / wnid, count, seed=k, size=8)
        write_tiny_jpegs(root / "imagenet" / "val" / wnid, 2 + k % 2, seed=50 + k, size=8)
    return root


def test_build_on_a_synthetic_tree(tree):
    data = ImageNetSSLT.build(PARAMS, 0, tree)
    s = data.split
    assert s.class_names == tuple(SIZES)
    assert lomax_counts(5, 4, 6.0, 5.0).tolist() == [4, 1, 1, 1, 1]
    assert s.labeled_counts.tolist() == [4, 1, 1, 1, 1]  # only n01 has 5 * 4 images
    assert s.unlabeled_counts.tolist() == (4 * s.labeled_counts).tolist()
    assert not set(s.labeled_idx) & set(s.unlabeled_idx)
    assert s.split_sizes == {"many": 0, "medium": 0, "few": 5}
    paths = data.train.paths
    for i, y in zip(s.labeled_idx, s.labeled_y, strict=True):
        assert paths[i].parent.name == s.class_names[y]
    assert len(s.test_idx) == 12 and s.test_y.tolist() == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4]
    x = next(data.test.iter_batches([s.test_idx[:3]], torch.device("cpu")))
    assert x.dtype == torch.uint8 and x.shape == (3, 3, 18, 18)  # decoded at 16 * 256 / 224
    assert data.mean == (0.485, 0.456, 0.406) and (data.crop, data.crop_size) == ("resized", 16)
    old = ImageNetSSLT.build(ImageNetParams(**{**vars(PARAMS), "augment": "pad-crop"}), 0, tree)
    assert old.split.hash == s.hash and old.crop == "pad" and old.crop_padding == 2
    x = next(old.test.iter_batches([s.test_idx[:3]], torch.device("cpu")))
    assert x.shape == (3, 3, 16, 16)
    again = ImageNetSSLT.build(PARAMS, 0, tree).split
    other = ImageNetSSLT.build(PARAMS, 1, tree).split
    assert again.hash == s.hash != other.hash
    assert s.hash == "36826063868e2143"


def test_build_errors_name_where_it_looked(tree, tmp_path):
    with pytest.raises(UsageError, match="no --data-root or SSLT_DATA"):
        ImageNetSSLT.build(PARAMS, 0, None)
    with pytest.raises(UsageError, match=f"looked for {tmp_path}/imagenet/train"):
        ImageNetSSLT.build(PARAMS, 0, tmp_path)
    with pytest.raises(UsageError, match="found 5 class folders.*num_classes=5"):
        ImageNetSSLT.build(ImageNetParams(), 0, tree)
    with pytest.raises(UsageError, match="no class left with 10 train images"):
        ImageNetSSLT.build(ImageNetParams(num_classes=5, n_max=2), 0, tree)
    with pytest.raises(UsageError, match="n_max must be >= 1, got 0"):
        check_config(ImageNetParams(n_max=0))  # ranges: field metadata, one generic check


# -- the authors' released split lists ---------------------------------------------------------
def _write_lists(folder, tree_base, train, ext, test):
    folder.mkdir(parents=True, exist_ok=True)
    for part, rows in (("train", train), ("ext", ext), ("test", test)):
        text = "".join(f"{rel} {y}\n" for rel, y in rows)
        (folder / f"ImageNet_SSLT_{part}.txt").write_text(text)


def test_released_lists_build_their_split(tree, tmp_path):
    from sslt_bench.data.datasets.imagenet import ImageNetParams as P

    # their labels: n03 -> 0, n01 -> 1, ... (not wnid order); D counts 3, 2, 1, 1, 1
    order = ["n03", "n01", "n02", "n04", "n05"]
    d_counts = [3, 2, 1, 1, 1]
    train, ext, test = [], [], []
    for y, (wnid, n) in enumerate(zip(order, d_counts, strict=True)):
        train += [(f"train/{wnid}/img{k:03d}.JPEG", y) for k in range(n)]
        ext += [(f"train/{wnid}/img{k:03d}.JPEG", y) for k in range(n, n + 2)]
        test += [(f"val/{wnid}/img000.JPEG", y)]
    _write_lists(tmp_path / "lists", tree, train, ext, test)
    params = P(
        num_classes=5, image_size=16, split_source="released", split_lists=str(tmp_path / "lists")
    )
    data = ImageNetSSLT.build(params, 0, tree)
    s = data.split
    assert s.class_names == tuple(order)
    assert s.labeled_counts.tolist() == d_counts and s.unlabeled_counts.tolist() == [2] * 5
    base = tree / "imagenet"
    got = [
        (data.train.paths[i].relative_to(base).as_posix(), int(y))
        for i, y in zip(s.labeled_idx, s.labeled_y, strict=True)
    ]
    assert got == train
    got = [
        (data.test.paths[i].relative_to(base).as_posix(), int(y))
        for i, y in zip(s.test_idx, s.test_y, strict=True)
    ]
    assert got == test
    for i, y in zip(s.unlabeled_idx, s.unlabeled_y_hidden, strict=True):
        assert data.train.paths[i].parent.name == s.class_names[y]


def test_released_list_errors_name_file_and_line(tree, tmp_path):
    from sslt_bench.data.datasets._released_lists import read_split_list
    from sslt_bench.data.datasets.imagenet import ImageNetParams as P

    bad = tmp_path / "bad.txt"
    bad.write_text("train/n01/img000.JPEG 0\n\ntrain/n01/img001.JPEG x\n")
    with pytest.raises(UsageError, match=r"bad.txt:3: expected"):
        read_split_list(bad)
    bad.write_text("a/b.JPEG 0\na/b.JPEG 0\n")
    with pytest.raises(UsageError, match=r"bad.txt:2: a/b.JPEG is listed twice"):
        read_split_list(bad)
    with pytest.raises(UsageError, match="not found; the authors' lists are at"):
        read_split_list(tmp_path / "none.txt")
    rows = [(f"train/{w}/img000.JPEG", y) for y, w in enumerate(SIZES)]
    _write_lists(tmp_path / "l", tree, rows, [("train/n01/img999.JPEG", 0)], rows)
    params = P(
        num_classes=5, image_size=16, split_source="released", split_lists=str(tmp_path / "l")
    )
    with pytest.raises(UsageError, match="ext list names train/n01/img999.JPEG, not found"):
        ImageNetSSLT.build(params, 0, tree)
    _write_lists(
        tmp_path / "m",
        tree,
        [("train/n01/img000.JPEG", 0), ("train/n02/img000.JPEG", 0)],
        [("train/n01/img005.JPEG", 0)],
        rows,
    )
    params = P(
        num_classes=5, image_size=16, split_source="released", split_lists=str(tmp_path / "m")
    )
    with pytest.raises(UsageError, match="label 0 names two folders"):
        ImageNetSSLT.build(params, 0, tree)
