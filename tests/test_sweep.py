"""Sweeps: grid expansion, skip-existing, the local launcher for real, submitit's local executor."""

import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from sslt_bench.errors import UsageError
from sslt_bench.train import sweep as sw
from sslt_bench.train.runner import RunSpec

TINY = ("--set", "epochs=1", "--set", "head_epochs=1")


def test_parse_seeds():
    assert sw.parse_seeds("0-2") == [0, 1, 2]
    assert sw.parse_seeds("3,1,1") == [1, 3]
    assert sw.parse_seeds("0-1,5") == [0, 1, 5]
    for bad in ("", "a", "2-0", "1-x"):
        with pytest.raises(UsageError, match="--seeds"):
            sw.parse_seeds(bad)


def test_expand_validates(tmp_path):
    base = RunSpec(out=tmp_path, device="cpu", overrides=("epochs=1",))
    runs = sw.expand("erm,decoupling", "digits-sslt", "0-1", base)
    assert [r.label for r in runs] == [
        "digits-sslt__erm__quick__seed0",
        "digits-sslt__erm__quick__seed1",
        "digits-sslt__decoupling__quick__seed0",
        "digits-sslt__decoupling__quick__seed1",
    ]
    assert all(r.existing is None for r in runs)
    assert runs[1].argv[:6] == ["run", "--method", "erm", "--dataset", "digits-sslt", "--seed"]
    with pytest.raises(UsageError, match="nosuch"):
        sw.expand("nosuch", "digits-sslt", "0", base)
    with pytest.raises(UsageError, match="seed 0"):
        sw.expand("erm", "digits-sslt", "0", replace(base, overrides=("no_such_key=1",)))


def test_local_sweep_runs_skips_and_reports_failures(tmp_path, cli_run):
    out = tmp_path / "out"
    args = ("sweep", "--methods", "erm", "--datasets", "digits-sslt", "--out", out, *TINY)
    args += ("--device", "cpu")
    _, text = cli_run(*args, "--seeds", "0-1", "--jobs", "2")
    assert "sweep: 2 runs: 2 done" in text, text
    records = sorted((out / "records").glob("*.json"))
    assert len(records) == 2
    assert {json.loads(p.read_text())["seed"] for p in records} == {0, 1}
    assert (out / "logs" / "digits-sslt__erm__quick__seed0.log").read_text().count("overall") == 1

    # Everything there: nothing starts. A different config or seed is a different run.
    _, text = cli_run(*args, "--seeds", "0-1")
    assert "sweep: 2 runs: 2 skipped" in text
    _, text = cli_run(*args, "--seeds", "0-1", "--set", "lr=0.05", "--dry-run")
    assert "0 with a record already" in text
    _, text = cli_run(*args, "--seeds", "0-2", "--dry-run")
    assert "2 with a record already" in text and "run  digits-sslt__erm__quick__seed2" in text

    # A record with status failed does not count: only that run would be repeated.
    rec = json.loads(records[1].read_text())
    rec["status"] = "failed"
    records[1].write_text(json.dumps(rec))
    _, text = cli_run(*args, "--seeds", "0-1", "--dry-run")
    assert "1 with a record already" in text and text.count("run  digits-sslt__erm") == 1


def test_failed_run_is_reported_with_its_log(tmp_path):
    base = RunSpec(out=tmp_path, device="cpu")
    (run,) = sw.expand("erm", "digits-sslt", "0", base)
    run.argv = ["run", "--method", "erm", "--set", "epochs=-3", "--out", str(tmp_path)]
    sw.run_local([run], jobs=1, echo=lambda s: None)
    assert run.status == "failed" and run.detail == "exit code 2"
    text = sw.summary([run])
    assert "1 failed" in text and str(run.log) in text
    assert "epochs must be >= 1" in Path(run.log).read_text()


def test_bad_sweep_options(cli_run):
    _, text = cli_run("sweep", "--methods", "erm", "--datasets", "digits-sslt", "--jobs", "0",
                      expect=2)  # fmt: skip
    assert "--jobs (0)" in text


