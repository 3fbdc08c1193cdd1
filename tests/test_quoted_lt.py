"""Quoted CIFAR-10-LT rows (DASO Tables 1-2, USB, CoSSL README) beside measured ones."""

from __future__ import annotations

import json

from sslt_bench.results import paper
from sslt_bench.results.render import render
from sslt_bench.results.table import build_board

#: fixmatch and the eight methods of the class-imbalanced SSL zoo (issue 13), as registered.
ZOO = {
    "fixmatch",
    "fixmatch+darp",
    "fixmatch+abc",
    "fixmatch+crest",
    "fixmatch+daso",
    "fixmatch+saw",
    "fixmatch+cossl",
    "acr",
    "simpro",
}
MAIN = {"n1": 1500, "m1": 3000, "imbalance_ratio": 100.0, "unlabeled_imbalance_ratio": None}


def rec(method, seed, overall, dist="consistent", **params):
    """A finished cifar10-lt record as the runner writes it (the default data parameters)."""
    data = MAIN | {"unlabeled_dist": dist, "download": False} | params
    return {
        "dataset": "cifar10-lt",
        "method": method,
        "profile": "quick",
        "backbone": "resnet20",
        "seed": seed,
        "split_seed": 0,
        "split_hash": f"split-{dist}",
        "config_hash": "c0",
        "data_params": data,
        "status": "ok",
        "metrics": {"overall": overall, "many": 50.0, "medium": 40.0, "few": 30.0},
    }


def test_quoted_lt_file_is_valid_and_sourced():
    doc = paper.load_quoted_lt()
    assert doc["version"] == paper.LT_VERSION
    rows = paper.lt_rows("cifar10-lt")
    assert rows and {r["method"] for r in rows} <= ZOO
    for r in rows:
        assert r["backbone"] == "WRN-28-2" and r["citation"] and r["budget"] and r["figure"]
        assert 0 < r["overall"] < 100 and 0 <= r["overall_std"] < 10
        assert r["many"] is None and r["source"] == paper.QUOTED
    # the main setting of DASO Table 1 as the paper prints it
    daso = {
        r["method"]: (r["overall"], r["overall_std"])
        for r in rows
        if r["table"] == "1 (DASO)"
        and r["data_params"]["n1"] == 1500
        and r["data_params"]["imbalance_ratio"] == 100
    }
    assert daso["fixmatch"] == (77.5, 1.32) and daso["fixmatch+daso"] == (79.1, 0.75)
    # one row per (table, setting, method): a board line never holds two numbers of one cell
    keys = [(r["table"], json.dumps(r["data_params"], sort_keys=True), r["method"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_quoted_lt_rows_beside_measured_never_in_means():
    recs = [rec("fixmatch", 0, 40.0), rec("fixmatch", 1, 44.0), rec("erm", 0, 30.0, "reversed")]
    board = build_board(recs, with_paper=True)
    quoted = [ln for ln in board.lines if ln.quoted]
    measured = [ln for ln in board.lines if not ln.quoted]
    assert {ln.table for ln in quoted} >= {"1 (DASO)", "2 (DASO)", "classic_cv_imb (USB)"}
    # measured mean over the two seeds only: the quoted 77.5 / 76.69 never enter it
    (fm,) = [ln for ln in measured if ln.method == "fixmatch"]
    (cell,) = fm.cells.values()
    assert cell["overall"] == 42.0 and cell["n"] == 2
    assert not any(r["method"] == "fixmatch" and r["overall"] != 42.0 for r in board.rows)
    # quoted lines only in columns whose data parameters they match
    for ln in quoted:
        for ds, key in ln.cells:
            params = json.loads(key)
            assert ds == "cifar10-lt" and params["n1"] == 1500 and params["m1"] == 3000
    rev = [ln for ln in quoted if any('"reversed"' in k for _, k in ln.cells)]
    assert {ln.table for ln in rev} == {"2 (DASO)", "classic_cv_imb (USB)", "3 (CCL)"}
    # the note names the backbone and budget difference
    assert any("WRN-28-2 vs measured resnet20" in n and "profile quick" in n for n in board.notes)
    assert any("median test accuracy of the last 20 evaluations" in n for n in board.notes)
    text = render("markdown", board, recs)
    assert "| fixmatch [Table 1 (DASO), WRN-28-2] | quoted | 77.5 ± 1.32 | - | - | - |" in text
    assert "paper (quoted)" in text


def test_quoted_lt_only_with_paper_and_matching_params():
    recs = [rec("fixmatch", 0, 40.0)]
    assert not any(ln.quoted for ln in build_board(recs).lines)
    # a setting no source reports (n1=500 m1=4000 uniform is in DASO Table 2; n1=700 is not)
    odd = build_board([rec("fixmatch", 0, 40.0, n1=700)], with_paper=True)
    assert not any(ln.quoted for ln in odd.lines)
    assert any("reports no numbers" in n for n in odd.notes)
    # gamma_u given explicitly and different from gamma_l: the consistent rows do not match
    skew = build_board([rec("fixmatch", 0, 40.0, unlabeled_imbalance_ratio=50.0)], with_paper=True)
    assert not any(ln.quoted for ln in skew.lines)
    # gamma_u given explicitly and equal to gamma_l: they do
    same = build_board([rec("fixmatch", 0, 40.0, unlabeled_imbalance_ratio=100.0)], with_paper=True)
    assert any(ln.quoted for ln in same.lines)
    # SimPro Table 1 (n1=500, m1=4000): its own profiles, e.g. middle with gamma 100
    mid = build_board([rec("simpro", 0, 40.0, "middle", n1=500, m1=4000)], with_paper=True)
    got = {
        (ln.table, ln.method): c["overall"]
        for ln in mid.lines
        if ln.quoted
        for c in ln.cells.values()
    }
    assert got[("1 (SimPro)", "simpro")] == 84.8 and ("1 (SimPro)", "acr") not in got
    # uniform: DASO Table 2 and ACR's (via CCL Table 3); USB reports no uniform CIFAR-10 setting
    uni = build_board([rec("fixmatch", 0, 40.0, "uniform")], with_paper=True)
    assert {ln.table for ln in uni.lines if ln.quoted} == {"2 (DASO)", "3 (CCL)"}
    acr = {
        (ln.table, ln.method): c["overall"]
        for ln in build_board([rec("acr", 0, 40.0)], with_paper=True).lines
        if ln.quoted
        for c in ln.cells.values()
    }
    assert acr[("2 (CCL)", "acr")] == 84.1  # n1 1500, m1 3000, gamma 100, consistent
    # --method filters the quoted rows too
    only = build_board(recs, with_paper=True, paper_methods={"fixmatch+abc"})
    assert {ln.method for ln in only.lines if ln.quoted} == {"fixmatch+abc"}
