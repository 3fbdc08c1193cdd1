"""Paired comparisons and pseudo-label trajectories.

(sslt_bench.results.compare, `sslt-bench compare`)
"""

import json

from test_table import rec

from sslt_bench.results.compare import paired_markdown, pairs, trajectory_markdown


def _rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("| ") and not line.startswith("| seed")
    ]


def test_pairs_only_equal_seeds_in_one_setting():
    recs = [
        rec("alternate", 0, overall=40.0, few=30.0),
        rec("alternate", 1, overall=42.0, few=35.0),
        rec("alternate", 2, overall=41.0, few=33.0),  # no decoupling seed 2: unpaired
        rec("decoupling", 0, overall=38.0, few=31.0),
        rec("decoupling", 1, overall=39.0, few=30.0),
        rec("decoupling", 1, overall=10.0, split_hash="other"),  # another split: never paired
    ]
    (runs,) = pairs(recs, "alternate", "decoupling").values()
    assert [(a["seed"], b["seed"]) for a, b in runs] == [(0, 0), (1, 1)]
    rows = _rows(paired_markdown(recs, "alternate", "decoupling"))
    assert rows[0][:7] == ["0", "40.0", "38.0", "+2.0", "30.0", "31.0", "-1.0"]
    assert rows[1][:7] == ["1", "42.0", "39.0", "+3.0", "35.0", "30.0", "+5.0"]
    assert rows[2][:7] == ["mean", "41.0", "38.5", "+2.5 ± 0.7", "32.5", "30.5", "+2.0 ± 4.2"]
    text = paired_markdown(recs, "alternate", "decoupling")
    assert "overall: alternate ahead on 2 of 2 seeds; few: alternate ahead on 1 of 2" in text


def test_no_pairs_says_so():
    text = paired_markdown([rec("alternate", 0)], "alternate", "decoupling")
    assert text.startswith("No seed has a finished run of both")


def _pl(seed, values):
    steps = [f"loop{i + 1}/pseudo" for i in range(len(values))]
    hist = {"epochs": [], "evals": [], "pseudo_labels": []}
    hist["pseudo_labels"] = [
        {"step": s, "few": v, "overall": 50.0} for s, v in zip(steps, values, strict=True)
    ]
    return rec("alternate", seed, history=hist)


def test_pseudo_label_trajectories_and_rising_count():
    text = trajectory_markdown(
        [_pl(0, [28.0, 29.0, 30.5]), _pl(1, [30.0, 29.0, 31.0])], "alternate"
    )
    assert "| seed | loop1/pseudo | loop2/pseudo | loop3/pseudo |" in text
    assert _rows(text) == [["0", "28.0", "29.0", "30.5"], ["1", "30.0", "29.0", "31.0"]]
    assert "Rising at every labelling step in 1 of 2 runs." in text


def test_cli_compare(cli_run, tmp_path):
    folder = tmp_path / "records"
    folder.mkdir()
    for r in (rec("alternate", 0, overall=40.0), rec("decoupling", 0, overall=38.0)):
        r.pop("_path")
        (folder / f"{r['method']}-{r['seed']}.json").write_text(json.dumps(r))
    _, out = cli_run("compare", "alternate", "decoupling", "--results", tmp_path)
    assert "| 0 | 40.0 | 38.0 | +2.0 |" in out
    code, out = cli_run("compare", "alternat", "decoupling", "--results", tmp_path, expect=2)
    assert "unknown method 'alternat'" in out and "alternate" in out


def test_eval_trajectory_overall():
    evals = [{"step": s, "overall": v, "few": 1.0} for s, v in (("init", 37.0), ("loop1", 38.0))]
    r = rec("alternate", 0, history={"epochs": [], "evals": evals, "pseudo_labels": []})
    text = trajectory_markdown([r], "alternate", "evals", "overall")
    assert "overall test accuracy after each stage" in text
    assert _rows(text) == [["0", "37.0", "38.0"]]
    assert "Rising at every evaluation in 1 of 1 runs." in text


