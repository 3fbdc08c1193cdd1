"""Leaderboard tables on small hand-made records: aggregation, formats, quoted paper rows."""

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sslt_bench.errors import UsageError
from sslt_bench.results import paper
from sslt_bench.results.render import render
from sslt_bench.results.render_doc import latex
from sslt_bench.results.table import aggregate, build_board, filter_records

PAPER_TXT = Path(__file__).resolve().parents[2] / "shared" / "paper" / "alternate-sampling-sslt.txt"


def rec(method="erm", seed=0, overall=70.0, many=90.0, medium=60.0, few=50.0, **kw):
    base = {
        "kind": "sslt-bench-result",
        "version": 1,
        "status": "ok",
        "method": method,
        "dataset": "cifar10-sslt",
        "profile": "quick",
        "backbone": "resnet32",
        "seed": seed,
        "split_seed": 0,
        "split_hash": "abcd1234abcd1234",
        "config_hash": "cfg0",
        "data_params": {"imbalance_ratio": 100.0, "n_max": None},
        "method_config": {"lr": 0.1},
        "metrics": {
            "overall": overall,
            "many": many,
            "medium": medium,
            "few": few,
            "per_class": [overall] * 10,
        },
        "history": {"epochs": [], "evals": [], "pseudo_labels": []},
        "wall_time_s": 10.0 + seed,
        "train_images_per_s": 100.0,
        "device": "cpu",
        "device_name": "x86_64",
        "git": "0123456789ab",
        "_path": f"/r/{method}-{seed}.json",
    }
    base.update(kw)
    return base


def three_seeds(method="erm", **kw):
    return [rec(method, s, overall=70.0 + 2 * s, few=50.0 - s, **kw) for s in range(3)]


def test_mean_std_over_seeds():
    (row,) = aggregate(three_seeds())
    assert row["n"] == 3 and row["seeds"] == [0, 1, 2]
    assert row["overall"] == pytest.approx(72.0) and row["overall_std"] == pytest.approx(2.0)
    assert row["few"] == pytest.approx(49.0) and row["few_std"] == pytest.approx(1.0)
    assert row["many_std"] == 0.0 and row["wall_time_s"] == pytest.approx(11.0)
    text = render("terminal", build_board(three_seeds()), three_seeds())
    assert text.startswith(
        "cifar10-sslt (imbalance_ratio=100) · profile quick · resnet32 · split abcd1234\n"
    )
    line = next(ln for ln in text.splitlines() if ln.startswith("erm"))
    assert "72.0 ± 2.0" in line and "49.0 ± 1.0" in line and " 3 " in line
    wide = render("terminal", build_board(three_seeds()), three_seeds(), layout="wide")
    line = next(ln for ln in wide.splitlines() if ln.startswith("cifar10-sslt"))
    assert "72.0 ± 2.0" in line and "resnet32" in line


@pytest.mark.parametrize(
    "change",
    [
        {"profile": "paper"},
        {"backbone": "resnet18"},
        {"data_params": {"imbalance_ratio": 1000.0, "n_max": None}},
        {"split_hash": "ffff0000ffff0000"},
        {"config_hash": "cfg1", "method_config": {"lr": 0.05}},
    ],
)
def test_mixed_configurations_are_separate_rows(change):
    recs = three_seeds() + [rec("erm", 0, overall=10.0, **change)]
    rows = aggregate(recs)
    assert len(rows) == 2
    assert sorted(r["n"] for r in rows) == [1, 3]
    assert sorted(r["overall"] for r in rows) == [pytest.approx(10.0), pytest.approx(72.0)]
    board = build_board(recs)
    cells = [c for ln in board.lines for c in ln.cells.values()]
    assert len(cells) == 2  # never one averaged cell
    keys = [(ln.label, ln.profile, ln.backbone) for ln in board.lines]
    assert len(set(keys)) == len(keys) == (1 if "data_params" in change else 2)
    labels = [ln.label for ln in board.lines]
    if "split_hash" in change:
        assert any("split ffff0000" in lab for lab in labels)
    if "config_hash" in change:
        assert any("lr=0.05" in lab for lab in labels)
    if "data_params" in change:
        assert [lab for _, lab in board.columns] == [
            "cifar10-sslt (imbalance_ratio=100)",
            "cifar10-sslt (imbalance_ratio=1000)",
        ]


