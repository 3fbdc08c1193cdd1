"""Bad input: exit code 2 and one line naming the bad value and what would be valid.

One parametrised table of cases, each run through the real CLI entry point (``cli_run``);
none of them may train. ``--debug`` shows the traceback instead.
"""

import json
import shutil
from pathlib import Path

import pytest


def _imagefolder(t: Path) -> Path:
    """A tiny valid imagefolder tree (4 classes) written by the data set's own helper."""
    from sslt_bench.data.datasets.imagefolder import write_tree

    root = t / "data"
    write_tree(root, {"a": 9, "b": 7, "c": 5, "d": 4}, test=2, unlabeled=6)
    return root


IF_SET = ["--set", "image_size=16", "--set", "imbalance_ratio=4"]


def _if_args(root: Path) -> list[str]:
    return ["--dataset", "imagefolder", "--data-root", str(root), *IF_SET]


def _missing_root(t, cli_run):
    _imagefolder(t)
    return _if_args(t / "nope"), [str(t / "nope"), "DIR/train/<class>"]


def _empty_root(t, cli_run):
    _imagefolder(t)
    (t / "empty").mkdir()
    return _if_args(t / "empty"), [str(t / "empty"), "DIR/train/<class>"]


def _no_class_folders(t, cli_run):
    _imagefolder(t)
    (t / "bare" / "train").mkdir(parents=True)
    return _if_args(t / "bare"), [str(t / "bare" / "train"), "no class sub-folders"]


def _class_without_images(t, cli_run):
    root = _imagefolder(t)
    shutil.rmtree(root / "train" / "c")
    (root / "train" / "c").mkdir()
    (root / "train" / "c" / "notes.txt").write_text("not an image")
    return _if_args(root), [str(root / "train" / "c"), "has no images"]


def _unreadable_image(t, cli_run):
    root = _imagefolder(t)
    bad = root / "train" / "b" / "001.jpg"
    bad.write_bytes(b"this is not a JPEG at all" * 10)
    return _if_args(root), ["cannot read image", str(bad)]


def _truncated_image(t, cli_run):
    root = _imagefolder(t)
    bad = root / "train" / "a" / "002.png"
    bad.write_bytes(bad.read_bytes()[:120])  # e.g. a copy that was cut off
    return _if_args(root), ["cannot read image", str(bad)]


def _test_class_not_in_train(t, cli_run):
    root = _imagefolder(t)
    shutil.copytree(root / "test" / "a", root / "test" / "zebra")
    return _if_args(root), ["zebra", "absent from train", "valid classes: a, b, c, d"]


def _export(cli_run, t: Path, *args: str) -> Path:
    f = t / f"split{len(list(t.glob('split*.json')))}.json"
    cli_run("splits", "export", *args, "-o", str(f))
    return f


def _split_edited(t, cli_run):
    f = _export(cli_run, t)
    obj = json.loads(f.read_text())
    obj["labeled_y"][0] = (obj["labeled_y"][0] + 1) % 10
    f.write_text(json.dumps(obj))
    return ["--split-file", str(f)], [str(f), "hash", "does not match its content"]


def _split_data_changed(t, cli_run):
    # consistent file (no stored hash), but its labels disagree with the images on disk
    f = _export(cli_run, t)
    obj = json.loads(f.read_text())
    obj["labeled_y"][0] = (obj["labeled_y"][0] + 1) % 10
    del obj["hash"]
    f.write_text(json.dumps(obj))
    item = obj["labeled_idx"][0]
    return ["--split-file", str(f)], [str(f), f"train item {item} has label", "splits export"]


def _split_other_dataset(t, cli_run):
    root = _imagefolder(t)
    f = _export(cli_run, t, "--dataset", "imagefolder", "--data-root", str(root), *IF_SET)
    return ["--split-file", str(f)], [str(f), "'imagefolder'", "'digits-sslt'"]


