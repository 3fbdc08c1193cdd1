"""Decoding image files to fixed-size uint8 tensors, with errors that name the file.

Every decoder of the package goes through :func:`to_uint8`: 16-bit grey images (PNG/TIFF
``I;16``) are scaled to 8 bits (``v / 257``) instead of clipped to white, and a file over
Pillow's decompression-bomb limit is refused with a one-line error. :func:`list_images` skips
hidden files (``.DS_Store``, macOS ``._*`` resource forks) and refuses broken symlinks.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
#: Modes whose pixels are 16-bit (or wider) integers: scaled by 1/257 to 0..255.
WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_uint8(img: Any, size: int | None, channels: int, fit: str = "stretch") -> torch.Tensor:
    """A decoded PIL image as uint8 ``[channels, size, size]`` (bilinear resize; ``None`` keeps).

    ``fit="stretch"`` resizes to the square; ``"shorter"`` resizes the shorter side to
    ``size`` (the longer to ``int(size * long / short)``, torchvision's Resize) and keeps the
    centre square. 16-bit grey images are scaled to 8 bits, not clipped (``convert("L")``
    would turn most of their pixels white).
    """
    from PIL import Image

    if img.mode in WIDE_MODES:
        wide = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8), "L")
    img = img.convert("L" if channels == 1 else "RGB")
    if size is not None and fit == "shorter" and img.size != (size, size):
        w, h = img.size
        nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
        img = img.resize((nw, nh), Image.BILINEAR)
        top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
    elif size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def decode_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "this file is not a usable image" (caught and named by callers)."""
    from PIL import Image, UnidentifiedImageError

    return (OSError, UnidentifiedImageError, SyntaxError, ValueError, Image.DecompressionBombError)


def load_image(
    path: str | Path, size: int, channels: int = 3, fit: str = "stretch"
) -> torch.Tensor:
    """Decode ``path`` to a uint8 ``[channels, size, size]`` tensor (bilinear resize).

    Raises:
        UsageError: the file is unreadable, truncated or a decompression bomb; names it.
    """
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            return to_uint8(img, size, channels, fit)
    except decode_errors() as exc:
        raise UsageError(f"cannot read image {path}: {exc}") from None


def is_hidden(path: Path) -> bool:
    """Hidden entries: ``.DS_Store``, ``._x.jpg``, ``.ipynb_checkpoints``, ``__MACOSX``."""
    return path.name.startswith(".") or path.name == "__MACOSX"


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; hidden files are skipped.

    Raises:
        UsageError: an image entry is a broken symlink (named, with its target).
    """
    found = []
    for p in folder.iterdir():
        if is_hidden(p) or p.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if p.is_symlink() and not p.exists():
            raise UsageError(
                f"broken symlink {p} -> {os.readlink(p)}; restore its target or remove it"
            )
        if p.is_file():
            found.append(p)
    return sorted(found)
