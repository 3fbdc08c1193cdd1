"""Pieces shared by the command modules: option lists and loading result records."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from ..errors import UsageError

RESULTS = Path("results")


def with_options(options: list):
    """A decorator applying a list of click options in order."""

    def decorate(fn):
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return decorate


def load_results(folders: tuple[str, ...]) -> list[dict]:
    """Records under ``folders`` (default ./results, then ./leaderboards); none is an error.

    Bad record files are skipped with one ``warning:`` line each; a run in both folders is
    shown from the first (your ``results/`` before the committed ``leaderboards/``).
    """
    from ..results.records import SHOWN_FIELDS, load_records

    dirs = [Path(f) for f in folders] or [RESULTS, Path("leaderboards")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        records = load_records(dirs, require=SHOWN_FIELDS)
    for w in caught:  # e.g. "skipping unreadable record <file>: ..." as one plain line
        click.echo(f"warning: {w.message}", err=True)
    if not records:
        raise UsageError(
            "no result records under "
            + ", ".join(map(str, dirs))
            + "; run 'sslt-bench run' first or pass --results DIR"
        )
    return records


def results_option(fn):
    """The repeatable ``--results DIR`` option."""
    return click.option(
        "--results",
        "folders",
        multiple=True,
        help="Folder of result records (repeatable; default ./results and ./leaderboards).",
    )(fn)
