"""The paper's published numbers (quoted, never measured), from package data.

``sslt_bench/results/paper_results.json`` transcribes Tables 1, 4, 5 and 6 of "Semi-supervised
Long-tailed Recognition using Alternate Sampling" (ICLR 2022 submission): accuracy in % on
CIFAR-10-SSLT (imbalance 100 and 1000), ImageNet-SSLT and iNaturalist2018-SSLT, with the
backbone each table states, under data set and method names as registered here. Every number
was trained with the paper's full budget (profile ``paper``), a backbone that may differ from a
measured row's, and (for CIFAR-10-SSLT) an unlabeled set from Tiny Images; the table renderer
says so whenever it shows a quoted row beside a measured one.

``sslt_bench/results/quoted_lt.json`` holds the published CIFAR-10-LT accuracies of FixMatch and the
class-imbalanced SSL methods (DASO, CVPR 2022, Tables 1-2; USB's ``results/classic_cv_imb.csv``;
CoSSL's official README): overall accuracy and its std only, with each table entry's source,
backbone (WRN-28-2), budget and figure type (median of the last 20 evaluations, best accuracy
during training, ...), which its notes carry onto the board. Both files feed
:func:`all_quoted_rows`; quoted rows are never part of a measured mean.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

PAPER_VERSION = 1
LT_VERSION = 1
METRICS = ("overall", "many", "medium", "few")
QUOTED = "paper (quoted)"
#: A measured data parameter that is ``None`` means the value of another one (gamma_u = gamma_l).
NONE_MEANS = {"unlabeled_imbalance_ratio": "imbalance_ratio"}


@lru_cache(maxsize=1)
def load_paper_results() -> dict[str, Any]:
    """The parsed, validated ``paper_results.json``.

    Raises:
        ValueError: if the file has another version or a malformed entry.
    """
    text = resources.files("sslt_bench.results").joinpath("paper_results.json").read_text()
    doc = json.loads(text)
    if doc.get("version") != PAPER_VERSION:
        raise ValueError(f"paper_results.json version {doc.get('version')!r} != {PAPER_VERSION}")
    for block in doc["tables"]:
        for key in ("table", "dataset", "data_params", "backbone", "rows"):
            if key not in block:
                raise ValueError(f"paper_results.json: table entry without {key!r}")
        for row in block["rows"]:
            bad = [m for m in METRICS if not isinstance(row.get(m), int | float)]
            if bad or "method" not in row:
                raise ValueError(f"paper_results.json: bad row {row} (missing {bad})")
    return doc


@lru_cache(maxsize=1)
def load_quoted_lt() -> dict[str, Any]:
    """The parsed, validated ``quoted_lt.json`` (overall accuracy and std; no group metrics).

    Raises:
        ValueError: if the file has another version or a malformed entry.
    """
    text = resources.files("sslt_bench.results").joinpath("quoted_lt.json").read_text()
    doc = json.loads(text)
    if doc.get("version") != LT_VERSION:
        raise ValueError(f"quoted_lt.json version {doc.get('version')!r} != {LT_VERSION}")
    keys = ("table", "source", "dataset", "data_params", "backbone", "budget", "figure", "rows")
    for block in doc["tables"]:
        missing = [k for k in keys if k not in block]
        if missing:
            raise ValueError(f"quoted_lt.json: table entry without {missing}")
        for row in block["rows"]:
            nums = [row.get(k) for k in ("overall", "overall_std")]
            if "method" not in row or not all(isinstance(v, int | float) for v in nums):
                raise ValueError(
                    f"quoted_lt.json: bad row {row} (needs method, overall, overall_std)"
                )
    return doc


def _lt_notes(block: dict[str, Any]) -> str:
    """One note naming a quoted_lt block's source, backbone, budget and figure type."""
    extra = f" {block['notes']}" if block.get("notes") else ""
    return (
        f"Quoted Table {block['table']}: {block['source']}; {block['backbone']}, "
        f"{block['budget']}; figure: {block['figure']}.{extra}"
    )


def all_quoted_rows(dataset: str | None = None) -> list[dict[str, Any]]:
    """The rows of :func:`quoted_rows` and then those of :func:`lt_rows`."""
    return quoted_rows(dataset) + lt_rows(dataset)


def lt_rows(dataset: str | None = None) -> list[dict[str, Any]]:
    """Flat quoted rows of ``quoted_lt.json`` (optionally of one data set), in file order.

    Keys as in :func:`quoted_rows` (``many``/``medium``/``few`` are ``None``: the sources report
    overall accuracy only), plus ``overall_std``, ``citation``, ``budget`` and ``figure``.
    """
    out = []
    doc = load_quoted_lt()
    for block in doc["tables"]:
        if dataset is not None and block["dataset"] != dataset:
            continue
        for row in block["rows"]:
            out.append(
                {
                    **{m: None for m in METRICS},
                    "table": block["table"],
                    "dataset": block["dataset"],
                    "data_params": dict(block["data_params"]),
                    "backbone": block["backbone"],
                    "profile": doc.get("profile", "paper"),
                    "budget": block["budget"],
                    "figure": block["figure"],
                    **row,
                    "source": QUOTED,
                    "citation": block["source"],
                    "notes": _lt_notes(block),
                }
            )
    return out


def quoted_rows(dataset: str | None = None) -> list[dict[str, Any]]:
    """Flat quoted rows of ``paper_results.json`` (optionally of one data set), in file order.

    Each row has ``table``, ``dataset``, ``data_params``, ``backbone``, ``profile`` (always
    ``paper``), ``notes``, ``method``, ``paper_name`` and the four metrics.
    """
    doc = load_paper_results()
    out = []
    for block in doc["tables"]:
        if dataset is not None and block["dataset"] != dataset:
            continue
        for row in block["rows"]:
            out.append(
                {
                    "source": QUOTED,
                    "table": block["table"],
                    "dataset": block["dataset"],
                    "data_params": dict(block["data_params"]),
                    "backbone": block["backbone"],
                    "profile": doc.get("profile", "paper"),
                    "notes": block.get("notes", ""),
                    **row,
                }
            )
    return out


def params_match(quoted: dict[str, Any], measured: dict[str, Any]) -> bool:
    """Whether every data parameter the paper states equals the measured run's value.

    A measured ``None`` of a key in :data:`NONE_MEANS` stands for the other key's value
    (``unlabeled_imbalance_ratio=None`` is gamma_u = gamma_l).
    """
    for key, value in quoted.items():
        have = measured.get(key)
        if have is None and key in NONE_MEANS:
            have = measured.get(NONE_MEANS[key])
        if have is None:
            return False
        try:
            if float(have) != float(value):
                return False
        except (TypeError, ValueError):
            if have != value:
                return False
    return True


def same_backbone(paper: str, registered: str) -> bool:
    """``ResNet-32`` (paper spelling) names the registered ``resnet32``."""

    def norm(s: str) -> str:
        return s.lower().replace("-", "").replace("_", "").replace(" ", "")

    return norm(paper) == norm(registered)
