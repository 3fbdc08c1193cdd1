"""Pseudo-label diagnostics on U and the median of the last 20 evaluations (issue 15)."""

import dataclasses
import json
import math

import numpy as np
import pytest

from sslt_bench.config import build_config
from sslt_bench.errors import UsageError
from sslt_bench.methods.base import DataInfo
from sslt_bench.registry import METHODS
from sslt_bench.train import session as session_mod
from sslt_bench.train.diagnostics import (
    DiagnosticSettings,
    compact,
    median_last,
    pseudo_label_metrics,
    record_fields,
    subsample_positions,
)
from sslt_bench.train.runner import Runner, RunSpec
from sslt_bench.train.stages import PseudoLabel, Train

# 4 classes: many, medium, few, few (class 3 absent from U and never predicted)
SPLIT = np.array([0, 1, 2, 2])
HIDDEN = np.array([0, 0, 0, 0, 1, 1, 2, 2])
LABELS = np.array([0, 0, 1, 2, 1, 0, 2, 2])
KEPT = np.array([1, 1, 1, 0, 1, 1, 0, 1], dtype=bool)


def test_metrics_known_answer():
    r = pseudo_label_metrics(LABELS, KEPT, HIDDEN, SPLIT, 4)
    pc = r["per_class"]
    # kept: (0,0) (0,0) (1 for 0) (1,1) (0 for 1) (2,2): correct per class 2, 1, 1
    assert pc["precision"] == pytest.approx([200 / 3, 50.0, 100.0, None])
    assert pc["recall"] == pytest.approx([200 / 3, 50.0, 100.0, None])
    assert pc["mask_rate"] == pytest.approx([75.0, 100.0, 50.0, None])
    assert r["mask_rate"] == 75.0 and r["labels"] == "known" and r["n"] == 8
    assert r["precision"] == pytest.approx(
        {"overall": (200 / 3 + 150) / 3, "many": 200 / 3, "medium": 50.0, "few": 100.0}
    )
    assert r["mask_rate_by"]["few"] == 50.0
    # predicted (all items): 3/8, 2/8, 3/8, 0; true 4/8, 2/8, 2/8, 0
    assert pc["pred_dist"] == pytest.approx([3 / 8, 2 / 8, 3 / 8, 0])
    assert r["tv"] == pytest.approx(
        {"overall": 0.125, "many": 1 / 16, "medium": 0.0, "few": 1 / 16}
    )
    kl = 0.5 * math.log(0.5 / 0.375) + 0.25 * math.log(0.25 / 0.375)
    assert r["kl"] == pytest.approx(kl, rel=1e-4)


def test_metrics_unknown_and_partial_labels():
    r = pseudo_label_metrics(LABELS, KEPT, np.full(8, -1), SPLIT, 4)
    assert r["labels"] == "unknown" and r["known"] == 0.0
    assert r["mask_rate"] == 75.0  # label-free figures stay
    assert r["per_class"]["pred_dist"] == pytest.approx([3 / 8, 2 / 8, 3 / 8, 0])
    assert r["kl"] is None and r["per_class"]["true_dist"] is None
    for key in ("precision", "recall", "mask_rate_by", "tv"):
        assert set(r[key].values()) == {None}
    hidden = HIDDEN.copy()
    hidden[[3, 6]] = -1  # the two non-kept items unknown: the kept figures are unchanged
    p = pseudo_label_metrics(LABELS, KEPT, hidden, SPLIT, 4)
    assert p["labels"] == "partial" and p["known"] == 0.75
    assert p["per_class"]["precision"] == pytest.approx([200 / 3, 50.0, 100.0, None])
    assert p["per_class"]["mask_rate"] == pytest.approx([100.0, 100.0, 100.0, None])
    assert json.dumps(r) and json.dumps(p)  # strict JSON: no NaN


