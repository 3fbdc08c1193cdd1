"""The peer-check harness (benchmarks/peer_check.py) end to end, with a made-up official code.

A tiny "official repository" (a bare git repository built in the test: one ``train.py`` that
trains the model it is handed for a few steps and reports what it saw) stands in for a real
one, so the whole path runs here without ../shared or a network: our run's split and initial
weights, the bare repository exported at HEAD, run-time patches applied and restored, the
record written with machine paths named, and ours-vs-official pairing with its verdict.
"""

import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import peer_check  # noqa: E402
from peers import PEERS  # noqa: E402
from peers.agreement import agreement_rows, verdict  # noqa: E402
from peers.common import Patches, checkout, import_code, score, unlabeled_pool  # noqa: E402

FAKE_TRAIN = '''
import torch

def main(model, batches, lr):
    """Stands in for an official loop: SGD on the batches it is given; returns the labels seen."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    seen = []
    for x, y in batches:
        loss = torch.nn.functional.cross_entropy(model(x), y.clamp(min=0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen.extend(y.tolist())
    return seen
'''


def _bare_repo(tmp_path: Path) -> Path:
    work, bare = tmp_path / "work", tmp_path / "code.git"
    work.mkdir()
    (work / "train.py").write_text(FAKE_TRAIN)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q", str(work)], check=True)
    subprocess.run([*git, "-C", str(work), "add", "."], check=True)
    subprocess.run([*git, "-C", str(work), "commit", "-qm", "fake"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(bare)], check=True)
    return bare


def _fake_peer() -> types.ModuleType:
    """A peer module in the shape of peers/acr.py, driving FAKE_TRAIN with our split."""
    mod = types.ModuleType("fake_peer")
    mod.REPO, mod.METHOD = "test/fake", "erm"

    def argv(ours, out):
        return ["--lr", str(ours.cfg.lr)]

    def run(ours, code, work):
        (train,) = import_code(code, "train")
        split, images = ours.split, ours.data.train.images.float() / 255
        ids, marks = unlabeled_pool(split, labeled_mark=-2)
        ys = torch.as_tensor(marks)
        batches = [(images[ids[i : i + 64]], ys[i : i + 64]) for i in range(0, len(ids), 64)]
        p = Patches()
        p.set(train, "torch", torch, "a patch that is restored after the run")
        seen = train.main(ours.model, batches, ours.cfg.lr)
        p.restore()
        x_test = ours.data.test.images[split.test_idx].float() / 255
        test = [(x_test, torch.as_tensor(split.test_y))]
        reports = score({"random": lambda x: ours.model(x)}, test, split)
        return {"metrics": reports["random"], "code_log": {"labels": sorted(set(seen))},
                "patches": p.applied}  # fmt: skip

    mod.argv, mod.run = argv, run
    return mod


def test_unlabeled_pool_marks_d_and_hides_u_labels():
    split = types.SimpleNamespace(labeled_idx=np.array([5, 7]), unlabeled_idx=np.array([1, 2, 3]))
    ids, marks = unlabeled_pool(split, labeled_mark=-2)
    assert ids.tolist() == [5, 7, 1, 2, 3]
    assert marks.tolist() == [-2, -2, -1, -1, -1]


def test_patches_restore_and_record():
    obj = types.SimpleNamespace(a=1)
    p = Patches()
    p.set(obj, "a", 2, "why a")
    p.note("--flag 0", "why flag")
    assert obj.a == 2
    p.restore()
    assert obj.a == 1
    assert [x["why"] for x in p.applied] == ["why a", "why flag"]


def test_command_names_machine_paths():
    got = peer_check._command(["run", "acr", "--code", "/x/y", "--data-root=/d", "--out", "/o"])
    assert got.endswith("run acr --code CHECKOUT --data-root=DATA --out OUT")


def test_missing_checkout_exits_2(tmp_path, capsys):
    assert peer_check.main(["run", "acr", "--code", str(tmp_path / "none")]) == 2
    assert "no such checkout" in capsys.readouterr().err


def test_missing_companion_checkout_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("RANDAUGMENT_CODE", raising=False)
    assert peer_check.main(["run", "fixmatch", "--code", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "RANDAUGMENT_CODE" in err and "ildoonet/pytorch-randaugment" in err


def test_bare_repository_is_exported_at_head(tmp_path):
    bare = _bare_repo(tmp_path)
    with checkout(bare) as (folder, rev):
        assert (folder / "train.py").read_text() == FAKE_TRAIN
        assert len(rev) == 40
    assert not folder.exists()


def test_run_end_to_end_pairs_with_our_record(tmp_path, monkeypatch):
    monkeypatch.setitem(PEERS, "fake", _fake_peer())
    peers, ours = tmp_path / "peers", tmp_path / "ours"
    args = ["run", "fake", "--code", str(_bare_repo(tmp_path)), "--dataset", "digits-sslt"]
    assert peer_check.main([*args, "--set", "epochs=1", "--out", str(peers)]) == 0
    (rec_path,) = peers.glob("*.json")
    rec = json.loads(rec_path.read_text())
    assert rec["code_log"]["labels"] == [-2, -1]  # D marked, U's labels never handed over
    assert rec["patches"][0]["patch"] == "train.torch"
    assert "--code CHECKOUT" in rec["command"] and str(tmp_path) not in rec["command"]
    assert len(rec["init_hash"]) == 16 and 0 <= rec["metrics"]["overall"] <= 100
    # our record of the same run: paired by method, split, seed, profile, init and budget
    mine = {k: rec[k] for k in ("method", "split_hash", "seed", "profile", "init_hash")}
    mine.update(status="ok", method_config=rec["method_config"])
    mine["metrics"] = {**rec["metrics"], "overall": rec["metrics"]["overall"] + 5}
    ours.mkdir()
    (ours / "r.json").write_text(json.dumps(mine))
    (row,) = agreement_rows(peers, ours)
    assert row["diff overall"] == pytest.approx(5) and row["verdict"] == "differs"
    (ours / "r.json").write_text(json.dumps({**mine, "init_hash": "other"}))
    assert agreement_rows(peers, ours)[0]["verdict"] == "no paired run of ours"


def test_verdict_tolerance_and_seed_spread():
    m = lambda o, f: {"overall": o, "few": f}  # noqa: E731
    assert verdict([m(40, 10)], [m(41.9, 11.9)]) == "agrees"
    assert verdict([m(40, 10)], [m(42.1, 10)]) == "differs"
    assert verdict([m(40, 10)], [m(40, 7.5)]) == "differs"  # few-shot counts too
    # a 3-point gap agrees when one side's seeds spread over 4 points
    assert verdict([m(38, 10), m(42, 10)], [m(43, 10), m(43, 10)]) == "agrees"
