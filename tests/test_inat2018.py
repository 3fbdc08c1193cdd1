"""inat2018-sslt on tiny synthetic annotation files and images made here."""

import json
import random

import pytest
import torch

from sslt_bench.data.datasets.inat2018 import INat2018SSLT, INatParams, write_inat_copy
from sslt_bench.errors import UsageError

# category -> (train images, val images); floor(n / 5) labeled: 100, 10, 1 (dropped), 9, 2
COUNTS = {3: (500, 2), 7: (50, 1), 5: (9, 1), 20: (49, 2), 11: (10, 1)}
PARAMS = INatParams(image_size=16)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    write_inat_copy(root / "inat2018", COUNTS, size=8)
    return root


def test_build_keeps_one_fifth_labeled_and_drops_tiny_classes(root):
    data = INat2018SSLT.build(PARAMS, 0, root)
    s = data.split
    assert s.class_names == ("species 3", "species 7", "species 11", "species 20")
    assert s.labeled_counts.tolist() == [100, 10, 2, 9]
    assert s.unlabeled_counts.tolist() == [400, 40, 8, 40]
    assert s.class_split.tolist() == [0, 1, 2, 2]  # many >= 100, medium 10..99, few 2..9
    assert len(data.train) == 500 + 50 + 10 + 49
    assert not set(s.labeled_idx) & set(s.unlabeled_idx)
    cats = [3, 7, 11, 20]
    for i, y in zip(s.labeled_idx, s.labeled_y, strict=True):
        assert data.train.paths[i].parent.parent.name == str(cats[y])
    assert s.test_y.tolist() == [0, 0, 1, 2, 3, 3]  # category 5's val image is left out
    assert [p.parent.parent.name for p in data.test.paths] == ["3", "3", "7", "11", "20", "20"]
    x = next(data.train.iter_batches([s.labeled_idx[:4]], torch.device("cpu")))
    assert x.dtype == torch.uint8 and x.shape == (4, 3, 18, 18)  # decoded at 16 * 256 / 224
    assert data.crop == "resized" and data.crop_size == 16
    assert INat2018SSLT.build(PARAMS, 0, root).split.hash == s.hash
    assert INat2018SSLT.build(PARAMS, 1, root).split.hash != s.hash
    assert s.hash == "88eefb8bc0e87bec"


def test_split_does_not_depend_on_the_order_of_the_json(root, tmp_path):
    folder = tmp_path / "inat2018"
    for name in ("train2018.json", "val2018.json"):
        obj = json.loads((root / "inat2018" / name).read_text())
        random.Random(0).shuffle(obj["images"])
        random.Random(1).shuffle(obj["annotations"])
        folder.mkdir(exist_ok=True)
        (folder / name).write_text(json.dumps(obj))
    (folder / "train_val2018").symlink_to(root / "inat2018" / "train_val2018")
    a = INat2018SSLT.build(PARAMS, 0, root).split
    assert INat2018SSLT.build(PARAMS, 0, tmp_path).split.hash == a.hash


def test_errors_name_the_file_or_class(root, tmp_path):
    with pytest.raises(UsageError, match="no --data-root or SSLT_DATA"):
        INat2018SSLT.build(PARAMS, 0, None)
    with pytest.raises(UsageError, match=f"looked for {tmp_path}/inat2018/train2018.json"):
        INat2018SSLT.build(PARAMS, 0, tmp_path)
    train = json.loads((root / "inat2018" / "train2018.json").read_text())
    (tmp_path / "train2018.json").write_text(json.dumps(train))
    with pytest.raises(UsageError, match="val2018.json not found"):
        INat2018SSLT.build(PARAMS, 0, tmp_path)
    (tmp_path / "val2018.json").write_text('{"images": []}')
    with pytest.raises(UsageError, match="cannot read .*val2018.json: KeyError"):
        INat2018SSLT.build(PARAMS, 0, tmp_path)
    val = {"images": [{"id": 1, "file_name": "x.jpg"}], "annotations": []}
    val["annotations"].append({"image_id": 1, "category_id": 99})
    (tmp_path / "val2018.json").write_text(json.dumps(val))
    with pytest.raises(UsageError, match=r"absent from train: \[99\]"):
        INat2018SSLT.build(PARAMS, 0, tmp_path)
    (tmp_path / "val2018.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(UsageError, match="train_val2018/Plantae/3/train/img000.JPEG named in"):
        INat2018SSLT.build(PARAMS, 0, tmp_path)
    with pytest.raises(UsageError, match="no category .* has 200 labeled"):
        INat2018SSLT.build(INatParams(min_labeled=200), 0, root)
    with pytest.raises(UsageError, match="few_below"):
        INatParams(few_below=100).validate()