def test_failed_runs_listed_not_averaged():
    bad = rec("erm", 3, overall=0.0, status="failed", error="erm: loss is nan", metrics=None)
    recs = three_seeds() + [bad]
    (row,) = aggregate(recs)
    assert row["n"] == 3 and row["overall"] == pytest.approx(72.0)
    board = build_board(recs)
    assert board.failed == [bad]
    md = render("markdown", board, recs)
    assert "Failed runs (not averaged)" in md and "loss is nan" in md
    rows = list(csv.DictReader(io.StringIO(render("csv", board, recs))))
    assert [r["status"] for r in rows].count("failed") == 1


def test_duplicate_run_counted_once():
    recs = three_seeds()
    dup = dict(recs[0], _path="/other/erm-0.json")
    with pytest.warns(UserWarning, match="duplicate run"):
        (row,) = aggregate([*recs, dup])
    assert row["n"] == 3


def two_methods():
    return three_seeds("erm") + [
        rec("decoupling", s, overall=60.0, many=95.0, medium=61.0, few=40.0) for s in range(2)
    ]


def test_latex_structure_and_bold_best():
    recs = two_methods()
    text = latex(build_board(recs))
    for token in ("\\begin{tabular}", "\\toprule", "\\midrule", "\\bottomrule", "\\end{tabular}"):
        assert text.count(token) >= 1, token
    assert text.index("\\toprule") < text.index("\\midrule") < text.index("\\bottomrule")
    rows = [ln for ln in text.splitlines() if ln.startswith(("erm", "decoupling"))]
    assert len(rows) == 2
    cols = 3 + 5
    for ln in rows:
        assert ln.endswith("\\\\") and ln.count("&") == cols - 1
    cells = {ln.split(" & ")[0]: ln.rstrip(" \\").split(" & ") for ln in rows}
    # overall (col 4), many (5), medium (6), few (7): erm wins overall/few, decoupling many/medium
    assert cells["erm"][4].startswith("\\textbf{72.0") and "textbf" not in cells["decoupling"][4]
    assert cells["decoupling"][5].startswith("\\textbf{95.0") and "textbf" not in cells["erm"][5]
    assert cells["decoupling"][6].startswith("\\textbf") and "textbf" not in cells["erm"][6]
    assert cells["erm"][7].startswith("\\textbf") and "$\\pm$" in cells["erm"][7]
    assert "±" not in text


class _Balanced(HTMLParser):
    VOID = {"meta", "br", "hr", "img", "link"}

    def __init__(self):
        super().__init__()
        self.stack = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        assert tag in self.VOID, tag

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()


def test_html_well_formed_with_provenance():
    recs = two_methods() + [rec("erm", 9, status="failed", metrics=None, error="<boom> & co")]
    page = render("html", build_board(recs, with_paper=True), recs)
    parser = _Balanced()
    parser.feed(page)
    parser.close()
    assert parser.stack == []
    root = ET.fromstring(page.split("\n", 1)[1])  # strict XML parse after the doctype
    assert root.tag == "html"
    text = "".join(root.itertext())
    for needle in ("abcd1234abcd1234", "0123456789ab", "cpu (x86_64)", "resnet32", "quick"):
        assert needle in text, needle
    assert "<boom> & co" in text and "paper (quoted)" in text
    assert root.findall(".//tr[@class='quoted']")


def test_csv_one_numeric_row_per_run():
    recs = two_methods()
    text = render("csv", build_board(recs, with_paper=True), recs)
    rows = list(csv.DictReader(io.StringIO(text)))
    measured = [r for r in rows if r["source"] == "measured"]
    assert len(measured) == 5
    for r in measured:
        for key in ("overall", "many", "medium", "few", "wall_time_s", "train_images_per_s"):
            float(r[key])  # numbers, not "72.0 ± 2.0"
        assert r["split_hash"] and r["git"] and r["device"] and r["profile"] and r["backbone"]
    erm0 = next(r for r in measured if r["method"] == "erm" and r["seed"] == "0")
    assert float(erm0["overall"]) == 70.0
    quoted = [r for r in rows if r["source"].startswith("paper (quoted)")]
    assert quoted and all(float(r["overall"]) > 0 for r in quoted)