def test_median_last_and_compact():
    traj = [{"step": "a", "overall": 99.0}] + [
        {"step": "b", "overall": float(i), "many": 1.0, "medium": None, "few": 2.0}
        for i in range(30)
    ]
    m = median_last(traj)
    assert m["count"] == 20 and m["overall"] == 19.5 and m["medium"] is None
    assert median_last(traj[:4])["count"] == 3 and median_last([]) is None
    e = [
        {"step": "s", "per_class": 1},
        {"step": "s", "per_class": 2},
        {"step": "t", "per_class": 3},
    ]
    assert ["per_class" in x for x in compact(e)] == [False, True, True]
    fields = record_fields(
        {"u_diagnostics": e[:1] and [], "trajectory": traj}, DiagnosticSettings()
    )
    assert fields["pseudo_label_diagnostics"]["version"] == 1
    assert fields["median_last20"]["overall"] == 19.5


def test_subsample_is_fixed_and_bounded():
    a = subsample_positions(100, 10, 3)
    assert len(a) == 10 and list(a) == sorted(a) and (a == subsample_positions(100, 10, 3)).all()
    assert len(subsample_positions(5, 10, 0)) == 5 and len(subsample_positions(5, 0, 0)) == 5


def _smoke(method, tmp_path, **kw):
    cfg = METHODS.get(method).Config
    ov = tuple(f"{k}={v}" for k, v in getattr(cfg, "SMOKE", {}).items())
    spec = RunSpec(
        method=method,
        dataset="digits-sslt",
        out=tmp_path,
        progress=False,
        device="cpu",
        overrides=ov + tuple(kw.pop("extra", ())),
        **kw,
    )
    return Runner(spec)


def _training(rec):
    eps = [{k: v for k, v in e.items() if k != "test"} for e in rec["history"]["epochs"]]
    return rec["init_hashes"], rec["metrics"], eps, rec["history"]["pseudo_labels"]


@pytest.mark.parametrize(
    "method",
    ["fixmatch", "mean-teacher+ldam", "fixmatch+darp", "acr", "fixmatch+daso", "simpro"],
)
def test_diagnostics_leave_training_bit_identical(method, tmp_path, monkeypatch):
    two = ("epochs=2",)  # a second epoch draws from the run's generator after diagnostics
    on = _smoke(method, tmp_path / "on", diag_every_steps=1, diag_subsample=50, extra=two).run()
    assert len(on["pseudo_label_diagnostics"]["entries"]) >= 2
    assert all(e["n"] == 50 for e in on["pseudo_label_diagnostics"]["entries"])
    monkeypatch.setattr(session_mod.Session, "_diagnose", lambda *a, **k: None)
    monkeypatch.setattr(session_mod.Session, "_trajectory", lambda *a, **k: None)
    off = _smoke(method, tmp_path / "off", trajectory_every=0, extra=two).run()
    assert off["pseudo_label_diagnostics"]["entries"] == [] and off["median_last20"] is None
    assert _training(on) == _training(off)


def _labels_u(method: str) -> bool:
    """Whether a method's plan labels U (a PseudoLabel step or unlabeled batches)."""
    cls = METHODS.get(method)
    info = DataInfo(10, np.full(10, 20), 200, 1000, 1, 8)
    plan = cls(build_config(cls.Config, "quick", {}), info).plan()
    return any(isinstance(s, PseudoLabel) or (isinstance(s, Train) and s.unlabeled) for s in plan)


SSL = [m for m in METHODS.names() if _labels_u(m)]


def test_ssl_methods_found():
    assert {"fixmatch", "alternate", "salsa", "mean-teacher+ldam", "pseudo-label+ldam"} <= set(SSL)
    assert "erm" not in SSL and "ldam-drw" not in SSL


@pytest.mark.parametrize("method", SSL)
def test_every_ssl_method_records_diagnostics(method, tmp_path):
    rec = _smoke(method, tmp_path).run()
    diag = rec["pseudo_label_diagnostics"]
    assert diag["version"] == 1 and diag["labels"] == "known" and diag["entries"]
    for e in diag["entries"]:
        assert 0.0 <= e["mask_rate"] <= 100.0 and 0.0 <= e["tv"]["overall"] <= 1.0
        assert e["precision"]["overall"] is None or 0.0 <= e["precision"]["overall"] <= 100.0
    assert "per_class" in diag["entries"][-1]
    assert "u_diagnostics" not in rec["history"]


