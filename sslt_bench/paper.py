"""The paper's published numbers (quoted, never measured), from package data.

``sslt_bench/data/paper_results.json`` transcribes Tables 1, 4, 5 and 6 of "Semi-supervised
Long-tailed Recognition using Alternate Sampling" (ICLR 2022 submission): accuracy in % on
CIFAR-10-SSLT (imbalance 100 and 1000), ImageNet-SSLT and iNaturalist2018-SSLT, with the
backbone each table states, under data set and method names as registered here. Every number
was trained with the paper's full budget (profile ``paper``), a backbone that may differ from a
measured row's, and (for CIFAR-10-SSLT) an unlabeled set from Tiny Images; the table renderer
says so whenever it shows a quoted row beside a measured one.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

PAPER_VERSION = 1
METRICS = ("overall", "many", "medium", "few")
QUOTED = "paper (quoted)"


@lru_cache(maxsize=1)
def load_paper_results() -> dict[str, Any]:
    """The parsed, validated ``paper_results.json``.

    Raises:
        ValueError: if the file has another version or a malformed entry.
    """
    text = resources.files("sslt_bench").joinpath("data/paper_results.json").read_text()
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


def quoted_rows(dataset: str | None = None) -> list[dict[str, Any]]:
    """Flat quoted rows (optionally of one data set), in file order.

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
    """Whether every data parameter the paper states equals the measured run's value."""
    for key, value in quoted.items():
        have = measured.get(key)
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
