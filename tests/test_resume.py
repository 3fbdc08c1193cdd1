"""Checkpoints and resume: SIGKILL a real training subprocess, re-run it, compare to a clean run.

The kill is real (``os.kill(pid, SIGKILL)`` of ``python -m sslt_bench run``), never mocked. A
run is slowed (small batches, enough epochs) so the kill lands inside an epoch of the last
multi-epoch ``Train`` step of the method's plan, right after that step's first checkpoint.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sslt_bench.methods.base import DataInfo
from sslt_bench.train.checkpoint import load_checkpoint, save_checkpoint
from sslt_bench.train.runner import Runner, RunSpec
from sslt_bench.train.stages import Train

# Per method: overrides that make a CPU run take a few seconds with a long final Train step.
RESUME_SETTINGS = {
    "erm": ["epochs=4", "batch_size=4"],
    "decoupling": ["epochs=4", "batch_size=4", "head_epochs=2"],
    # the kill lands in loop 2's stage 2: the KL memory carried over from loop 1 must survive
    "alternate": [
        "epochs=2",
        "head_epochs=1",
        "loops=2",
        "loop_epochs=2",
        "batch_size=8",
        "unlabeled_factor=2",
    ],
}


def _env(hash_seed: str) -> dict[str, str]:
    """One thread count for all processes; each its own hash seed, as separate shells have."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED=hash_seed)
    return env


def _cmd(method: str, out: Path, overrides: list[str]) -> list[str]:
    args = [sys.executable, "-m", "sslt_bench", "run", "--method", method, "--device", "cpu"]
    args += ["--out", str(out), "--no-progress"]
    for o in overrides:
        args += ["--set", o]
    return args


def _kill_target(method: str, overrides: list[str], tmp: Path) -> tuple[int, int]:
    """(plan index, epochs) of the last Train step with >= 2 epochs: where the kill lands."""
    runner = Runner(RunSpec(method=method, overrides=tuple(overrides), out=tmp, device="cpu"))
    split = runner._load_data().split
    info = DataInfo(
        split.num_classes,
        split.labeled_counts,
        len(split.labeled_idx),
        len(split.unlabeled_idx),
        1,
        8,
    )
    plan = runner.method_cls(runner.cfg, info).plan()
    trains = [(i, s.epochs) for i, s in enumerate(plan) if isinstance(s, Train) and s.epochs >= 2]
    assert trains, f"{method}: no Train step with >= 2 epochs under {overrides}"
    return trains[-1]


def _stamp(ckpt_dir: Path) -> tuple | None:
    try:
        st = next(f for f in ckpt_dir.glob("*.pt") if not f.name.endswith(".prev.pt")).stat()
    except (StopIteration, FileNotFoundError):
        return None
    return st.st_ino, st.st_mtime_ns


def _progress(ckpt_dir: Path) -> dict | None:
    for f in ckpt_dir.glob("*.pt"):
        if f.name.endswith(".prev.pt"):
            continue
        try:
            return torch.load(f, map_location="cpu", weights_only=True)["progress"]
        except Exception:  # noqa: BLE001 - being replaced right now: poll again
            return None
    return None


class _Payload:
    """An arbitrary object: loading it would need full unpickling."""


