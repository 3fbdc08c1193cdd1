"""Profile drift: a record made under an older version of its profile is labelled as such."""

from test_table import rec

from sslt_bench.config import method_config, to_dict
from sslt_bench.registry import DATASETS, METHODS
from sslt_bench.results.drift import profile_drift
from sslt_bench.results.render import render
from sslt_bench.results.table import build_board


def today(method: str, dataset: str, profile: str = "quick", overrides=()) -> dict:
    """The method config a run of ``method`` on ``dataset`` gets today."""
    builder = DATASETS.get(dataset)
    cls = METHODS.get(method).Config
    user = dict(o.split("=", 1) for o in overrides)
    return to_dict(method_config(cls, profile, builder.hints.get(profile), user))


def fixmatch_rec(seed: int = 0, **changes) -> dict:
    cfg = today("fixmatch", "cifar10-sslt") | changes
    return rec("fixmatch", seed, method_config=cfg, config_hash="old" if changes else "now")


def test_drift_names_the_fields_the_profile_no_longer_gives():
    cfg = today("fixmatch", "cifar10-sslt")
    assert cfg["epochs"] != 7 and cfg["backbone"] == "resnet20"  # the data set's quick hint
    assert profile_drift(fixmatch_rec()) == {}
    assert profile_drift(fixmatch_rec(epochs=7)) == {"epochs": (7, cfg["epochs"])}


def test_user_settings_and_missing_fields_are_not_drift():
    cfg = today("fixmatch", "cifar10-sslt", overrides=["epochs=7"])
    assert profile_drift(rec("fixmatch", method_config=cfg, overrides=["epochs=7"])) == {}
    older = {k: v for k, v in today("fixmatch", "cifar10-sslt").items() if k != "no_decay"}
    assert profile_drift(rec("fixmatch", method_config=older)) == {}  # field added since


def test_records_that_cannot_be_rebuilt_have_no_drift():
    assert profile_drift(rec("not-a-method", method_config={"epochs": 7})) == {}
    assert profile_drift(fixmatch_rec(epochs=7) | {"profile": "no-such-profile"}) == {}


def test_board_labels_old_rows_and_says_what_the_profile_gives_now():
    now = today("fixmatch", "cifar10-sslt")["epochs"]
    records = [fixmatch_rec(s, epochs=7) for s in range(2)] + [fixmatch_rec(0)]
    board = build_board(records)
    labels = sorted(line.label for line in board.lines)
    assert labels == [f"fixmatch [epochs={now}]", "fixmatch [old quick: epochs=7]"]
    assert any(f"now gives epochs={now}" in n for n in board.notes)
    assert "old quick: epochs=7" in render("markdown", board, records)
    current = build_board([fixmatch_rec(s) for s in range(2)])
    assert [line.label for line in current.lines] == ["fixmatch"] and not current.notes
