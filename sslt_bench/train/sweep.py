"""Sweeps: expand a (data set x method x seed) grid and run what is missing.

A run is skipped when its result record with status ``ok`` already exists in ``--out`` (matched
on data set, method, profile, seed, split seed and the record's config hash, which covers the
method config, data parameters, backbone and profile), so re-running the same sweep after
failures, interrupts or Slurm preemptions only does the missing runs; an interrupted run resumes
from its checkpoint (the runner's own resume).

Launchers:

* ``local``: ``--jobs N`` parallel ``python -m sslt_bench run ... --no-progress`` subprocesses,
  each with ``cores // N`` threads and its own log in ``<out>/logs/``; on a machine with GPUs
  the parallel slots are spread over the visible GPUs (``CUDA_VISIBLE_DEVICES``).
* ``slurm``: one submitit job per run (``pip install 'sslt-bench[slurm]'``); with
  ``--gpus-per-run G > 1`` a job has G tasks that train one run with DDP
  (:mod:`sslt_bench.train.distributed`). On preemption or timeout submitit requeues the job, which
  resumes from the run's last checkpoint.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..registry import DATASETS, METHODS
from .run_spec import RunSpec, spec_argv
from .runner import Runner


def parse_seeds(text: str) -> list[int]:
    """``"0-2"`` -> [0, 1, 2]; ``"0,3,5"`` and mixtures like ``"0-2,7"`` work too."""
    seeds: list[int] = []
    try:
        for part in filter(None, (p.strip() for p in text.split(","))):
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds.extend(range(a, b + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise UsageError(
            f"bad --seeds {text!r}: expected a range like 0-2, a list like 0,1,2, or both"
        ) from None
    if not seeds:
        raise UsageError(f"bad --seeds {text!r}: no seeds given")
    return sorted(set(seeds))


def _names(text: str, what: str, registry) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"--{what} is empty; choose from: {', '.join(registry.names())}")
    for n in names:
        registry.get(n)  # raises a UsageError naming the valid choices
    return list(dict.fromkeys(names))


@dataclass
class PlannedRun:
    """One grid point: its spec, a short label and whether a record already exists."""

    spec: RunSpec
    label: str
    existing: Path | None = None
    log: Path | None = None
    status: str = "pending"
    detail: str = ""
    argv: list[str] = field(default_factory=list)


def find_record(runner: Runner) -> Path | None:
    """The ``ok`` result record of this run in its ``--out``, or ``None``."""
    spec = runner.spec
    digest = runner.config_digest()
    for path in sorted((Path(spec.out) / "records").glob(f"{runner.run_prefix()}*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (
            isinstance(rec, dict)
            and rec.get("status") == "ok"
            and rec.get("config_hash") == digest
            and rec.get("split_seed") == spec.split_seed
        ):
            return path
    return None


def expand(methods: str, datasets: str, seeds: str, base: RunSpec) -> list[PlannedRun]:
    """The grid as planned runs (validates every run's overrides before anything starts)."""
    runs = []
    for d in _names(datasets, "datasets", DATASETS):
        for m in _names(methods, "methods", METHODS):
            for s in parse_seeds(seeds):
                spec = replace(base, method=m, dataset=d, seed=s, progress=False)
                try:
                    runner = Runner(spec)
                except UsageError as exc:
                    raise UsageError(f"{d} / {m} / seed {s}: {exc}") from None
                label = f"{d}__{m}__{spec.profile}__seed{s}"
                run = PlannedRun(spec, label, existing=find_record(runner))
                run.log = Path(spec.out) / "logs" / f"{label}.log"
                run.argv = spec_argv(spec)
                runs.append(run)
    return runs


def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def visible_gpus() -> list[str]:
    """CUDA devices local runs are spread over (one per parallel slot, round robin)."""
    import torch

    if not torch.cuda.is_available():
        return []
    vis = os.environ.get("CUDA_VISIBLE_DEVICES")
    return vis.split(",") if vis else [str(i) for i in range(torch.cuda.device_count())]


def _track(procs: dict, lock: threading.Lock, i: int, proc: subprocess.Popen | None) -> None:
    """Register (``proc``) or forget (``None``) run ``i``'s process for an interrupt."""
    with lock:
        if proc is None:
            procs.pop(i, None)
        else:
            procs[i] = proc


def _run_one(run: PlannedRun, env: dict[str, str], track: Callable) -> PlannedRun:
    """Run ``run`` as a subprocess logging to ``run.log``; set its status and detail."""
    run.log.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with open(run.log, "w") as fh:
        fh.write("$ sslt-bench " + " ".join(run.argv) + "\n")
        fh.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "sslt_bench", *run.argv],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
        track(proc)
        rc = proc.wait()
        track(None)
    if rc == 0:
        run.status, run.detail = "done", f"{time.time() - t0:.0f} s"
    else:
        run.status, run.detail = "failed", f"exit code {rc}"
    return run