def _record(out: Path) -> dict:
    files = list((out / "records").glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


def _losses(rec: dict) -> list:
    return [(e["step"], e["epoch"], e["loss"]) for e in rec["history"]["epochs"]]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["erm", "decoupling", "alternate"])
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted(method, tmp_path):
    overrides = RESUME_SETTINGS[method]
    target, epochs = _kill_target(method, overrides, tmp_path / "probe")
    ref_out, out = tmp_path / "ref", tmp_path / "killed"
    ref = subprocess.Popen(
        _cmd(method, ref_out, overrides),
        env=_env("1"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    victim = subprocess.Popen(
        _cmd(method, out, overrides),
        env=_env("2"),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, seen = time.time() + 600, None
        while time.time() < deadline and victim.poll() is None:
            stamp = _stamp(out / "checkpoints")
            if stamp is not None and stamp != seen:  # a new checkpoint: where is the run?
                p = _progress(out / "checkpoints")
                seen = stamp if p is not None else None  # None: being replaced, look again
                if p is not None and (p["step"], p["epoch"]) >= (target, 1):
                    break
            time.sleep(0.005)
        assert victim.poll() is None, "the run ended before it could be killed; make it longer"
        time.sleep(0.02)  # into the next epoch's batches
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(30) == -signal.SIGKILL
    finally:
        if victim.poll() is None:
            victim.kill()
    killed_at = _progress(out / "checkpoints")
    assert killed_at["step"] == target and 1 <= killed_at["epoch"] < epochs, killed_at
    assert not (out / "records").exists() or not list((out / "records").glob("*.json"))

    resumed = subprocess.run(
        _cmd(method, out, overrides),
        env=_env("3"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    ref_text = ref.communicate(timeout=300)[0]
    assert ref.returncode == 0, ref_text

    a, b = _record(ref_out), _record(out)
    assert a["resumed_from"] is None
    assert b["resumed_from"]["step"] == target and b["resumed_from"]["epoch"] >= 1
    assert b["metrics"] == a["metrics"]  # overall, many/medium/few and per class, bit for bit
    assert b["metrics"]["per_class"] == a["metrics"]["per_class"]
    assert _losses(b) == _losses(a)
    assert b["history"]["pseudo_labels"] == a["history"]["pseudo_labels"]
    assert b["history"]["evals"] == a["history"]["evals"]


def test_checkpoint_every_epoch_and_every_stage(tmp_path, monkeypatch):
    import sslt_bench.train.runner as runner_mod

    seen = []

    def spy(path, payload):
        seen.append((payload["progress"]["step"], payload["progress"]["epoch"]))
        save_checkpoint(path, payload)

    monkeypatch.setattr(runner_mod, "save_checkpoint", spy)
    spec = RunSpec(
        method="decoupling",
        overrides=("epochs=3", "head_epochs=1"),
        out=tmp_path,
        device="cpu",
        progress=False,
    )
    Runner(spec).run()
    # after each of the 3 embedding epochs, at the stage boundary, after the classifier's one
    # epoch (a head on cached features is an ordinary step of the loop), then at the end
    assert seen == [(0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (2, 0)]
    (ckpt,) = [p for p in (tmp_path / "checkpoints").glob("*.pt") if ".prev" not in p.name]
    payload = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert set(payload) >= {"identity", "model", "optimizer", "state", "rng", "progress"}
    assert set(payload["rng"]) >= {"generator", "torch", "numpy", "python"}
    prev = torch.load(ckpt.with_suffix(".prev.pt"), map_location="cpu", weights_only=True)
    assert prev["progress"]["step"] == 1  # the last good one before it is kept


def test_rerun_of_finished_run_gives_same_record(tmp_path):
    spec = RunSpec(
        method="erm", overrides=("epochs=2",), out=tmp_path, device="cpu", progress=False
    )
    first = Runner(spec).run()
    again = Runner(spec).run()
    assert again["metrics"] == first["metrics"] and again["resumed_from"]["step"] == 1


@pytest.fixture(scope="module")
def erm_checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("erm_ckpt")
    spec = RunSpec(method="erm", overrides=("epochs=1",), out=out, device="cpu", progress=False)
    Runner(spec).run()
    (ckpt,) = [p for p in (out / "checkpoints").glob("*.pt") if ".prev" not in p.name]
    return ckpt


def _ckpt_of(out: Path) -> Path:
    (ckpt,) = [p for p in (out / "checkpoints").glob("*.pt") if ".prev" not in p.name]
    return ckpt


@pytest.mark.parametrize(
    "args, differs, theirs, ours",
    [
        # decoupling's config has its cRT fields on top of erm's: config differs too
        (["--method", "decoupling"], "method, config", "'erm'", "'decoupling'"),
        (["--set", "lr=0.05"], "config", None, None),
        (["--split-seed", "1"], "split_hash", None, None),
    ],
)
def test_checkpoint_of_another_run_is_refused(
    cli_run, tmp_path, erm_checkpoint, args, differs, theirs, ours
):
    out = tmp_path / "out"
    common = ["run", "--out", str(out), "--no-progress", "--device", "cpu", "--set", "epochs=1"]
    cli_run(*common, *args)
    target = _ckpt_of(out)
    shutil.copy(erm_checkpoint, target)  # e.g. a checkpoint copied by hand into this run's place
    target.with_suffix(".prev.pt").unlink(missing_ok=True)
    code, text = cli_run(*common, *args, expect=2)
    assert "different run" in text and f"{differs} differ" in text, text
    if theirs:
        assert f"{theirs} vs {ours}" in text
    assert "Traceback" not in text and "--fresh" in text


def test_checkpoint_with_other_dataset_identity_is_refused(cli_run, tmp_path):
    common = ["run", "--out", str(tmp_path), "--no-progress", "--device", "cpu"]
    cli_run(*common, "--set", "epochs=1")
    ckpt = _ckpt_of(tmp_path)
    payload = torch.load(ckpt, weights_only=True)
    payload["identity"]["dataset"] = "cifar10-sslt"
    torch.save(payload, ckpt)
    code, text = cli_run(*common, "--set", "epochs=1", expect=2)
    assert "dataset differ" in text and "'cifar10-sslt' vs 'digits-sslt'" in text


def test_torn_checkpoint_falls_back_to_previous(tmp_path):
    path = tmp_path / "run.pt"
    ident = {"method": "erm"}
    save_checkpoint(path, {"identity": ident, "progress": {"epoch": 1}})
    save_checkpoint(path, {"identity": ident, "progress": {"epoch": 2}})
    assert load_checkpoint(path, ident)["progress"]["epoch"] == 2
    path.write_bytes(path.read_bytes()[:50])  # torn (e.g. a copy interrupted by a crash)
    with pytest.warns(UserWarning, match="run.pt"):
        assert load_checkpoint(path, ident)["progress"]["epoch"] == 1
    path.unlink()  # killed between moving the old one aside and writing the new one
    assert load_checkpoint(path, ident)["progress"]["epoch"] == 1


def test_checkpoint_needing_pickle_is_not_executed(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"identity": {"method": "erm"}, "x": _Payload()}, path)
    with pytest.warns(UserWarning, match="evil.pt"):
        assert load_checkpoint(path, {"method": "erm"}) is None
