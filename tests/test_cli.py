"""The command line end to end on digits-sslt."""

import json

import pytest


def test_run_list_table(cli_run, tmp_path):
    out = tmp_path / "res"
    for seed in (0, 1):
        code, text = cli_run(
            "run", "--seed", seed, "--out", out, "--no-progress", "--set", "epochs=10"
        )
        assert "erm on digits-sslt" in text
        line = next(ln for ln in text.splitlines() if ln.startswith("overall"))
        overall = float(line.split()[1])
        assert overall > 50.0, text  # chance is 10%
    records = sorted((out / "records").glob("*.json"))
    assert len(records) == 2
    rec = json.loads(records[0].read_text())
    for key in (
        "method",
        "dataset",
        "profile",
        "seed",
        "split_hash",
        "metrics",
        "wall_time_s",
        "train_images_per_s",
        "device",
        "torch",
        "git",
        "data_params",
    ):
        assert key in rec, key
    assert set(rec["metrics"]) >= {"overall", "many", "medium", "few", "per_class"}

    code, text = cli_run("table", "--results", out)
    row = next(ln for ln in text.splitlines() if ln.startswith("erm"))
    assert text.startswith("digits-sslt") and "±" in row and " 2 " in row  # setting in the title

    code, text = cli_run("list", "methods")
    assert "erm" in text and "decoupling" in text
    code, text = cli_run("list", "datasets")
    assert "digits-sslt" in text
    code, text = cli_run("list", "models")
    assert "resnet32" in text and "small-cnn" in text


@pytest.mark.parametrize(
    "args, needle",
    [
        (("run", "--method", "nope"), "unknown method 'nope'; choose from:"),
        (("run", "--dataset", "nope"), "unknown data set 'nope'; choose from:"),
        (("run", "--profile", "fast"), "unknown profile 'fast'; choose from:"),
        (("run", "--set", "bogus=1"), "unknown setting 'bogus'"),
        (("run", "--set", "epochs=abc"), "bad value 'abc' for epochs"),
        (("run", "--device", "tpu"), "unknown device 'tpu'"),
    ],
)
def test_bad_input_exit_2_one_line(cli_run, tmp_path, args, needle):
    code, text = cli_run(*args, "--out", tmp_path, expect=2)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert needle in lines[0] and "Traceback" not in text
    if "choose from" in needle:
        assert "erm" in lines[0] or "digits-sslt" in lines[0] or "quick" in lines[0]


def test_table_without_records(cli_run, tmp_path):
    code, text = cli_run("table", "--results", tmp_path, expect=2)
    assert "no result records" in text


def test_splits_show_and_export(cli_run, tmp_path):
    code, text = cli_run("splits", "show", "--dataset", "digits-sslt")
    assert "hash" in text and "many 3, medium 3, few 4" in text
    f = tmp_path / "split.json"
    cli_run("splits", "export", "--dataset", "digits-sslt", "-o", f)
    obj = json.loads(f.read_text())
    assert len(obj["labeled_idx"]) == 109  # 28+21+16+12+10+7+6+4+3+2
    code, text = cli_run(
        "run", "--split-file", f, "--out", tmp_path / "r", "--no-progress", "--set", "epochs=2"
    )
    assert obj["hash"] in text


@pytest.mark.parametrize(("floor", "images"), [(0, 109), (6, 6 * 32)])
def test_min_steps_per_epoch_floor(cli_run, tmp_path, floor, images):
    """digits-sslt's floor cycles D (109 images, 4 batches of 32) up to ``floor`` batches."""
    out = tmp_path / "res"
    cli_run(
        "run", "--out", out, "--no-progress", "--set", "epochs=1",
        "--set", f"data.min_steps_per_epoch={floor}",
    )  # fmt: skip
    (path,) = (out / "records").glob("*.json")
    rec = json.loads(path.read_text())
    assert rec["data_params"]["min_steps_per_epoch"] == floor
    assert rec["train_images"] == images
