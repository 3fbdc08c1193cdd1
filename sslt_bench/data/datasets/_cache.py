"""Decoded-image cache shared by builders of small data sets (CIFAR, bring-your-own data).

A builder decodes its images once into uint8 tensors ``[N, C, H, W]`` and stores them, with
labels and any other small metadata, in one file under :func:`~.base.cache_dir` named by a key
derived from the *content* of the source (:func:`files_key` or :func:`file_digest`). Later runs
load that file in a fraction of a second; a changed source gets a new key, never a stale cache.
Writes are atomic (temporary file + rename), so concurrent runs at worst decode twice; a cache
folder that cannot be written (read-only, full) costs a warning and a decode per run, never
the run.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from ...errors import UsageError
from ..imageio import decode_errors, to_uint8
from .base import cache_dir

#: Bump when the cached layout changes so old files are not misread.
CACHE_VERSION = 1


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file's bytes (for single-file sources such as a tarball)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def files_key(root: Path, files: Iterable[Path]) -> str:
    """sha256 over the sorted relative paths and byte sizes of ``files`` under ``root``.

    Cheap (one ``stat`` per file) and changes whenever a file is added, removed, renamed or
    resized, which is what a cache of decoded folder trees needs.
    """
    h = hashlib.sha256()
    cut = len(str(root).rstrip(os.sep)) + 1  # string slicing: Path.relative_to is slow
    lines = sorted(f"{str(p)[cut:].replace(os.sep, '/')}\t{os.stat(p).st_size}" for p in files)
    for line in lines:
        h.update(line.encode())
        h.update(b"\n")
    return h.hexdigest()


def cache_path(name: str, key: str) -> Path:
    """The cache file of ``name`` (e.g. ``cifar10``) for content key ``key``."""
    return cache_dir() / f"{name}-v{CACHE_VERSION}-{key[:24]}.pt"


def cached(name: str, key: str, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Load the cached dict of ``name``/``key``, or ``build()`` it and store it.

    Args:
        name: short name of the data (part of the file name).
        key: content key of the source (see :func:`files_key`, :func:`file_digest`).
        build: decodes the source; returns a dict of tensors, lists, numbers and strings.

    Returns:
        The dict ``build`` returned (from the cache when present).
    """
    path = cache_path(name, key)
    if path.exists():
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # noqa: BLE001 - a corrupt cache file is rebuilt, never trusted
            path.unlink(missing_ok=True)
    if sys.stderr.isatty():  # minutes for large data: say what is happening (only once)
        print(f"building the {name} image cache (first use of this data): {path}", file=sys.stderr)
    payload = build()
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(fd)
        os.chmod(tmp, 0o644)
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # read-only or full: use the decoded data anyway
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        why = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        warnings.warn(
            f"cannot write image cache in {path.parent} ({why}); continuing without it "
            "(set SSLT_CACHE to a writable folder to decode only once)",
            stacklevel=2,
        )
    return payload


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 ``[N, C, H, W]`` images as [0, 1] pixels, chunked."""
    c = images.shape[1]
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].to(torch.float64).div_(255.0)
        s1 += x.sum((0, 2, 3))
        s2 += x.square().sum((0, 2, 3))
    n = max(images.shape[0] * images.shape[2] * images.shape[3], 1)
    mean = s1 / n
    std = (s2 / n - mean.square()).clamp_min(1e-12).sqrt()
    return mean.tolist(), std.tolist()


def _decode(fp: Any, size: int | None, channels: int) -> torch.Tensor:
    """Decode one image (path or file object) to uint8 ``[channels, size, size]``."""
    from PIL import Image

    with Image.open(fp) as img:
        img.load()
        return to_uint8(img, size, channels)


def decode_images(
    items: Iterable[tuple[str, Any]], size: int | None, channels: int, where: str = ""
) -> torch.Tensor:
    """Decode ``(name, path-or-bytes)`` items into one uint8 ``[N, channels, size, size]`` tensor.

    ``size=None`` keeps the images' own size (all must then share it). Errors name a path
    item by its path and a bytes item as ``where + name``.

    Raises:
        UsageError: an image is unreadable, truncated or of the wrong size; names the item.
    """
    import io

    out = []
    for name, src in items:
        name = f"{where}{name}" if isinstance(src, bytes) else str(src)
        try:
            x = _decode(io.BytesIO(src) if isinstance(src, bytes) else src, size, channels)
        except decode_errors() as exc:
            raise UsageError(f"cannot read image {name}: {exc}") from None
        if out and x.shape != out[0].shape:
            raise UsageError(
                f"image {name} is {tuple(x.shape[1:])} but earlier images are "
                f"{tuple(out[0].shape[1:])}"
            )
        out.append(x)
    if not out:
        return torch.zeros(0, channels, size or 0, size or 0, dtype=torch.uint8)
    return torch.stack(out)


def read_tar_files(path: Path, suffixes: tuple[str, ...]) -> dict[str, bytes]:
    """The bytes of every regular file in the tarball ``path`` whose name ends in ``suffixes``."""
    import tarfile

    files: dict[str, bytes] = {}
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile() and member.name.lower().endswith(suffixes):
                    files[member.name] = tar.extractfile(member).read()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise UsageError(f"cannot read tarball {path}: {exc}") from None
    return files
