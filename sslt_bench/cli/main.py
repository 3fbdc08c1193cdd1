"""The ``sslt-bench`` command line: run, sweep, list, table, plot, splits.

Bad input raises :class:`~sslt_bench.errors.UsageError`: one line on stderr, exit code 2, no
traceback (``--debug`` shows it).
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from ..errors import UsageError
from ..registry import DATASETS, METHODS, MODELS
from ..train.run_spec import RunSpec, spec_options
from .results import compare, plot, table
from .splits import splits

_ARGS: list[str] = []  # the command line main() got (``run --nproc`` re-launches it)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Semi-supervised long-tailed recognition benchmark."""
    ctx.obj = {"debug": debug}


@cli.command()
@spec_options()
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Continue from the last checkpoint of the same run (default; --no-resume = --fresh).",
)
@click.option(
    "--nproc",
    default=1,
    show_default=True,
    help="Train on N local processes with DDP (launches torchrun; NCCL on GPUs, gloo on CPU).",
)
def run(resume: bool, nproc: int, **options) -> None:
    """Train METHOD on DATASET and print overall/many/medium/few accuracy.

    \b
    The --set keys with their values and ranges:
      sslt-bench list keys --method M --dataset D
    """  # noqa: D301 - \b is click's "do not re-wrap" marker
    from ..train.runner import Runner

    spec = RunSpec(**options)
    spec.fresh = spec.fresh or not resume
    runner = Runner(spec)  # validates before any process is launched
    if nproc < 1:
        raise UsageError(f"--nproc must be >= 1, got {nproc}")
    if nproc > 1 and "LOCAL_RANK" not in os.environ:
        from ..train.distributed import launch

        sys.exit(launch(nproc, _ARGS, runner.device))
    rec = runner.run()
    from ..train.distributed import is_main_process

    if is_main_process():
        _print_result(rec)


def _print_result(rec: dict) -> None:
    m = rec["metrics"]

    def f(v):
        return "n/a" if v is None else f"{v:.2f}"

    click.echo(
        f"{rec['method']} on {rec['dataset']} (profile {rec['profile']}, backbone "
        f"{rec['backbone']}, seed {rec['seed']}, split {rec['split_hash']})"
    )
    for entry in rec["history"].get("pseudo_labels", []):
        click.echo(
            f"  pseudo-labels [{entry['step']}]: overall {f(entry['overall'])}  many "
            f"{f(entry['many'])}  medium {f(entry['medium'])}  few {f(entry['few'])}"
        )
    for entry in rec["history"].get("evals", []):
        click.echo(
            f"  test [{entry['step']}]: overall {f(entry['overall'])}  many "
            f"{f(entry['many'])}  medium {f(entry['medium'])}  few {f(entry['few'])}"
        )
    click.echo(
        f"overall {f(m['overall'])}  many {f(m['many'])}  medium {f(m['medium'])}  "
        f"few {f(m['few'])}   ({rec['wall_time_s']:.1f} s, "
        f"{rec['train_images_per_s']:.0f} img/s)"
    )
    click.echo(f"record: {rec.get('_path', '')}")


@cli.command("list")
@click.argument("what", type=click.Choice(["methods", "datasets", "models", "keys"]))
@click.option("--method", default="erm", show_default=True, help="keys: of this method.")
@click.option("--dataset", default="digits-sslt", show_default=True, help="keys: of this data.")
@click.option("--profile", default="quick", show_default=True, help="keys: this profile's values.")
def list_(what: str, method: str, dataset: str, profile: str) -> None:
    """List registered methods, data sets or backbones, or the --set keys of a run (keys)."""
    if what == "keys":
        _list_keys(method, dataset, profile)
        return
    reg = {"methods": METHODS, "datasets": DATASETS, "models": MODELS}[what]
    names = reg.names()
    width = max(map(len, names), default=0)
    for name in names:
        click.echo(f"{name:<{width}}  {reg.summary(name)}")


