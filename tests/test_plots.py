"""Every plot command writes non-empty, deterministic PNG and SVG from a few hand-made records."""

import json

import pytest

from sslt_bench.errors import UsageError
from sslt_bench.results import plots

COUNTS = [40, 2, 25, 9, 3, 6, 15, 12, 30, 4]
SIZES = {"many": 3, "medium": 3, "few": 4}


def rec(method, seed, offset=0.0, with_pl=True, with_curve=True):
    acc = [min(100.0, 20.0 + 2 * n + offset + seed) for n in COUNTS]
    pl = [
        {
            "step": f"loop{i}",
            "overall": 80.0 + i,
            "many": 90.0,
            "medium": 60.0 + i,
            "few": 40.0 + 3 * i,
            "per_class": [50.0] * 10,
        }
        for i in range(3)
    ]
    epochs = [
        {"step": "train", "epoch": e, "loss": 1.0 / e}
        | (
            {"test": {"overall": 10.0 * e, "many": 12.0 * e, "medium": 9.0 * e, "few": 5.0 * e}}
            if with_curve and e % 2 == 0
            else {}
        )
        for e in range(1, 7)
    ]
    return {
        "kind": "sslt-bench-result",
        "status": "ok",
        "method": method,
        "dataset": "toy-sslt",
        "profile": "quick",
        "backbone": "small-cnn",
        "seed": seed,
        "split_hash": "1111222233334444",
        "config_hash": f"cfg-{method}",
        "data_params": {"imbalance_ratio": 20.0},
        "method_config": {},
        "metrics": {
            "overall": sum(acc) / 10,
            "many": 90.0,
            "medium": 70.0,
            "few": 40.0,
            "per_class": acc,
        },
        "split": {"labeled_counts": COUNTS, "split_sizes": SIZES},
        "history": {
            "epochs": epochs,
            "evals": [
                {"step": "final", "overall": 50.0, "many": 60.0, "medium": 50.0, "few": 40.0}
            ],
            "pseudo_labels": pl if with_pl else [],
        },
        "wall_time_s": 1.0,
        "train_images_per_s": 10.0,
        "device": "cpu",
        "git": "abc",
    }


@pytest.fixture
def results(tmp_path):
    folder = tmp_path / "res"
    folder.mkdir()
    recs = [rec("erm", s, with_pl=False) for s in range(2)] + [
        rec("alternate", s, offset=5.0) for s in range(2)
    ]
    for i, r in enumerate(recs):
        (folder / f"r{i}.json").write_text(json.dumps(r))
    return folder


@pytest.mark.parametrize("kind", plots.KINDS)
def test_plot_commands_write_png_and_svg(cli_run, results, tmp_path, kind):
    out = tmp_path / "plots" / kind
    _, text = cli_run("plot", kind, "--results", results, "--output", f"{out}.png")
    png, svg = out.with_suffix(".png"), out.with_suffix(".svg")
    assert f"wrote {png}" in text and f"wrote {svg}" in text
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000
    assert b"<svg" in svg.read_bytes()
    assert b"<dc:date>" not in svg.read_bytes()


def test_rendering_twice_gives_identical_bytes(results, tmp_path):
    from sslt_bench.results.records import load_records

    recs = load_records([results])
    a = plots.make("pseudo-labels", recs, None, str(tmp_path / "a"))
    b = plots.make("pseudo-labels", list(reversed(recs)), None, str(tmp_path / "b.svg"))
    assert [p.name for p in b] == ["b.png", "b.svg"]
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes()


def test_per_class_means_over_seeds_per_count():
    recs = [rec("erm", 0), rec("erm", 1)]
    fig, dataset = plots.figure("per-class", recs)
    (ax,) = fig.axes
    (line,) = ax.lines
    xs, ys = line.get_data()
    assert list(xs) == sorted(COUNTS)
    assert ys[0] == pytest.approx(20.0 + 2 * 2 + 0.5)  # class with 2 labels, seeds 0 and 1
    assert dataset == "toy-sslt" and ax.get_xscale() == "log"
    assert len(ax.patches) == 3  # many, medium, few bands


