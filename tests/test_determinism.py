"""Determinism on CPU: same command, same seeds -> bit-identical metrics; ``--deterministic``."""

import json
import os
import subprocess
import sys

import pytest
import torch

from sslt_bench.registry import METHODS
from sslt_bench.train.runner import Runner, RunSpec


def _run(method: str, out, overrides, **kw) -> dict:
    spec = RunSpec(
        method=method, overrides=tuple(overrides), out=out, device="cpu", progress=False, **kw
    )
    return Runner(spec).run()


def _trace(rec: dict) -> tuple:
    """Everything a run computed: final metrics, per-epoch losses/logs, diagnostics."""
    epochs = [{k: v for k, v in e.items() if k != "time"} for e in rec["history"]["epochs"]]
    return rec["metrics"], epochs, rec["history"]["pseudo_labels"], rec["history"]["evals"]


@pytest.fixture
def restore_determinism():
    before = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2:]


@pytest.mark.parametrize("method", METHODS.names())
def test_two_runs_bit_identical_in_process(method, tmp_path):
    smoke = [f"{k}={v}" for k, v in getattr(METHODS.get(method).Config, "SMOKE", {}).items()]
    a = _run(method, tmp_path / "a", smoke)
    b = _run(method, tmp_path / "b", smoke)
    assert a["split_hash"] == b["split_hash"]
    assert _trace(a) == _trace(b)


def test_same_command_twice_bit_identical_across_processes(tmp_path):
    """Two processes (different hash seeds, as two shells would have) -> same numbers."""
    method = "alternate" if "alternate" in METHODS else "decoupling"
    sets = ["epochs=2", "head_epochs=1", "batch_size=16"]
    if method == "alternate":
        sets += ["loops=2", "loop_epochs=1", "unlabeled_factor=2"]
    procs = []
    for i, hash_seed in enumerate(("1", "2")):
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED=hash_seed)
        cmd = [
            sys.executable,
            "-m",
            "sslt_bench",
            "run",
            "--method",
            method,
            "--device",
            "cpu",
            "--no-progress",
            "--seed",
            "3",
            "--split-seed",
            "1",
            "--out",
            str(tmp_path / str(i)),
        ]
        for s in sets:
            cmd += ["--set", s]
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    recs = []
    for i, p in enumerate(procs):
        text = p.communicate(timeout=300)[0]
        assert p.returncode == 0, text
        (f,) = (tmp_path / str(i) / "records").glob("*.json")
        recs.append(json.loads(f.read_text()))
    assert recs[0]["run_id"] == recs[1]["run_id"]
    assert _trace(recs[0]) == _trace(recs[1])
    assert recs[0]["metrics"]["per_class"] == recs[1]["metrics"]["per_class"]


def test_seed_changes_the_numbers(tmp_path):
    """A sanity check that the comparison above can fail: another seed, other losses."""
    a = _run("erm", tmp_path / "a", ["epochs=1"], seed=0)
    b = _run("erm", tmp_path / "b", ["epochs=1"], seed=1)
    assert _trace(a)[1] != _trace(b)[1]


def test_deterministic_flag_sets_torch_flags(tmp_path, restore_determinism):
    torch.use_deterministic_algorithms(False)
    runner = Runner(RunSpec(out=tmp_path, device="cpu", deterministic=True))
    runner._seed_all(0)
    assert torch.are_deterministic_algorithms_enabled()
    # an op without a deterministic CUDA kernel warns (naming it) instead of aborting the run
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") in (":4096:8", ":16:8")


def test_deterministic_run_on_cpu_matches_default(tmp_path, restore_determinism):
    torch.use_deterministic_algorithms(False)
    plain = _run("decoupling", tmp_path / "a", ["epochs=1", "head_epochs=1"])
    strict = _run("decoupling", tmp_path / "b", ["epochs=1", "head_epochs=1"], deterministic=True)
    assert strict["deterministic"] is True and plain["deterministic"] is False
    assert _trace(strict) == _trace(plain)