def test_with_paper_marked_and_noted(cli_run, tmp_path):
    recs = three_seeds("decoupling") + [rec("erm", 0, dataset="digits-sslt", data_params={})]
    recs.append(rec("decoupling", 0, overall=1.0, data_params={"imbalance_ratio": 1000.0}))
    for i, r in enumerate(recs):
        (tmp_path / f"r{i}.json").write_text(json.dumps(r))
    _, plain = cli_run("table", "--results", tmp_path, "--dataset", "cifar10-sslt")
    assert "paper" not in plain
    _, text = cli_run(
        "table",
        "--results",
        tmp_path,
        "--dataset",
        "cifar10-sslt",
        "--with-paper",
        "--format",
        "markdown",
    )
    lines = text.splitlines()
    assert [ln for ln in lines if ln.startswith("**cifar10-sslt")] == [
        "**cifar10-sslt (imbalance_ratio=100) · profile quick · resnet32 · split abcd1234**",
        "**cifar10-sslt (imbalance_ratio=100) · paper (quoted): published numbers, not measured "
        "here**",
        "**cifar10-sslt (imbalance_ratio=1000) · profile quick · resnet32 · split abcd1234**",
        "**cifar10-sslt (imbalance_ratio=1000) · paper (quoted): published numbers, not "
        "measured here**",
    ]
    quoted = [ln for ln in lines if "| quoted |" in ln]  # every quoted row says so
    assert any(ln.startswith("| decoupling [Table 1, ResNet-18] | quoted |") for ln in quoted)
    t1 = [ln for ln in quoted if ln.startswith("| alternate [Table 1, ResNet-18] |")]
    assert t1 == [
        "| alternate [Table 1, ResNet-18] | quoted | 71.3 | 89.5 | 67.7 | 60.2 |",
        "| alternate [Table 1, ResNet-18] | quoted | 66.7 | 84.4 | 69.4 | 51.4 |",
    ]
    assert any("Table 4, ResNet-32" in ln and "77.34" in ln for ln in quoted)
    assert not any("**" in ln for ln in quoted)  # quoted numbers never marked best
    measured = next(ln for ln in lines if ln.startswith("| decoupling | 3 |"))
    assert "72.0 ± 2.0" in measured  # the quoted 64.0 never enters the mean
    _, wide = cli_run(
        "table", "--results", tmp_path, "--dataset", "cifar10-sslt", "--with-paper",
        "--format", "markdown", "--layout", "wide",
    )  # fmt: skip
    quoted = [ln for ln in wide.splitlines() if "paper (quoted)" in ln and ln.startswith("|")]
    t1 = next(ln for ln in quoted if "alternate [paper (quoted), Table 1" in ln)
    assert "| 71.3 | 89.5 | 67.7 | 60.2 |" in t1 and "| 66.7 | 84.4 | 69.4 | 51.4 |" in t1
    notes = [ln for ln in text.splitlines() if ln.startswith("- Note:")]
    assert any("Table 1 rows differ" in n and "ResNet-18 vs measured resnet32" in n for n in notes)
    t4 = next(n for n in notes if "Table 4 rows" in n)
    assert "backbone" not in t4 and "profile quick" in t4
    assert any("Tiny Images" in n for n in notes)
    # measured with the paper's backbone and profile: no mismatch note for Table 4
    same = [rec("decoupling", s, profile="paper") for s in range(2)]
    board = build_board(same, with_paper=True)
    assert not any("Table 4" in n and "Not a like-for-like" in n for n in board.notes)
    assert any("Table 1" in n and "Not a like-for-like" in n for n in board.notes)
    # --method filters the quoted rows too
    board = build_board(same, with_paper=True, paper_methods={"decoupling"})
    assert {ln.method for ln in board.lines} == {"decoupling"}


