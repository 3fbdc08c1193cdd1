"""The ``sslt-bench`` command line: run, sweep, list, table, plot, splits.

Bad input raises :class:`~sslt_bench.errors.UsageError`: one line on stderr, exit code 2, no
traceback (``--debug`` shows it).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
import warnings
from pathlib import Path

import click

from .errors import UsageError
from .registry import DATASETS, METHODS, MODELS

RESULTS = Path("results")
_ARGS: list[str] = []  # the command line main() got (``run --nproc`` re-launches it)


def _run_spec(**kw):
    from .runner import RunSpec

    return RunSpec(**kw)


#: Options shared by ``run`` and ``sweep`` (one definition each).
_RUN_OPTIONS = [
    click.option(
        "--split-seed",
        default=0,
        show_default=True,
        type=int,
        help="Split seed (fixed published splits use 0).",
    ),
    click.option("--profile", default="quick", show_default=True, help="quick (CPU) or paper."),
    click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a method or data set setting (repeatable).",
    ),
    click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda."),
    click.option("--out", default=str(RESULTS), show_default=True, help="Results folder."),
    click.option("--data-root", default=None, help="Where data sets live (or SSLT_DATA)."),
    click.option("--workers", default=0, show_default=True, help="DataLoader workers (file data)."),
    click.option(
        "--amp",
        default="auto",
        type=click.Choice(["auto", "none", "bf16", "fp16"]),
        show_default=True,
        help="Mixed precision on CUDA (ignored on CPU).",
    ),
]


def _with_options(options: list):
    """A decorator applying a list of click options in order."""

    def decorate(fn):
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return decorate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Semi-supervised long-tailed recognition benchmark."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.option("--method", default="erm", show_default=True, help="Registered method.")
@click.option("--dataset", default="digits-sslt", show_default=True, help="Registered data set.")
@click.option("--seed", default=0, show_default=True, type=int, help="Training seed.")
@_with_options(_RUN_OPTIONS)
@click.option("--split-file", default=None, help="Run on an exported split (JSON).")
@click.option("--fresh", is_flag=True, help="Ignore an existing checkpoint and start over.")
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Continue from the last checkpoint of the same run (default).",
)
@click.option(
    "--eval-every",
    default=0,
    show_default=True,
    help="Also evaluate every N epochs for learning curves (never for selection).",
)
@click.option("--deterministic", is_flag=True, help="Deterministic algorithms (CUDA: slower).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option(
    "--channels-last/--no-channels-last",
    default=None,
    help="channels_last memory format (default: on for CUDA, off on CPU).",
)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the backbone.")
@click.option(
    "--nproc",
    default=1,
    show_default=True,
    help="Train on N local processes with DDP (launches torchrun; NCCL on GPUs, gloo on CPU).",
)
def run(
    method,
    dataset,
    seed,
    split_seed,
    profile,
    overrides,
    device,
    out,
    data_root,
    split_file,
    fresh,
    resume,
    workers,
    amp,
    eval_every,
    deterministic,
    no_progress,
    channels_last,
    compile_,
    nproc,
):
    """Train METHOD on DATASET and print overall/many/medium/few accuracy."""
    from .runner import Runner

    spec = _run_spec(
        method=method,
        dataset=dataset,
        seed=seed,
        split_seed=split_seed,
        profile=profile,
        overrides=tuple(overrides),
        device=device,
        out=Path(out),
        data_root=data_root,
        split_file=split_file,
        fresh=fresh or not resume,
        progress=not no_progress,
        workers=workers,
        amp=amp,
        eval_every=eval_every,
        deterministic=deterministic,
        channels_last=channels_last,
        compile=compile_,
    )
    runner = Runner(spec)  # validates before any process is launched
    if nproc < 1:
        raise UsageError(f"--nproc must be >= 1, got {nproc}")
    if nproc > 1 and "LOCAL_RANK" not in os.environ:
        from .distributed import launch

        sys.exit(launch(nproc, _ARGS, runner.device))
    rec = runner.run()
    from .distributed import is_main_process

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
@click.argument("what", type=click.Choice(["methods", "datasets", "models"]))
def list_(what: str) -> None:
    """List registered methods, data sets or backbones with a one-line summary."""
    reg = {"methods": METHODS, "datasets": DATASETS, "models": MODELS}[what]
    names = reg.names()
    width = max(map(len, names), default=0)
    for name in names:
        click.echo(f"{name:<{width}}  {reg.summary(name)}")


def _load(folders: tuple[str, ...]) -> list[dict]:
    from .records import load_records

    dirs = [Path(f) for f in folders] or [RESULTS, Path("leaderboards")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = load_records(dirs)
    for w in caught:  # e.g. "skipping unreadable record <file>: ..." as one plain line
        click.echo(f"warning: {w.message}", err=True)
    if not records:
        raise UsageError(
            "no result records under "
            + ", ".join(map(str, dirs))
            + "; run 'sslt-bench run' first or pass --results DIR"
        )
    return records


def _results_opt(fn):
    return click.option(
        "--results",
        "folders",
        multiple=True,
        help="Folder of result records (repeatable; default ./results and ./leaderboards).",
    )(fn)


@cli.command()
@_results_opt
@click.option(
    "--format",
    "fmt_name",
    default="terminal",
    show_default=True,
    type=click.Choice(["terminal", "markdown", "csv", "latex", "html"]),
)
@click.option("--dataset", multiple=True, help="Only this data set (repeatable).")
@click.option("--method", multiple=True, help="Only this method (repeatable).")
@click.option("--profile", multiple=True, help="Only this profile (repeatable).")
@click.option("--backbone", multiple=True, help="Only this backbone (repeatable).")
@click.option(
    "--by",
    default="config",
    show_default=True,
    type=click.Choice(["config", "seed"]),
    help="config: mean ± std over seeds; seed: one row per run.",
)
@click.option("--with-paper", is_flag=True, help="Add the paper's quoted numbers (marked).")
@click.option("--output", "-o", default=None, help="Write to this file instead of stdout.")
def table(folders, fmt_name, dataset, method, profile, backbone, by, with_paper, output) -> None:
    """Rows: methods; columns: data sets (overall/many/medium/few, mean ± std over seeds)."""
    from .records import atomic_write_text
    from .render import render
    from .table import build_board, filter_records

    records = filter_records(
        _load(folders), dataset=dataset, method=method, profile=profile, backbone=backbone
    )
    board = build_board(
        records, by_seed=by == "seed", with_paper=with_paper, paper_methods=set(method) or None
    )
    text = render(fmt_name, board, records)
    if output:
        atomic_write_text(Path(output), text)
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


@cli.group()
def plot() -> None:
    """Plots of result records (PNG and SVG)."""


def _plot_opts(fn):
    fn = click.option(
        "--output", "-o", default=None, help="Output path (.png/.svg added; both are written)."
    )(fn)
    fn = click.option("--method", multiple=True, help="Only this method (repeatable).")(fn)
    fn = click.option("--dataset", default=None, help="Data set (needed if several).")(fn)
    return _results_opt(fn)


def _plot(kind: str, folders, dataset, method, output) -> None:
    from . import plots
    from .table import filter_records

    records = filter_records(_load(folders), method=method)
    for path in plots.make(kind, records, dataset, output):
        click.echo(f"wrote {path}")


@plot.command("per-class")
@_plot_opts
def plot_per_class(folders, dataset, method, output) -> None:
    """Test accuracy per class against its labeled count (log x), many/medium/few shaded."""
    _plot("per-class", folders, dataset, method, output)


@plot.command("pseudo-labels")
@_plot_opts
def plot_pseudo_labels(folders, dataset, method, output) -> None:
    """Pseudo-label accuracy on U per loop, per split (methods that record it)."""
    _plot("pseudo-labels", folders, dataset, method, output)


@plot.command("curves")
@_plot_opts
def plot_curves(folders, dataset, method, output) -> None:
    """Test accuracy along training (runs made with --eval-every, or Evaluate stages)."""
    _plot("curves", folders, dataset, method, output)


@cli.group()
def splits() -> None:
    """Inspect and export splits."""


def _build_split(dataset, seed, overrides, data_root):
    import os

    from .config import build_config, split_overrides

    builder = DATASETS.get(dataset)
    routed = split_overrides(list(overrides), {"data": builder.Params})
    params = build_config(builder.Params, "paper", routed["data"])
    root = data_root or os.environ.get("SSLT_DATA")
    return builder.build(params, seed, Path(root) if root else None).split


_split_opts = [
    click.option("--dataset", default="digits-sslt", show_default=True),
    click.option("--seed", default=0, show_default=True, type=int, help="Split seed."),
    click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE"),
    click.option("--data-root", default=None),
]


def _show_planned_counts(dataset, seed, overrides):
    from .config import build_config, split_overrides

    builder = DATASETS.get(dataset)
    planned = getattr(builder, "planned_counts", None)
    if planned is None:
        raise UsageError(
            f"data set {dataset!r} cannot show counts without its data; "
            "drop --counts-only and pass --data-root"
        )
    routed = split_overrides(list(overrides), {"data": builder.Params})
    info = planned(build_config(builder.Params, "paper", routed["data"]), seed)
    lab, unl = info["labeled_counts"], info["unlabeled_counts"]
    click.echo(
        f"{dataset} seed {seed}: counts only (no images read, no split hash), "
        f"{info['num_classes']} classes, {sum(lab)} labeled, {sum(unl)} unlabeled"
    )
    click.echo(f"labeled per class: max {max(lab)}, min {min(lab)}")
    click.echo(
        "split sizes (classes): " + ", ".join(f"{k} {v}" for k, v in info["split_sizes"].items())
    )


@splits.command("show")
@_with_options(_split_opts)
@click.option(
    "--counts-only",
    is_flag=True,
    help="Only the planned counts, without reading the data (imagenet-sslt).",
)
def splits_show(dataset, seed, overrides, data_root, counts_only):
    """Per-class labeled/unlabeled counts, many/medium/few sizes and the split hash."""
    if counts_only:
        _show_planned_counts(dataset, seed, overrides)
        return
    s = _build_split(dataset, seed, overrides, data_root)
    info = s.summary()
    click.echo(
        f"{dataset} seed {seed}: hash {info['hash']}, {info['num_classes']} classes, "
        f"{info['labeled']} labeled, {info['unlabeled']} unlabeled, {info['test']} test"
    )
    click.echo(
        "split sizes (classes): " + ", ".join(f"{k} {v}" for k, v in info["split_sizes"].items())
    )
    if s.num_classes <= 20:
        for c in range(s.num_classes):
            click.echo(
                f"  {s.class_names[c]:>12}: labeled {info['labeled_counts'][c]:>5}  "
                f"unlabeled {info['unlabeled_counts'][c]:>6}  "
                f"{('many', 'medium', 'few')[s.class_split[c]]}"
            )


@splits.command("export")
@_with_options(_split_opts)
@click.option("--output", "-o", required=True, help="JSON file to write.")
def splits_export(dataset, seed, overrides, data_root, output):
    """Write the exact item lists as JSON, with its sha256."""
    import hashlib

    from .records import atomic_write_text

    s = _build_split(dataset, seed, overrides, data_root)
    text = json.dumps(s.to_json(), sort_keys=True)
    atomic_write_text(Path(output), text)
    click.echo(
        f"wrote {output} (split hash {s.hash}, sha256 {hashlib.sha256(text.encode()).hexdigest()})"
    )


@cli.command()
@click.option("--methods", required=True, help="Comma-separated registered methods.")
@click.option("--datasets", required=True, help="Comma-separated registered data sets.")
@click.option("--seeds", default="0", show_default=True, help="Seeds: 0-2, 0,1,2 or both.")
@_with_options(_RUN_OPTIONS)
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
    methods,
    datasets,
    seeds,
    split_seed,
    profile,
    overrides,
    device,
    out,
    data_root,
    workers,
    amp,
    launcher,
    jobs,
    slurm_partition,
    gpus_per_run,
    cpus_per_run,
    timeout,
    wait,
    dry_run,
):
    """Run every (data set, method, seed) whose ok result record is not yet in --out."""
    from . import sweep as sw

    if jobs < 1 or gpus_per_run < 0 or timeout < 1 or cpus_per_run < 1:
        raise UsageError(
            f"--jobs ({jobs}), --cpus-per-run ({cpus_per_run}) and --timeout ({timeout}) "
            f"must be >= 1 and --gpus-per-run ({gpus_per_run}) >= 0"
        )
    base = _run_spec(
        split_seed=split_seed,
        profile=profile,
        overrides=tuple(overrides),
        device=device,
        out=Path(out),
        data_root=data_root,
        workers=workers,
        amp=amp,
    )
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
            Path(out) / "slurm", slurm_partition, gpus_per_run, timeout, cpus_per_run, jobs
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


def main(argv: list[str] | None = None) -> None:
    """Entry point: one-line errors with exit code 2 unless ``--debug``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None:  # a real process start (console script or python -m), not a library call
        _malloc_tuning_reexec(args)
    _ARGS[:] = args
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="sslt-bench", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
