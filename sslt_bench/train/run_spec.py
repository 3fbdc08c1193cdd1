"""What defines a run, and its command-line options, in one place.

Every :class:`RunSpec` field carries its ``sslt-bench run`` option (flags, type, help) as field
metadata: ``run`` and ``sweep`` build their click options from it (:func:`spec_options`) and
``sweep`` turns a spec back into the ``run`` arguments that reproduce it (:func:`spec_argv`), so
an option is defined once. Fields marked ``sweep`` are also options of ``sslt-bench sweep``.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import click


def _opt(default: Any, *decls: str, sweep: bool = False, **kwargs: Any) -> Any:
    """A field whose command-line option is ``click.option(*decls, <field name>, **kwargs)``."""
    kwargs.setdefault("show_default", default is not None and not kwargs.get("is_flag"))
    meta = {"decls": decls, "click": kwargs, "sweep": sweep}
    if isinstance(default, tuple):
        return field(default_factory=lambda: default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunSpec:
    """Everything that defines a run (what the CLI's ``run`` options fill in)."""

    method: str = _opt("erm", "--method", help="Registered method.")
    dataset: str = _opt("digits-sslt", "--dataset", help="Registered data set.")
    seed: int = _opt(0, "--seed", type=int, help="Training seed.")
    split_seed: int = _opt(
        0, "--split-seed", sweep=True, type=int, help="Split seed (fixed published splits use 0)."
    )
    profile: str = _opt("quick", "--profile", sweep=True, help="quick (CPU) or paper.")
    overrides: tuple[str, ...] = _opt(
        (),
        "--set",
        sweep=True,
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a method or data set setting (repeatable; see 'sslt-bench list keys').",
    )
    device: str = _opt("auto", "--device", sweep=True, help="auto, cpu or cuda.")
    out: Path = _opt(Path("results"), "--out", sweep=True, help="Results folder.")
    data_root: str | None = _opt(
        None,
        "--data-root",
        sweep=True,
        envvar="SSLT_DATA",
        show_envvar=True,
        help="Where data sets live.",
    )
    workers: int = _opt(
        0,
        "--workers",
        sweep=True,
        type=click.IntRange(min=0),
        help="DataLoader workers (file data).",
    )
    amp: str = _opt(
        "auto",
        "--amp",
        sweep=True,
        type=click.Choice(["auto", "none", "bf16", "fp16"]),
        help="Mixed precision on CUDA (ignored on CPU).",
    )
    split_file: str | None = _opt(None, "--split-file", help="Run on an exported split (JSON).")
    fresh: bool = _opt(
        False, "--fresh", is_flag=True, help="Ignore an existing checkpoint and start over."
    )
    eval_every: int = _opt(
        0,
        "--eval-every",
        type=click.IntRange(min=0),
        help="Also evaluate every N epochs for learning curves (never for selection).",
    )
    diag_every_steps: int = _opt(
        0,
        "--diag-every-steps",
        type=click.IntRange(min=0),
        help="Score pseudo labels on U every N optimiser steps (0: at every epoch end).",
    )
    diag_subsample: int = _opt(
        0,
        "--diag-subsample",
        type=click.IntRange(min=0),
        help="Score a fixed random subset of N items of U (0: all of U).",
    )
    trajectory_every: int = _opt(
        1,
        "--trajectory-every",
        type=click.IntRange(min=0),
        help="Step-based methods: test-evaluate every N epochs for median_last20 (0: never).",
    )
    deterministic: bool = _opt(
        False, "--deterministic", is_flag=True, help="Deterministic algorithms (CUDA: slower)."
    )
    progress: bool = _opt(True, "--progress/--no-progress", help="Progress bar.")
    channels_last: bool | None = _opt(
        None,
        "--channels-last/--no-channels-last",
        help="channels_last memory format (default: on for CUDA; on CPU for the CIFAR ResNets "
        "and the small CNN).",
    )
    compile: bool = _opt(False, "--compile", is_flag=True, help="torch.compile the backbone.")

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.overrides = tuple(self.overrides)


def spec_options(*, sweep: bool = False, only: tuple[str, ...] = ()):
    """A decorator adding the click options of RunSpec's fields (``sweep``: its subset only)."""
    if only:
        chosen = [f for f in fields(RunSpec) if f.name in only]
    else:
        chosen = [f for f in fields(RunSpec) if f.metadata["sweep"] or not sweep]

    def decorate(fn):
        for f in reversed(chosen):
            default = f.default_factory() if f.default is MISSING else f.default
            if isinstance(default, Path):
                default = str(default)
            kwargs = {"default": default, **f.metadata["click"]}
            fn = click.option(*f.metadata["decls"], f.name, **kwargs)(fn)
        return fn

    return decorate


def spec_argv(spec: RunSpec) -> list[str]:
    """The ``sslt-bench run`` arguments that reproduce ``spec`` (what a sweep launches)."""
    argv = ["run"]
    for f in fields(spec):
        decl, kw, value = f.metadata["decls"][0], f.metadata["click"], getattr(spec, f.name)
        if kw.get("multiple"):
            for v in value:
                argv += [decl, str(v)]
        elif "/" in decl:
            if value is not None and value != f.default:
                argv.append(decl.split("/")[0 if value else 1])
        elif kw.get("is_flag"):
            argv += [decl] if value else []
        elif value is not None:
            argv += [decl, str(value)]
    return argv