def _split_other_classes(t, cli_run):
    root = _imagefolder(t)
    f = _export(cli_run, t, "--dataset", "imagefolder", "--data-root", str(root), *IF_SET)
    shutil.rmtree(root / "train" / "d")
    shutil.rmtree(root / "test" / "d")
    return _if_args(root) + ["--split-file", str(f)], [str(f), "4 classes", "differ", "3"]


def _split_missing(t, cli_run):
    return ["--split-file", str(t / "none.json")], ["cannot read split file", "none.json"]


def _out_under_a_file(t, cli_run):
    (t / "plain-file").write_text("x")  # works as root too, unlike chmod
    out = t / "plain-file" / "results"
    return ["--out", str(out)], [str(out), "not writable", "--out"]


CASES = {
    "unknown method": (["--method", "nope"], ["'nope'", "choose from", "erm", "decoupling"]),
    "unknown data set": (["--dataset", "nope"], ["'nope'", "choose from", "digits-sslt"]),
    "unknown backbone": (["--set", "backbone=nope"], ["'nope'", "choose from", "small-cnn"]),
    "unknown profile": (["--profile", "nope"], ["'nope'", "choose from", "quick", "paper"]),
    "unknown --set key": (["--set", "nope=1"], ["'nope'", "valid keys", "epochs", "lr"]),
    "--set without =": (["--set", "epochs"], ["'epochs'", "key=value"]),
    "ill-typed --set int": (["--set", "epochs=ten"], ["'ten'", "epochs", "int"]),
    "ill-typed --set float": (["--set", "lr=fast"], ["'fast'", "lr", "float"]),
    "imbalance ratio < 1": (
        ["--set", "imbalance_ratio=0.5"],
        ["imbalance_ratio", "0.5", ">= 1"],
    ),
    "unlabeled factor < 0": (
        ["--set", "unlabeled_factor=-1"],
        ["unlabeled_factor", "-1", ">= 0"],
    ),
    "seed < 0": (["--seed", "-1"], ["seed", "-1", "[0, 2**31)"]),
    "seed >= 2**31": (["--seed", str(2**31)], ["seed", str(2**31), "[0, 2**31)"]),
    "split seed < 0": (["--split-seed", "-3"], ["split seed", "-3", "[0, 2**31)"]),
    "results folder not writable": _out_under_a_file,
    "data root missing": _missing_root,
    "data root empty": _empty_root,
    "train folder without classes": _no_class_folders,
    "class folder without images": _class_without_images,
    "unreadable image": _unreadable_image,
    "truncated image": _truncated_image,
    "test class absent from train": _test_class_not_in_train,
    "split file edited": _split_edited,
    "split file vs changed data": _split_data_changed,
    "split file of another data set": _split_other_dataset,
    "split file with other classes": _split_other_classes,
    "split file missing": _split_missing,
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exit_2_one_line(case, cli_run, tmp_path):
    spec = CASES[case]
    if callable(spec):
        spec = spec(tmp_path, cli_run)
    args, needles = spec
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "out")]
    code, text = cli_run("run", "--device", "cpu", "--no-progress", *args, expect=2)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in text, text
    assert lines[0].startswith("error: "), text
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert not list((tmp_path / "out").glob("records/*.json"))  # nothing ran


def test_debug_shows_traceback(cli_run, tmp_path):
    code, text = cli_run("--debug", "run", "--method", "nope", "--out", tmp_path, expect=2)
    assert "Traceback (most recent call last)" in text and "UsageError" in text
    assert "error: unknown method 'nope'" in text


def test_cifar10_missing_root_names_path(cli_run, tmp_path):
    code, text = cli_run(
        "run",
        "--dataset",
        "cifar10-sslt",
        "--data-root",
        tmp_path / "nope",
        "--out",
        tmp_path / "out",
        "--no-progress",
        expect=2,
    )
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(tmp_path / "nope") in lines[0], text