def test_pseudo_labels_only_methods_that_record_them():
    recs = [rec("erm", 0, with_pl=False), rec("alternate", 0)]
    fig, _ = plots.figure("pseudo-labels", recs)
    assert len(fig.axes) == 4
    assert [ln.get_label() for ln in fig.axes[3].lines] == ["alternate"]
    assert list(fig.axes[3].lines[0].get_ydata()) == [40.0, 43.0, 46.0]
    with pytest.raises(UsageError, match="pseudo-label"):
        plots.figure("pseudo-labels", [rec("erm", 0, with_pl=False)])


def test_curves_use_epoch_tests_then_evals():
    fig, _ = plots.figure("curves", [rec("erm", 0)])
    assert list(fig.axes[0].lines[0].get_xdata()) == [2, 4, 6]
    fig, _ = plots.figure("curves", [rec("erm", 0, with_curve=False)])
    assert list(fig.axes[0].lines[0].get_ydata()) == [50.0]


def test_plot_needs_one_dataset(cli_run, results, tmp_path):
    other = dict(rec("erm", 0), dataset="other-sslt")
    (results / "other.json").write_text(json.dumps(other))
    _, text = cli_run("plot", "per-class", "--results", results, expect=2)
    assert "choose one with --dataset" in text
    _, text = cli_run("plot", "per-class", "--results", results, "--dataset", "nope", expect=2)
    assert "unknown data set (with finished runs) 'nope'" in text


def test_leaderboard_script_is_byte_reproducible(results, tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "render_leaderboards.py"
    spec = importlib.util.spec_from_file_location("render_leaderboards", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "PLOTS", {"per-class": "Per-class"})  # keep the test fast
    a, b = mod.render_all(results), mod.render_all(results)
    assert a == b
    assert set(a) == {
        "README.md",
        "results.csv",
        "toy-sslt.md",
        "plots/toy-sslt-per-class.png",
        "plots/toy-sslt-per-class.svg",
    }
    page = a["toy-sslt.md"].decode()
    assert "![toy-sslt per-class](plots/toy-sslt-per-class.png)" in page
    assert "**toy-sslt (imbalance_ratio=20) · profile quick · small-cnn · split 11112222**" in page
    assert "| alternate | 2 | **" in page  # the compact block: alternate first, best in bold


def test_method_style_fixed_distinct_and_deterministic():
    from sslt_bench.registry import METHODS
    from sslt_bench.results.plot_style import FIXED

    new = ["zz-plugin-a", "zz-plugin-b", "zz-future"]  # methods of plug-ins, not built in
    for n in new:
        METHODS.register(n)(type(n, (), {}))
    try:
        styles = {n: plots.method_style(n) for n in METHODS.names()}
    finally:
        for n in new:
            METHODS.unregister(n)
    pairs = [(s["color"], s["marker"]) for s in styles.values()]
    assert len(set(pairs)) == len(pairs)  # every method looks different
    assert set(FIXED) <= set(styles)  # every built-in method has its fixed pair
    assert plots.method_style("alternate") == {"color": "#332288", "marker": "o"}
    assert plots.method_style("zz-future") == plots.method_style("zz-future")


def test_methods_sharing_the_cifar10_lt_board_have_distinct_colours():
    from sslt_bench.results.plot_style import FIXED

    board = ["alternate", "decoupling", "erm", "fixmatch", "ldam-drw", "acr", "simpro"]
    board += [m for m in FIXED if m.startswith("fixmatch+")]
    colours = [plots.method_style(m)["color"] for m in board]
    assert len(board) == 13 and len(set(colours)) == len(colours)


def test_legend_outside_labels_by_method_setting_in_title():
    recs = [rec("erm", 0), rec("alternate", 0)]
    recs.append(dict(rec("erm", 0), data_params={"imbalance_ratio": 50.0}, split_hash="5" * 16))
    for kind in ("per-class", "per-class-bars", "pseudo-labels", "curves"):
        fig, _ = plots.figure(kind, recs)
        axes = fig.axes
        assert all(ax.get_legend() is None for ax in axes), kind  # no legend box on the curves
        (leg,) = fig.legends
        labels = [t.get_text() for t in leg.get_texts()]
        assert set(labels) <= {"erm", "alternate"} and "erm" in labels, (kind, labels)
    fig, _ = plots.figure("per-class", recs)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "toy-sslt (imbalance_ratio=20)\nprofile quick · small-cnn · split 11112222",
        "toy-sslt (imbalance_ratio=50)\nprofile quick · small-cnn · split 55555555",
    ]
    colors = {ln.get_label(): ln.get_color() for ax in fig.axes for ln in ax.lines}
    assert colors == {n: plots.method_style(n)["color"] for n in ("alternate", "erm")}


