"""``sslt-bench table``, ``compare`` and ``plot``: reading result records.

Registered on the top-level group by :mod:`sslt_bench.cli.main`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from ..errors import choices_error
from ..registry import METHODS
from .common import load_results, results_option


@click.command()
@results_option
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
@click.option(
    "--layout",
    default="compact",
    show_default=True,
    type=click.Choice(["compact", "wide"]),
    help="compact: one block per data set setting, methods sorted by overall accuracy (fits "
    "100 columns); wide: one column group per data set variant (LaTeX and HTML are always wide).",
)
@click.option("--with-paper", is_flag=True, help="Add the paper's quoted numbers (marked).")
@click.option(
    "--figure",
    "figure",
    default="final",
    show_default=True,
    type=click.Choice(["final", "median-last20"]),
    help="final: the final model's accuracy (the headline); median-last20: the median of the "
    "last 20 test evaluations of step-based runs (for comparison with papers that report it; "
    "runs without it are left out; the output says which figure it shows).",
)
@click.option("--output", "-o", default=None, help="Write to this file instead of stdout.")
def table(
    folders, fmt_name, dataset, method, profile, backbone, by, layout, with_paper, figure, output
) -> None:
    """Per data set setting: methods by overall accuracy; n/overall/many/medium/few (mean ± std)."""
    from ..results.records import atomic_write_text
    from ..results.render import render
    from ..results.table import build_board, filter_records

    records = filter_records(
        load_results(folders), dataset=dataset, method=method, profile=profile, backbone=backbone
    )
    if figure == "median-last20":
        records = _median_records(records)
    board = build_board(
        records, by_seed=by == "seed", with_paper=with_paper, paper_methods=set(method) or None
    )
    text = render(fmt_name, board, records, layout)
    if figure == "median-last20":
        text = _figure_note(fmt_name) + text
    if output:
        atomic_write_text(Path(output), text)
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


def _median_records(records: list) -> list:
    """``--figure median-last20``: records carrying that figure as their metrics."""
    import warnings

    from ..train.diagnostics import with_median_figure

    records, missing = with_median_figure(records)
    if missing:
        warnings.warn(
            f"--figure median-last20: {missing} run(s) without the figure left out "
            "(not step-based, or recorded before it existed)",
            stacklevel=2,
        )
    return records


def _figure_note(fmt_name: str) -> str:
    """The line above a table that says it shows median_last20, in the format's comment."""
    from ..train.diagnostics import MEDIAN_NOTE

    lead = {"csv": "# ", "latex": "% "}.get(fmt_name, "")
    if fmt_name == "html":
        return f"<p><em>{MEDIAN_NOTE}</em></p>\n"
    return f"{lead}{MEDIAN_NOTE}\n\n" if not lead else f"{lead}{MEDIAN_NOTE}\n"


@click.command()
@results_option
@click.argument("method")
@click.argument("baseline")
@click.option("--dataset", multiple=True, help="Only this data set (repeatable).")
def compare(folders, method, baseline, dataset) -> None:
    """METHOD vs BASELINE paired by seed; METHOD's test and pseudo-label accuracy per stage.

    \b
    METHOD and BASELINE are names or NAME[key=value,...] selecting one configuration, e.g.
      sslt-bench compare 'alternate[recipe=released]' 'alternate[recipe=paper]'
    """  # noqa: D301 - \b is click's "do not re-wrap" marker
    from ..results.compare import paired_markdown, parse_selector, trajectory_markdown
    from ..results.table import filter_records

    known = sorted(METHODS.names())
    for selector in (method, baseline):
        name, want = parse_selector(selector)
        if name not in known:
            raise choices_error("method", name, known)
        fields = {f.name for f in dataclasses.fields(METHODS.get(name).Config)}
        for key in want:
            if key not in fields:
                raise choices_error(f"{name} setting", key, sorted(fields))
    records = filter_records(load_results(folders), dataset=dataset)
    click.echo(paired_markdown(records, method, baseline))
    for history, metric in (("evals", "overall"), ("evals", "few"), ("pseudo_labels", "few")):
        click.echo()
        click.echo(trajectory_markdown(records, method, history, metric))


@click.group()
def plot() -> None:
    """Plots of result records (PNG and SVG)."""


def _plot_opts(fn):
    fn = click.option(
        "--output", "-o", default=None, help="Output path (.png/.svg added; both are written)."
    )(fn)
    fn = click.option("--method", multiple=True, help="Only this method (repeatable).")(fn)
    fn = click.option("--dataset", default=None, help="Data set (needed if several).")(fn)
    return results_option(fn)


def _plot(kind: str, folders, dataset, method, output) -> None:
    from ..results import plots
    from ..results.table import filter_records

    records = filter_records(load_results(folders), method=method)
    for path in plots.make(kind, records, dataset, output):
        click.echo(f"wrote {path}")


@plot.command("per-class")
@_plot_opts
def plot_per_class(folders, dataset, method, output) -> None:
    """Test accuracy per class against its labeled count (log x), many/medium/few shaded."""
    _plot("per-class", folders, dataset, method, output)


@plot.command("per-class-bars")
@_plot_opts
def plot_per_class_bars(folders, dataset, method, output) -> None:
    """Test accuracy per class as bars, methods side by side at each labeled count (log x)."""
    _plot("per-class-bars", folders, dataset, method, output)


@plot.command("pseudo-labels")
@_plot_opts
def plot_pseudo_labels(folders, dataset, method, output) -> None:
    """Pseudo labels on U along training: precision, recall, mask rate, TV per split."""
    from ..results import plots_pseudo
    from ..results.table import filter_records

    records = filter_records(load_results(folders), method=method)
    old = any(r.get("history", {}).get("pseudo_labels") for r in records)
    if old and not any(plots_pseudo.entries(r) for r in records):
        import warnings

        warnings.warn(
            "no run has pseudo-label diagnostics (records made before them); plotting the "
            "pseudo-label accuracy of each PseudoLabel stage instead",
            stacklevel=2,
        )
        _plot("pseudo-labels", folders, dataset, method, output)
        return
    for path in plots_pseudo.make(records, dataset, output):
        click.echo(f"wrote {path}")


@plot.command("pseudo-label-accuracy")
@_plot_opts
def plot_pseudo_label_accuracy(folders, dataset, method, output) -> None:
    """Pseudo-label accuracy on U at each PseudoLabel stage, per split (alternate etc.)."""
    _plot("pseudo-labels", folders, dataset, method, output)


@plot.command("curves")
@_plot_opts
def plot_curves(folders, dataset, method, output) -> None:
    """Test accuracy along training (runs made with --eval-every, or Evaluate stages)."""
    _plot("curves", folders, dataset, method, output)


@plot.command("settings")
@_plot_opts
def plot_settings(folders, dataset, method, output) -> None:
    """Each method across the data set's settings (e.g. U consistent vs reversed)."""
    _plot("settings", folders, dataset, method, output)
