"""Scanning ``<root>/<class>/<image>`` folder trees into sorted per-class file lists.

Shared by every file-based builder (ImageFolder copies of CIFAR-10, ImageNet, bring-your-own
data). Items are sorted by relative path within each class and classes by name, so a split
drawn from these lists depends only on the files present, never on directory listing order.
Hidden entries (``.ipynb_checkpoints``, ``._x.jpg``, ``__MACOSX``) are skipped, and class names
are compared in Unicode NFC, so a folder name stored decomposed (NFD, as macOS file systems
and some archives do) still matches its composed twin in ``test/``.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

from ...errors import UsageError
from ..imageio import is_hidden, list_images


def scan_class_folders(
    root: Path, classes: list[str] | None = None, what: str = "train"
) -> tuple[list[str], list[list[Path]]]:
    """List the images of every class folder directly under ``root``.

    Args:
        root: folder holding one sub-folder per class.
        classes: expected class names (e.g. the train classes when scanning test); ``None``
            takes every sub-folder, sorted by name.
        what: name of this part of the data (``train``, ``test``...) for error messages.

    Returns:
        (class names, per class the sorted image paths).

    Raises:
        UsageError: ``root`` is missing or empty, a class folder has no images, or an expected
            class is absent; the message names the folder or class.
    """
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"{what} folder {root} does not exist")
    folders: dict[str, Path] = {}
    for p in sorted(root.iterdir()):
        if not p.is_dir() or is_hidden(p):
            continue
        name = unicodedata.normalize("NFC", p.name)
        if name in folders:
            raise UsageError(
                f"{what} folders {folders[name].name!r} and {p.name!r} in {root} are the same "
                "class name in different Unicode forms; rename one"
            )
        folders[name] = p
    found = sorted(folders)
    if not found:
        raise UsageError(f"{what} folder {root} has no class sub-folders")
    if classes is None:
        classes = found
    else:
        classes = [unicodedata.normalize("NFC", c) for c in classes]
        missing = [c for c in classes if c not in found]
        if missing:
            raise UsageError(
                f"{what} folder {root} lacks class folder(s) "
                f"{', '.join(missing[:5])}; it has: {', '.join(found[:20])}"
            )
        extra = [c for c in found if c not in classes]
        if extra:
            raise UsageError(
                f"{what} class folder(s) {', '.join(extra[:5])} in {root} are "
                f"absent from train; valid classes: {', '.join(classes[:20])}"
            )
    files = []
    for c in classes:
        images = list_images(folders[c])
        if not images:
            raise UsageError(f"class folder {folders[c]} has no images")
        files.append(images)
    return list(classes), files
