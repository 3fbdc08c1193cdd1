"""User-facing errors.

A :class:`UsageError` is bad input from the user (unknown name, bad value, missing data). It is
a :class:`click.ClickException`, so click's own machinery reports it: the CLI prints its message
on one line (``error: ...``) and exits with code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

import click


class UsageError(click.ClickException):
    """Bad input from the user: the message names the bad value and the valid choices."""

    exit_code = 2

    def show(self, file: IO[Any] | None = None) -> None:
        """Print ``error: <message>`` as one line on stderr."""
        click.echo(f"error: {' '.join(self.format_message().split())}", err=True, file=file)


class WriteError(UsageError, OSError):
    """A result file could not be written (disk full, read-only folder, a folder in the way).

    Still an :class:`OSError` for library callers; the CLI reports it as one line, exit 2.
    """


def choices_error(kind: str, value: object, valid: Iterable[object]) -> UsageError:
    """Build the standard "unknown X 'v'; choose from: a, b" error.

    Args:
        kind: what the value is (``"method"``, ``"data set"``...).
        value: the bad value as the user gave it.
        valid: the valid choices.

    Returns:
        A :class:`UsageError` ready to raise.
    """
    listed = ", ".join(str(v) for v in sorted(valid, key=str)) or "(none registered)"
    return UsageError(f"unknown {kind} {value!r}; choose from: {listed}")