def test_submitit_local_executor(tmp_path):
    submitit = pytest.importorskip("submitit")
    base = RunSpec(out=tmp_path / "out", device="cpu", overrides=("epochs=1", "head_epochs=1"))
    runs = sw.expand("erm", "digits-sslt", "0", base)
    ex = submitit.LocalExecutor(folder=str(tmp_path / "jobs"))
    ex.update_parameters(timeout_min=5)
    ex.update_parameters(python=sys.executable)
    sw.run_submitit(runs, ex, echo=lambda s: None)
    assert runs[0].status == "done", (runs[0].detail, Path(runs[0].log).read_text()[-2000:])
    again = sw.expand("erm", "digits-sslt", "0", base)
    assert again[0].existing is not None and again[0].existing.exists()
    # Requeue on preemption re-submits the same run (which then resumes from its checkpoint).
    task = sw.SubmititTask(runs[0].spec)
    delayed = task.checkpoint()
    assert delayed.function.spec == runs[0].spec


def test_malloc_tuning_reexec(monkeypatch):
    from sslt_bench.cli import main as cli

    calls = []
    monkeypatch.setattr(cli.os, "execve", lambda exe, argv, env: calls.append((argv, env)))
    for key in (*cli.MALLOC_TUNING, "SSLT_MALLOC_TUNING"):
        monkeypatch.delenv(key, raising=False)
    cli._malloc_tuning_reexec(["list", "methods"])  # not a training command
    assert calls == []
    cli._malloc_tuning_reexec(["--debug", "run", "--method", "erm"])
    if calls:  # glibc Linux
        argv, env = calls.pop()
        assert argv[1:] == ["-m", "sslt_bench", "--debug", "run", "--method", "erm"]
        assert all(env[k] == v for k, v in cli.MALLOC_TUNING.items())
    monkeypatch.setenv("SSLT_MALLOC_TUNING", "0")  # switched off
    cli._malloc_tuning_reexec(["sweep"])
    monkeypatch.delenv("SSLT_MALLOC_TUNING")
    monkeypatch.setenv("MALLOC_MMAP_MAX_", "65536")  # the user's own setting wins
    cli._malloc_tuning_reexec(["run"])
    assert calls == []


def test_every_run_option_is_defined_once_and_round_trips():
    """spec -> the `run` arguments a sweep launches -> the `run` parser -> the same spec."""
    import dataclasses

    from sslt_bench.cli.main import run as run_command
    from sslt_bench.train.run_spec import spec_argv

    spec = RunSpec(
        method="fixmatch",
        dataset="cifar10-lt",
        seed=3,
        split_seed=2,
        profile="paper",
        overrides=("epochs=2", "data.unlabeled_dist=reversed"),
        device="cpu",
        out=Path("elsewhere"),
        data_root="some/root",
        workers=2,
        amp="bf16",
        split_file="s.json",
        fresh=True,
        eval_every=5,
        diag_every_steps=7,
        diag_subsample=100,
        trajectory_every=0,
        deterministic=True,
        progress=False,
        channels_last=False,
        compile=True,
    )
    defaults = RunSpec()
    changed = [
        f.name
        for f in dataclasses.fields(RunSpec)
        if getattr(spec, f.name) == getattr(defaults, f.name)
    ]
    assert changed == [], changed  # every field differs from its default: each one is tested
    argv = spec_argv(spec)
    assert argv[0] == "run"
    ctx = run_command.make_context("run", argv[1:])
    params = {k: v for k, v in ctx.params.items() if k not in ("resume", "nproc")}
    assert RunSpec(**params) == spec
    # and with every default, the parser gives the default spec
    ctx = run_command.make_context("run", spec_argv(defaults)[1:])
    params = {k: v for k, v in ctx.params.items() if k not in ("resume", "nproc")}
    assert RunSpec(**params) == defaults
