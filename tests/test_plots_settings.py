"""The settings plot: a row per method configuration, a marker per data set setting."""

import matplotlib
import pytest
from test_table import rec

from sslt_bench.config import method_config, to_dict
from sslt_bench.registry import DATASETS, METHODS
from sslt_bench.results import plots
from sslt_bench.results.plots_settings import setting_names

matplotlib.use("Agg")


def fixmatch(ratio: float, overall: float, overrides=(), few: float = 1.0) -> dict:
    """A fixmatch record on cifar10-sslt at ``ratio`` with its config as the runner makes it."""
    user = dict(o.split("=", 1) for o in overrides)
    hints = DATASETS.get("cifar10-sslt").hints["quick"]
    cfg = to_dict(method_config(METHODS.get("fixmatch").Config, "quick", hints, user))
    return rec(
        "fixmatch",
        overall=overall,
        few=few,
        method_config=cfg,
        overrides=list(overrides),
        config_hash=f"{ratio}-{'-'.join(overrides)}",
        split_hash=f"{int(ratio):016d}",
        data_params={"imbalance_ratio": ratio, "n_max": None},
    )


def markers(ax) -> dict[str, list[tuple[float, float]]]:
    """``{setting name: [(x, y) of each marker]}`` of one panel."""
    return {c.get_label(): [tuple(p) for p in c.get_offsets()] for c in ax.collections}


def test_one_row_per_configuration_across_settings():
    default = 21  # fixmatch's quick epochs: `--set epochs=21` is the default configuration
    recs = [
        fixmatch(100.0, 40.0, overrides=[f"epochs={default}"]),
        fixmatch(100.0, 33.0, overrides=["epochs=5"]),
        fixmatch(1000.0, 30.0),
    ]
    assert METHODS.get("fixmatch").Config.PROFILES["quick"]["epochs"] == default
    fig, _ = plots.figure("settings", recs)
    overall = fig.axes[0]
    rows = [t.get_text() for t in overall.get_yticklabels()]
    assert rows == ["fixmatch [epochs=5]", "fixmatch"]  # best mean overall on top (last)
    got = markers(overall)
    assert [n.split("=")[-1] for n in sorted(got)] == ["100)", "1000)"]
    by_ratio = {n.split("=")[-1].rstrip(")"): pts for n, pts in got.items()}
    assert sorted(x for x, _ in by_ratio["100"]) == [33.0, 40.0]
    assert [x for x, _ in by_ratio["1000"]] == [30.0]
    joined_y = {round(y) for x, y in by_ratio["100"] if x == 40.0}
    assert joined_y == {round(by_ratio["1000"][0][1])} == {1}
    segments = [line.get_xdata().tolist() for line in overall.lines]
    assert segments == [[30.0, 40.0]]  # one segment: the joined row; the other has one marker


def test_equal_values_stay_visible_and_panels_show_each_metric():
    recs = [fixmatch(100.0, 30.0, few=7.0), fixmatch(1000.0, 30.0, few=3.0)]
    fig, _ = plots.figure("settings", recs)
    overall, few = fig.axes[0], fig.axes[3]
    ys = sorted(y for pts in markers(overall).values() for _, y in pts)
    assert len(ys) == 2 and ys[0] < ys[1]  # same value, set a little apart
    assert overall.lines[0].get_xdata().tolist() == [30.0, 30.0]
    assert sorted(x for pts in markers(few).values() for x, _ in pts) == [3.0, 7.0]
    assert [ax.get_title() for ax in fig.axes[:4]] == ["overall", "many", "medium", "few"]


@pytest.mark.parametrize(
    ("titles", "names"),
    [
        (
            [
                "d (u=consistent) · profile quick · r20 · split aa",
                "d (u=reversed) · profile quick · r20 · split bb",
            ],
            ["d (u=consistent)", "d (u=reversed)"],
        ),
        (
            ["d · profile quick · r20 · split aa", "d · profile paper · r32 · split aa"],
            ["profile quick · r20", "profile paper · r32"],
        ),
        (["d · profile quick · r20 · split aa"], ["d · profile quick · r20 · split aa"]),
    ],
)
def test_setting_names_keep_what_differs(titles, names):
    from sslt_bench.results.layout import Block

    assert setting_names([Block(t, ("d", str(i)), []) for i, t in enumerate(titles)]) == names
