"""``sslt-bench splits show`` and ``splits export``: inspect and export a data set's split.

Registered on the top-level group by :mod:`sslt_bench.cli.main`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import UsageError
from ..registry import DATASETS
from ..train.run_spec import spec_options
from .common import with_options


@click.group()
def splits() -> None:
    """Inspect and export splits."""


def _build_split(dataset, seed, overrides, data_root):
    import os

    from ..config import build_config, split_overrides

    builder = DATASETS.get(dataset)
    routed = split_overrides(list(overrides), {"data": builder.Params})
    params = build_config(builder.Params, "paper", routed["data"])
    root = data_root or os.environ.get("SSLT_DATA")
    return builder.build(params, seed, Path(root) if root else None).split


_split_opts = [
    click.option("--dataset", default="digits-sslt", show_default=True),
    click.option("--seed", default=0, show_default=True, type=int, help="Split seed."),
    click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE"),
    spec_options(only=("data_root",)),  # the run option, defined once
]


def _show_planned_counts(dataset, seed, overrides):
    from ..config import build_config, split_overrides

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
    from ..data.split import achieved_ratio

    ratio = achieved_ratio(lab)
    click.echo(f"labeled per class: max {max(lab)}, min {min(lab)}, achieved ratio {ratio}")
    click.echo(
        "split sizes (classes): " + ", ".join(f"{k} {v}" for k, v in info["split_sizes"].items())
    )


@splits.command("show")
@with_options(_split_opts)
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
    lab = info["labeled_counts"]
    asked = info["params"].get("imbalance_ratio")
    click.echo(
        f"labeled per class: max {max(lab)}, min {min(lab)}, achieved ratio "
        f"{info['achieved_ratio']} (n_max / n_min of the actual counts"
        + (f"; requested {asked})" if asked is not None else ")")
    )
    if s.num_classes <= 20:
        for c in range(s.num_classes):
            click.echo(
                f"  {s.class_names[c]:>12}: labeled {info['labeled_counts'][c]:>5}  "
                f"unlabeled {info['unlabeled_counts'][c]:>6}  "
                f"{('many', 'medium', 'few')[s.class_split[c]]}"
            )


@splits.command("export")
@with_options(_split_opts)
@click.option("--output", "-o", required=True, help="JSON file to write.")
def splits_export(dataset, seed, overrides, data_root, output):
    """Write the exact item lists as JSON, with its sha256."""
    import hashlib

    from ..results.records import atomic_write_text

    s = _build_split(dataset, seed, overrides, data_root)
    text = json.dumps(s.to_json(), sort_keys=True)
    atomic_write_text(Path(output), text)
    click.echo(
        f"wrote {output} (split hash {s.hash}, sha256 {hashlib.sha256(text.encode()).hexdigest()})"
    )