def test_cli_formats_output_file_and_by_seed(cli_run, tmp_path):
    for i, r in enumerate(two_methods()):
        (tmp_path / f"r{i}.json").write_text(json.dumps(r))
    out = tmp_path / "out" / "t.tex"
    cli_run("table", "--results", tmp_path, "--format", "latex", "--output", out)
    assert out.read_text().startswith("% sslt-bench table")
    _, text = cli_run("table", "--results", tmp_path, "--by", "seed", "--method", "erm")
    assert len(re.findall(r"erm \[seed \d\]", text)) == 3 and "decoupling" not in text
    code, text = cli_run("table", "--results", tmp_path, "--dataset", "nope", expect=2)
    assert "no result records with dataset 'nope'; present: cifar10-sslt" in text
    with pytest.raises(UsageError):
        filter_records(two_methods(), backbone=("resnet18",))


def test_rendering_is_deterministic():
    recs = two_methods()
    for fmt in ("terminal", "markdown", "csv", "latex", "html"):
        a = render(fmt, build_board(recs, with_paper=True), recs)
        b = render(fmt, build_board(list(reversed(recs)), with_paper=True), list(reversed(recs)))
        assert a == b, fmt


REGISTERED = {
    "erm",
    "ldam-drw",
    "decoupling",
    "pseudo-label+ldam",
    "pseudo-label+decoupling",
    "mean-teacher+ldam",
    "fixmatch",
    "salsa",
    "alternate",
}


def test_paper_results_file():
    doc = paper.load_paper_results()
    assert doc["version"] == 1
    assert {(b["table"], b["dataset"], b["backbone"]) for b in doc["tables"]} == {
        ("1", "cifar10-sslt", "ResNet-18"),
        ("1", "imagenet-sslt", "ResNet-18"),
        ("1", "imagenet-sslt", "ResNet-50"),
        ("4", "cifar10-sslt", "ResNet-32"),
        ("5", "cifar10-sslt", "ResNet-18"),
        ("6", "inat2018-sslt", "ResNet-50"),
    }
    rows = paper.quoted_rows()
    assert {r["method"] for r in rows} <= REGISTERED
    assert len(rows) == 6 * 4 + 4 + 3 + 3


@pytest.mark.needs_shared("paper/alternate-sampling-sslt.txt")
def test_paper_numbers_match_the_paper_text():
    lines = PAPER_TXT.read_text().splitlines()
    by_block = {}
    for r in paper.quoted_rows():
        key = (r["table"], r["dataset"], r["backbone"], json.dumps(r["data_params"]))
        by_block.setdefault(key, []).append(r)
    start = {
        t: next(i for i, ln in enumerate(lines) if ln.startswith(f"Table {t}:")) for t in "1456"
    }
    for (table, ds, backbone, params), rows in by_block.items():
        for r in rows:
            line = next(ln for ln in lines[start[table] :] if ln.startswith(r["paper_name"] + "\t"))
            cells = line.split("\t")[1:]
            if table == "1":
                side = 0 if ds == "cifar10-sslt" else 4
                half = 0 if ("1000" not in params and backbone == "ResNet-18") else 1
                want = [c.split("/")[half] for c in cells[side : side + 4]]
            else:
                want = cells[:4]
            got = [r[m] for m in paper.METRICS]
            assert got == [float(w) for w in want], (table, ds, backbone, r["method"])


def crowded():
    """Long labels, several settings, a failed run with a long error, many methods."""
    recs = []
    for i, m in enumerate(["pseudo-label+decoupling", "mean-teacher+ldam", "erm", "alternate"]):
        for s in range(3):
            recs.append(rec(m, s, overall=30.0 + 3 * i + s, many=99.9 - i, few=100.0 - 10 * i))
            recs.append(
                rec(m, s, overall=20.0 + i, data_params={"imbalance_ratio": 1000.0, "n_max": 5})
            )
    recs.append(rec("erm", 0, overall=1.0, config_hash="cfg9", method_config={"lr": 0.123456}))
    recs.append(rec("salsa", 7, status="failed", metrics=None, error="x" * 300))
    return recs