def test_readme_compare_block_is_rerendered_in_place():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "render_leaderboards.py"
    spec = importlib.util.spec_from_file_location("render_leaderboards", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    recs = [rec("alternate", 0, overall=40.0), rec("decoupling", 0, overall=38.0)]
    text = (
        "intro\n<!-- compare:cifar10-sslt alternate decoupling -->\nstale\n<!-- /compare -->\nend\n"
    )
    once = mod.readme_with_comparisons(text, recs)
    assert "stale" not in once and "| 0 | 40.0 | 38.0 | +2.0 |" in once
    assert once.startswith("intro\n") and once.endswith("<!-- /compare -->\nend\n")
    assert mod.readme_with_comparisons(once, recs) == once


def _hashed(method, seed, overall, init, after=None, plan="p1"):
    r = rec(method, seed, overall=overall, few=10.0)
    r["init_hash"] = init
    r["init_hashes"] = {"init": init, **({"after:classifier": after} if after else {})}
    r["init_plans"] = {"after:classifier": plan} if after else {}
    return r


def test_init_status_flags_and_excludes_pairs_that_did_not_start_alike():
    recs = [
        _hashed("alternate", 0, 40.0, "a", after="x"),
        _hashed("decoupling", 0, 38.0, "a", after="x"),  # same init, same decoupling init
        _hashed("alternate", 1, 50.0, "a", after="y"),
        _hashed("decoupling", 1, 30.0, "a", after="z"),  # same plan, other weights: excluded
        _hashed("alternate", 2, 45.0, "b"),
        _hashed("decoupling", 2, 30.0, "c"),  # different initial weights: excluded
        _hashed("alternate", 3, 41.0, "a", after="y", plan="p2"),
        _hashed("decoupling", 3, 39.0, "a", after="z"),  # init steps differ by design: kept
        rec("alternate", 4, overall=44.0, few=10.0),  # an old record: init unknown
        rec("decoupling", 4, overall=40.0, few=10.0),
    ]
    text = paired_markdown(recs, "alternate", "decoupling")
    init = {row[0]: row[-1] for row in _rows(text)}
    assert init == {
        "0": "same to classifier",
        "1": "differs after classifier (excluded)",
        "2": "differs (excluded)",
        "3": "same",
        "4": "unknown",
        "mean": "",
    }
    mean = next(row for row in _rows(text) if row[0] == "mean")
    assert mean[1:4] == ["41.7", "39.0", "+2.7 ± 1.2"]  # seeds 0, 3, 4 only
    assert "init unknown for 1 of 5 pairs" in text
    assert "2 pairs whose inits differ excluded from the mean and Δ" in text
    assert "ahead on 3 of 3 seeds" in text


def test_no_same_init_pair_gives_no_mean():
    recs = [_hashed("alternate", 0, 40.0, "a"), _hashed("decoupling", 0, 38.0, "b")]
    text = paired_markdown(recs, "alternate", "decoupling")
    assert "No same-init pair: no mean or Δ" in text
    assert not any(row[0] == "mean" for row in _rows(text))


def test_selectors_pick_configurations_and_pair_two_of_one_method(cli_run, tmp_path):
    import pytest

    from sslt_bench.errors import UsageError
    from sslt_bench.results.compare import parse_selector

    assert parse_selector("alternate") == ("alternate", {})
    assert parse_selector("alternate[recipe=released, loops=5]") == (
        "alternate",
        {"recipe": "released", "loops": "5"},
    )
    for bad in ("alternate[recipe", "[x=1]", "alternate[recipe]"):
        with pytest.raises(UsageError, match="bad method selector"):
            parse_selector(bad)

    def alt(seed, recipe, overall):
        cfg = {"lr": 0.1, "recipe": recipe}
        return rec("alternate", seed, overall=overall, method_config=cfg, config_hash=recipe)

    recs = [alt(0, "paper", 40.0), alt(0, "released", 37.0), alt(1, "paper", 41.0)]
    recs += [rec("decoupling", 0, overall=38.0), rec("decoupling", 1, overall=39.0)]
    (runs,) = pairs(recs, "alternate[recipe=released]", "alternate[recipe=paper]").values()
    assert [(a["method_config"]["recipe"], b["method_config"]["recipe"]) for a, b in runs] == [
        ("released", "paper")
    ]
    assert len(pairs(recs, "alternate", "decoupling")) == 2  # both configurations
    (runs,) = pairs(recs, "alternate[recipe=paper]", "decoupling").values()
    assert [a["seed"] for a, _ in runs] == [0, 1]
    assert pairs(recs, "alternate[recipe=paper]", "alternate[recipe=paper]") == {}  # not itself
    folder = tmp_path / "records"
    folder.mkdir()
    for i, r in enumerate(recs):
        (folder / f"r{i}.json").write_text(json.dumps({k: v for k, v in r.items() if k != "_path"}))
    code, text = cli_run(
        "compare", "alternate[nosuch=1]", "decoupling", "--results", str(tmp_path), expect=2
    )
    assert code == 2 and "unknown alternate setting 'nosuch'" in text


def test_pairs_in_different_memory_formats_are_flagged():
    recs = [
        rec("alternate", 0, overall=40.0) | {"channels_last": True, "device": "cpu"},
        rec("decoupling", 0, overall=38.0) | {"device": "cpu"},  # old record: NCHW on CPU
        rec("alternate", 1, overall=41.0) | {"channels_last": False, "device": "cpu"},
        rec("decoupling", 1, overall=39.0) | {"device": "cpu"},
    ]
    text = paired_markdown(recs, "alternate", "decoupling")
    setups = {row[0]: row[-2] for row in _rows(text)}
    assert setups["0"].endswith("(CL / NCHW)") and "(" not in setups["1"]
    assert "1 of 2 pairs ran in different memory formats" in text