def test_unknown_hidden_labels_end_to_end(tmp_path, monkeypatch, cli_run):
    load = Runner._load_data

    def hidden_unknown(self):
        data = load(self)
        split = data.split
        data.split = dataclasses.replace(
            split, unlabeled_y_hidden=np.full_like(split.unlabeled_y_hidden, -1)
        )
        return data

    monkeypatch.setattr(Runner, "_load_data", hidden_unknown)
    rec = _smoke("pseudo-label+ldam", tmp_path).run()
    diag = rec["pseudo_label_diagnostics"]
    assert diag["labels"] == "unknown" and diag["entries"]
    assert all(
        e["precision"]["overall"] is None and e["mask_rate"] == 100.0 for e in diag["entries"]
    )
    assert all(p["overall"] is None for p in rec["history"]["pseudo_labels"])
    cli_run("plot", "pseudo-labels", "--results", tmp_path, "-o", tmp_path / "p")
    assert (tmp_path / "p.png").exists()


def test_median_last20_of_step_based_methods(tmp_path):
    rec = _smoke("fixmatch", tmp_path, extra=("epochs=3",)).run()
    traj = rec["history"]["trajectory"]
    assert [e["epoch"] for e in traj] == [1, 2, 3]
    assert rec["median_last20"]["count"] == 3
    assert rec["median_last20"]["overall"] == float(np.median([e["overall"] for e in traj]))
    assert traj[-1]["overall"] == rec["metrics"]["overall"]  # the last one is the final model
    assert "trajectory" not in _smoke("erm", tmp_path / "erm").run()["history"]


def test_bad_settings_exit_2(tmp_path, cli_run):
    cli_run("run", "--method", "fixmatch", "--diag-subsample", "-1", "--out", tmp_path, expect=2)
    with pytest.raises(UsageError, match="diag_every_steps"):
        _smoke("fixmatch", tmp_path, diag_every_steps=-2)


def test_plot_without_diagnostics_is_one_line_error(tmp_path, cli_run):
    _smoke("erm", tmp_path).run()
    _, text = cli_run("plot", "pseudo-labels", "--results", tmp_path, expect=2)
    assert "pseudo-label diagnostics" in text


def test_preserved_rng_and_kept_modes():
    import random

    import torch

    from sslt_bench.train.diagnostics import kept_modes, preserved_rng

    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    expect = (torch.rand(1).item(), np.random.rand(), random.random())
    torch.manual_seed(1)
    np.random.seed(1)
    random.seed(1)
    with preserved_rng(torch.device("cpu")):
        torch.rand(5), np.random.rand(5), random.random()
    assert (torch.rand(1).item(), np.random.rand(), random.random()) == expect
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    net[1].eval()  # a frozen BatchNorm (embed_bn="eval") stays frozen
    with kept_modes(net, None):
        net.eval()
        net.train(True)
    assert net.training and not net[1].training


def test_table_median_figure_is_labelled_and_old_records_read(tmp_path, cli_run):
    fix = _smoke("fixmatch", tmp_path, extra=("epochs=2",)).run()
    old = _smoke("erm", tmp_path).run()
    path = old["_path"]  # an old record: written before the diagnostics existed
    data = json.loads(open(path).read())
    del data["pseudo_label_diagnostics"], data["median_last20"]
    open(path, "w").write(json.dumps(data))
    _, text = cli_run("table", "--results", tmp_path)
    assert "median of the last 20" not in text and "erm" in text
    _, text = cli_run("table", "--results", tmp_path, "--figure", "median-last20")
    assert text.startswith("figure: median of the last 20 test evaluations")
    assert "\nerm " not in text.split("warning")[0]
    row = next(ln for ln in text.splitlines() if ln.startswith("fixmatch"))
    assert f"{fix['median_last20']['overall']:.1f}" in row
    _, csv = cli_run("table", "--results", tmp_path, "--figure", "median-last20", "--format", "csv")
    assert csv.startswith("# figure: median")