def test_compact_default_fits_100_columns_sorted_best_marked(cli_run, tmp_path):
    for i, r in enumerate(crowded()):
        (tmp_path / f"r{i}.json").write_text(json.dumps(r))
    _, text = cli_run("table", "--results", tmp_path, "--with-paper")
    assert max(map(len, text.splitlines())) <= 100, text
    blocks = text.split("\n\n")
    first = blocks[0].splitlines()
    title = "(imbalance_ratio=100, n_max=None) · profile quick · resnet32 · split abcd1234"
    assert first[0] == f"cifar10-sslt {title}"
    assert first[1].split() == ["method", "n", "overall", "many", "medium", "few"]
    methods = [ln.split()[0] for ln in first[3:]]
    assert methods == [
        "alternate", "erm", "mean-teacher+ldam", "pseudo-label+decoupling", "erm"
    ]  # fmt: skip
    top = first[3]
    assert "40.0 ± 1.0 *" in top and "40.0 ± 0.0 *" not in top  # best overall, not best few
    assert "100.0 ± 0.0 *" in next(ln for ln in first if ln.startswith("pseudo-label"))
    assert "lr=0.123456" in text and "quoted" in text and "failed runs (not averaged):" in text
    assert any(
        b.startswith("cifar10-sslt (imbalance_ratio=1000, n_max=5) · profile quick") for b in blocks
    )
    _, wide = cli_run("table", "--results", tmp_path, "--layout", "wide")
    assert max(map(len, wide.splitlines())) > 100  # the wide layout, as before, for LaTeX/HTML
    _, text = cli_run("table", "--results", tmp_path, "--layout", "tall", expect=2)
    assert "'tall'" in text


def test_render_modules_import_no_cycle():
    import ast

    import sslt_bench.results.render_doc as doc

    tree = ast.parse(Path(doc.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "render" not in imported and "layout" in imported


def test_an_extra_metric_column_is_one_name():
    recs = [
        rec("erm", s, metrics={**rec()["metrics"], "median_last20": 60.0 + s}) for s in range(3)
    ]
    recs.append(rec("decoupling", 0, median_last20=80.0))  # a top-level record field works too
    metrics = ("overall", "many", "medium", "few", "median_last20")
    board = build_board(recs, with_paper=True, metrics=metrics)
    text = render("terminal", board, recs)
    assert max(map(len, text.splitlines())) <= 100
    head = next(ln for ln in text.splitlines() if ln.startswith("method"))
    assert head.split() == ["method", "n", *metrics]
    assert "61.0 ± 1.0" in next(ln for ln in text.splitlines() if ln.startswith("erm"))
    assert "80.0 *" in next(ln for ln in text.splitlines() if ln.startswith("decoupling"))
    quoted = next(ln for ln in text.splitlines() if ln.startswith("decoupling [Table 1"))
    assert quoted.split()[-1] == "-"  # the paper does not report it
    for fmt in ("markdown", "latex", "html"):
        assert "median" in render(fmt, board, recs).lower(), fmt


def test_configuration_rows_are_labelled_by_the_users_set_values():
    """Rows of one method told apart by --set are labelled with it; else by config fields."""

    def alt(seed, recipe, overrides, cfg_hash):
        cfg = {"lr": 0.1, "recipe": recipe, "stage2_lr": 0.1 if recipe == "paper" else 0.01}
        return rec(
            "alternate",
            seed,
            method_config=cfg,
            config_hash=cfg_hash,
            overrides=overrides,
        )

    recs = [
        alt(0, "released", ["recipe=released", "data.imbalance_ratio=100"], "c1"),
        alt(1, "released", ["method.recipe=released"], "c1"),
        alt(0, "paper", [], "c2"),
    ]
    labels = sorted(ln.label for ln in build_board(recs).lines)
    assert labels == ["alternate [no --set]", "alternate [recipe=released]"]
    recs.append(alt(1, "paper", ["recipe=paper"], "c2"))  # one row, two different --set lists
    labels = sorted(ln.label for ln in build_board(recs).lines)
    assert labels == [
        "alternate [recipe=paper, stage2_lr=0.1]",
        "alternate [recipe=released, stage2_lr=0.01]",
    ]