def run_local(runs: Sequence[PlannedRun], jobs: int, echo: Callable[[str], None] = print) -> None:
    """Run the pending runs as ``jobs`` parallel subprocesses; sets each run's status."""
    threads = max(1, cpu_count() // jobs)
    env = dict(os.environ)
    if jobs > 1 or "OMP_NUM_THREADS" not in env:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    procs: dict[int, subprocess.Popen] = {}
    lock = threading.Lock()
    stopping = threading.Event()
    gpus = visible_gpus() if jobs > 1 else []
    slots: queue.SimpleQueue[int] = queue.SimpleQueue()
    for s in range(jobs):
        slots.put(s)

    def one(i: int, run: PlannedRun) -> PlannedRun:
        slot = slots.get()
        try:
            if stopping.is_set():
                run.status, run.detail = "failed", "not started (interrupted)"
                return run
            gpu = {"CUDA_VISIBLE_DEVICES": gpus[slot % len(gpus)]} if gpus else {}
            return _run_one(run, {**env, **gpu}, lambda p: _track(procs, lock, i, p))
        finally:
            slots.put(slot)

    pending = [r for r in runs if r.existing is None]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, i, r) for i, r in enumerate(pending)]
        try:
            for n, fut in enumerate(as_completed(futures), 1):
                run = fut.result()
                echo(f"[{n}/{len(pending)}] {run.status:<6} {run.label} ({run.detail})")
        except KeyboardInterrupt:
            stopping.set()
            with lock:
                for proc in procs.values():
                    proc.terminate()
            raise


class SubmititTask:
    """The callable a submitit job runs: one run, resumed from its checkpoint on requeue.

    With several tasks per job (``--gpus-per-run`` > 1), each task exports the torch.distributed
    environment from Slurm's variables and the run trains with DDP.
    """

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec

    def __call__(self) -> dict[str, Any]:
        """Train (or resume) the run; returns its metrics."""
        import submitit

        env = submitit.JobEnvironment()
        if env.num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        rec = Runner(self.spec).run()
        return {"metrics": rec.get("metrics"), "record": rec.get("_path")}

    def checkpoint(self) -> Any:
        """Requeue with the same run on preemption/timeout; it resumes from its checkpoint."""
        import submitit

        return submitit.helpers.DelayedSubmission(SubmititTask(self.spec))


def slurm_executor(
    folder: Path, partition: str | None, gpus: int, timeout_min: int, cpus: int, jobs: int
):
    """A submitit Slurm executor for one run per job (G tasks and G GPUs per job)."""
    try:
        import submitit
    except ImportError:
        raise UsageError(
            "--launcher slurm needs submitit: pip install 'sslt-bench[slurm]'"
        ) from None
    ex = submitit.AutoExecutor(folder=str(folder), cluster="slurm")
    params: dict[str, Any] = {
        "timeout_min": timeout_min,
        "nodes": 1,
        "tasks_per_node": max(gpus, 1),
        "gpus_per_node": gpus,
        "cpus_per_task": cpus,
        "name": "sslt-bench",
        "slurm_array_parallelism": jobs,
    }
    if partition:
        params["slurm_partition"] = partition
    ex.update_parameters(**params)
    return ex


def run_submitit(
    runs: Sequence[PlannedRun],
    executor,
    wait: bool = True,
    echo: Callable[[str], None] = print,
) -> None:
    """Submit the pending runs (one job each) with a submitit executor; optionally wait."""
    pending = [r for r in runs if r.existing is None]
    jobs = []
    for run in pending:
        job = executor.submit(SubmititTask(run.spec))
        run.log = Path(job.paths.stdout)
        jobs.append((run, job))
        echo(f"submitted {run.label}: job {job.job_id} (log {run.log})")
    if not wait:
        for run, _ in jobs:
            run.status, run.detail = "submitted", "re-run the sweep later to see what is missing"
        return
    for n, (run, job) in enumerate(jobs, 1):
        try:
            job.result()
            run.status, run.detail = "done", f"job {job.job_id}"
        except Exception as exc:  # noqa: BLE001 - a failed job is reported, not fatal
            first = str(exc).strip().splitlines()
            run.status, run.detail = "failed", first[-1] if first else type(exc).__name__
        echo(f"[{n}/{len(jobs)}] {run.status:<6} {run.label} ({run.detail})")


def summary(runs: Sequence[PlannedRun]) -> str:
    """One line of counts, then one line per failed run with its log."""
    count = {k: 0 for k in ("done", "skipped", "failed", "submitted")}
    lines = []
    for r in runs:
        key = "skipped" if r.existing is not None else r.status
        count[key] = count.get(key, 0) + 1
        if key == "failed":
            lines.append(f"  FAILED {r.label}: {r.detail}; log {r.log}")
    head = f"sweep: {len(runs)} runs: " + ", ".join(f"{v} {k}" for k, v in count.items() if v)
    return "\n".join([head, *lines])