def test_per_class_bars_side_by_side_per_count():
    recs = [rec("erm", 0), rec("erm", 1), rec("alternate", 0, offset=5.0)]
    fig, _ = plots.figure("per-class-bars", recs)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and len([p for p in ax.patches if p.get_label()]) >= 0
    bars = [p for c in ax.containers for p in c]
    assert len(bars) == 2 * len(set(COUNTS))  # one bar per method and labeled count
    by_method = [list(c) for c in ax.containers]  # alternate first (method order), then erm
    for a, e in zip(by_method[0], by_method[1], strict=True):
        assert a.get_x() + a.get_width() <= e.get_x() * 1.000001  # side by side, not stacked
        centre = (a.get_x() * (e.get_x() + e.get_width())) ** 0.5
        assert any(abs(centre / n - 1) < 0.05 for n in COUNTS)  # the group sits at its count
    two = sorted(COUNTS).index(2)
    assert by_method[1][two].get_height() == pytest.approx(20.0 + 2 * 2 + 0.5)  # mean of seeds
    assert by_method[0][two].get_height() == pytest.approx(20.0 + 2 * 2 + 5.0)
    assert len([p for p in ax.patches if p not in bars]) == 3  # many, medium, few bands


def test_configurations_of_one_method_look_apart_and_long_legends_go_below():
    def variant(value):
        r = rec("alternate", 0, offset=value)
        return r | {
            "config_hash": f"cfg-{value}",
            "method_config": {"loops": value},
            "overrides": [f"loops={value}"],
        }

    recs = [rec("erm", 0), rec("alternate", 0)] + [variant(v) for v in (2, 3, 4)]
    fig, _ = plots.figure("per-class", recs)
    styles = {ln.get_label(): (ln.get_color(), ln.get_linestyle()) for ln in fig.axes[0].lines}
    alternates = {k: v for k, v in styles.items() if k.startswith("alternate")}
    assert len(alternates) == 4 and len(set(alternates.values())) == 4  # all told apart
    assert {c for c, _ in alternates.values()} == {plots.method_style("alternate")["color"]}
    assert styles["alternate [no --set]"][1] == "-"  # the plain method keeps the solid line
    fig, _ = plots.figure("per-class-bars", recs)
    hatches = {c.get_label(): c.patches[0].get_hatch() for c in fig.axes[0].containers}
    assert (
        hatches["alternate [no --set]"] is None and len(set(hatches.values())) == 5 - 1
    )  # erm: none
    (leg,) = fig.legends
    fig.draw_without_rendering()  # the constrained layout places the legend
    assert leg.get_window_extent().x0 >= fig.axes[0].get_window_extent().x1  # short: beside
    recs += [variant(v) for v in range(5, 12)]  # 12 entries: below the axes, grouped by method
    fig, _ = plots.figure("per-class", recs)
    (leg,) = fig.legends
    labels = [t.get_text() for t in leg.get_texts()]
    assert len(labels) == 12 and labels == sorted(labels)
    fig.draw_without_rendering()
    box, axes_box = leg.get_window_extent(), fig.axes[0].get_window_extent()
    assert box.y1 <= axes_box.y0  # below the axes, clear of the figure title


def test_leaderboard_page_lists_the_heads_kept_but_not_scored():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "render_leaderboards.py"
    spec = importlib.util.spec_from_file_location("render_leaderboards", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    acr = dict(rec("acr", 0), other_heads={"random": {"overall": 35.0, "many": 82.2}})
    text = mod.other_heads_markdown([rec("erm", 0), acr])
    assert text.startswith("## Heads kept but not scored")
    (row,) = [ln for ln in text.splitlines() if ln.startswith("| acr")]
    assert "| random | 35.0 | 82.2 | - | - |" in row
    assert mod.other_heads_markdown([rec("erm", 0)]) == ""
