"""Split lists in the format of the authors' released code (github BoLiu-SVCL/SSLT).

Their ImageNet-SSLT split ships as ``data/ImageNet_SSLT/ImageNet_SSLT_{train,ext,val,test}.txt``:
one ``<path relative to the ImageNet root> <label>`` per line, ``train`` = D (41,134 lines),
``ext`` = U (4x D), ``val`` = 50 further train images per class (unused by their training
code and by us), ``test`` = the 50,000 ILSVRC-2012 validation images. Labels are their own class
indices (not sorted by wnid and not by count); the wnid is the path's parent folder.

:func:`read_split_list` parses and checks one file; :func:`released_split` turns the lists into
the item indices of a scanned ILSVRC-2012 tree.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np

from ...errors import UsageError

RELEASED_NAME = "ImageNet_SSLT_{part}.txt"
WHERE = "github.com/BoLiu-SVCL/SSLT, data/ImageNet_SSLT/"


def read_split_list(path: Path) -> tuple[list[str], np.ndarray]:
    """Parse ``<relative path> <label>`` lines (blank lines skipped).

    Returns:
        (relative paths with ``/`` separators, int64 labels).

    Raises:
        UsageError: the file is missing, a line is malformed, a label is negative, or a path
            is listed twice; the message names the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"split list {path} not found; the authors' lists are at {WHERE}")
    paths: list[str] = []
    labels: list[int] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8") as fh:
        for no, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or int(parts[1]) < 0:
                raise UsageError(
                    f"{path}:{no}: expected '<relative path> <label >= 0>', got {line.strip()!r}"
                )
            rel = unicodedata.normalize("NFC", parts[0].replace("\\", "/"))
            if rel in seen:
                raise UsageError(f"{path}:{no}: {rel} is listed twice")
            seen.add(rel)
            paths.append(rel)
            labels.append(int(parts[1]))
    if not paths:
        raise UsageError(f"split list {path} has no entries")
    return paths, np.asarray(labels, dtype=np.int64)


def class_names_of(lists: list[tuple[list[str], np.ndarray]], num_classes: int) -> list[str]:
    """The folder (wnid) of every label; every label must name exactly one folder."""
    names: dict[int, str] = {}
    for paths, labels in lists:
        for rel, y in zip(paths, labels.tolist(), strict=True):
            if y >= num_classes:
                raise UsageError(f"label {y} of {rel} is >= num_classes {num_classes}")
            folder = rel.split("/")[-2] if "/" in rel else ""
            if names.setdefault(y, folder) != folder:
                raise UsageError(f"label {y} names two folders: {names[y]} and {folder}")
    missing = sorted(set(range(num_classes)) - set(names))
    if missing:
        raise UsageError(f"no image listed for labels {missing[:5]} (num_classes {num_classes})")
    return [names[y] for y in range(num_classes)]


def positions(rel_paths: list[str], files: list[Path], base: Path, what: str) -> np.ndarray:
    """Index of every listed path in ``files`` (paths relative to ``base``)."""
    index = {
        unicodedata.normalize("NFC", p.relative_to(base).as_posix()): i for i, p in enumerate(files)
    }
    out = np.empty(len(rel_paths), dtype=np.int64)
    for k, rel in enumerate(rel_paths):
        if rel not in index:
            raise UsageError(f"{what} list names {rel}, not found under {base}")
        out[k] = index[rel]
    return out


def released_split(folder: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    """Read ``train`` (D), ``ext`` (U) and ``test`` from a folder of released lists."""
    folder = Path(folder)
    return {
        part: read_split_list(folder / RELEASED_NAME.format(part=part))
        for part in ("train", "ext", "test")
    }