def _list_keys(method: str, dataset: str, profile: str) -> None:
    """Every ``--set`` key of METHOD on DATASET: group, type, value under PROFILE, range."""
    import dataclasses

    from ..config import build_config, field_range, field_types, method_config

    builder = DATASETS.get(dataset)
    method_cls = METHODS.get(method).Config
    hints = getattr(builder, "hints", {}).get(profile)
    configs = (
        ("method", method_cls, method_config(method_cls, profile, hints)),
        ("data", builder.Params, build_config(builder.Params, "paper")),
    )
    rows = []
    for group, cls, cfg in configs:
        types_ = field_types(cls)
        for f in dataclasses.fields(cfg):
            kind = getattr(types_[f.name], "__name__", None) or str(types_[f.name])
            value = getattr(cfg, f.name)
            rows.append((f"{group}.{f.name}", kind, repr(value), field_range(cls, f.name) or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    click.echo(f"--set keys of {method} on {dataset} (profile {profile}):")
    for r in rows:
        cells = [f"{c:<{w}}" for c, w in zip(r, widths, strict=False)] + [r[3]]
        click.echo(("  " + "  ".join(cells)).rstrip())


for _command in (table, compare, plot, splits):
    cli.add_command(_command)


@cli.command()
@click.option("--methods", required=True, help="Comma-separated registered methods.")
@click.option("--datasets", required=True, help="Comma-separated registered data sets.")
@click.option("--seeds", default="0", show_default=True, help="Seeds: 0-2, 0,1,2 or both.")
@spec_options(sweep=True)
@click.option(
    "--launcher",
    default="local",
    type=click.Choice(["local", "slurm"]),
    show_default=True,
    help="local subprocesses or Slurm jobs via submitit.",
)
@click.option("--jobs", default=1, show_default=True, help="Runs at once (local: processes).")
@click.option("--slurm-partition", default=None, help="Slurm partition.")
@click.option("--gpus-per-run", default=1, show_default=True, help="Slurm: GPUs (DDP ranks).")
@click.option("--cpus-per-run", default=8, show_default=True, help="Slurm: CPUs per task.")
@click.option("--timeout", default=24 * 60, show_default=True, help="Slurm: minutes per job.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Slurm: wait for jobs.")
@click.option("--dry-run", is_flag=True, help="Only list what would run.")
def sweep(
    methods: str,
    datasets: str,
    seeds: str,
    launcher: str,
    jobs: int,
    slurm_partition: str | None,
    gpus_per_run: int,
    cpus_per_run: int,
    timeout: int,
    wait: bool,
    dry_run: bool,
    **options,
) -> None:
    """Run every (data set, method, seed) whose ok result record is not yet in --out."""
    from ..train import sweep as sw

    if jobs < 1 or gpus_per_run < 0 or timeout < 1 or cpus_per_run < 1:
        raise UsageError(
            f"--jobs ({jobs}), --cpus-per-run ({cpus_per_run}) and --timeout ({timeout}) "
            f"must be >= 1 and --gpus-per-run ({gpus_per_run}) >= 0"
        )
    base = RunSpec(**options)
    runs = sw.expand(methods, datasets, seeds, base)
    todo = [r for r in runs if r.existing is None]
    click.echo(f"sweep: {len(runs)} runs, {len(runs) - len(todo)} with a record already")
    if dry_run:
        for r in runs:
            click.echo(f"  {'skip' if r.existing else 'run '} {r.label}")
        return
    if launcher == "local":
        sw.run_local(runs, jobs, echo=click.echo)
    elif todo:
        ex = sw.slurm_executor(
            base.out / "slurm", slurm_partition, gpus_per_run, timeout, cpus_per_run, jobs
        )
        sw.run_submitit(runs, ex, wait=wait, echo=click.echo)
    click.echo(sw.summary(runs))
    if any(r.status == "failed" for r in runs):
        sys.exit(1)


#: glibc malloc settings applied to training commands (docs/scale-out.md): keep freed large
#: buffers instead of unmapping them, so tensors are not re-faulted from the kernel every step.
MALLOC_TUNING = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "68719476736"}


def _malloc_tuning_reexec(args: list[str]) -> None:
    """Re-exec ``run``/``sweep`` once with :data:`MALLOC_TUNING` (glibc Linux only).

    The variables must be set before the process starts; ``SSLT_MALLOC_TUNING=0`` disables
    this, and a user's own ``MALLOC_*`` settings are left alone.
    """
    import platform

    command = next((a for a in args if not a.startswith("-")), None)
    if (
        command not in ("run", "sweep")
        or os.environ.get("SSLT_MALLOC_TUNING", "1") == "0"
        or any(k in os.environ for k in MALLOC_TUNING)
        or not sys.platform.startswith("linux")
        or platform.libc_ver()[0] != "glibc"
    ):
        return
    env = {**os.environ, **MALLOC_TUNING}
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", "sslt_bench", *args], env)


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a Python warning as one ``warning: ...`` line (not the file/line/source form)."""
    click.echo(f"warning: {' '.join(str(message).split())}", err=True)


def _resume_hint(args: list[str]) -> str:
    """The command that resumes an interrupted ``run`` (its own arguments, minus --fresh)."""
    import shlex

    kept = [a for a in args if a not in ("--fresh", "--no-resume")]
    return "sslt-bench " + shlex.join(kept)


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors with exit code 2 unless ``--debug``."""
    import warnings

    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None:  # a real process start (console script or python -m), not a library call
        _malloc_tuning_reexec(args)
    _ARGS[:] = args
    debug = "--debug" in args
    shown = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        cli.main(args=args, prog_name="sslt-bench", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        command = next((a for a in args if not a.startswith("-")), None)
        hint = (
            f"; the last checkpoint is kept, resume with: {_resume_hint(args)}"
            if command == "run"
            else ""
        )
        click.echo(f"interrupted{hint}", err=True)
        sys.exit(130)
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        exc.show()
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # click's own (bad option value, missing argument)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        click.echo(f"error: {' '.join(exc.format_message().split())}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    finally:
        warnings.showwarning = shown


if __name__ == "__main__":
    main()
