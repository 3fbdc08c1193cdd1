"""Decoding image files to fixed-size uint8 tensors, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")


def load_image(path: str | Path, size: int, channels: int = 3) -> torch.Tensor:
    """Decode ``path`` to a uint8 ``[channels, size, size]`` tensor (bilinear resize).

    Raises:
        UsageError: the file is unreadable or truncated; the message names it.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = img.convert("L" if channels == 1 else "RGB")
            if img.size != (size, size):
                img = img.resize((size, size), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise UsageError(f"cannot read image {path}: {exc}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
