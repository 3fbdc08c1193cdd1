"""The achieved imbalance ratio (n_max / n_min of the actual labeled counts) is shown."""

from sslt_bench.config import build_config
from sslt_bench.data.split import achieved_ratio
from sslt_bench.registry import DATASETS


def test_achieved_ratio_of_counts():
    assert achieved_ratio([833, 386, 179, 83, 38, 17, 8, 3, 1, 1]) == 833.0
    assert achieved_ratio([833, 499, 299, 179, 107, 64, 38, 23, 13, 8]) == 104.12
    assert achieved_ratio([5, 0]) is None  # an empty class: no finite ratio


def test_cifar10_sslt_ratio_1000_achieves_833(cli_run):
    _, out = cli_run(
        "splits",
        "show",
        "--dataset",
        "cifar10-sslt",
        "--counts-only",
        "--set",
        "imbalance_ratio=1000",
    )
    assert "max 833, min 1, achieved ratio 833.0" in out


def test_digits_split_summary_and_show(cli_run):
    builder = DATASETS.get("digits-sslt")
    split = builder.build(build_config(builder.Params, "paper"), 0, None).split
    info = split.summary()
    counts = info["labeled_counts"]
    assert info["achieved_ratio"] == round(max(counts) / min(counts), 2) == 14.0  # 28 / 2
    _, out = cli_run("splits", "show", "--dataset", "digits-sslt")
    assert "achieved ratio 14.0 (n_max / n_min of the actual counts; requested 10.0)" in out
