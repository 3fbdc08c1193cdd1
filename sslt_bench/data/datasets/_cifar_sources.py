"""Reading CIFAR: official pickles, ImageFolder copies, the JPEG tarball (CIFAR-10); CIFAR-100.

Every source is decoded once into uint8 tensors ``[N, 3, 32, 32]`` in class-major order
(original index, or file name, within each class) and cached by the source's content, so a
later run loads in well under a second and the split does not depend on which copy was read.
Also reads the external unlabeled pool of the paper-faithful variant, and CIFAR-100's official
pickles for cifar100-lt.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ...errors import UsageError
from . import _cache
from ._folders import scan_class_folders
from .base import cache_dir

CLASSES = ("airplane", "automobile", "bird", "cat", "deer") + (
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
TARBALL = "cifar10-jpg.tar.gz"
CIFAR100_DIR = "cifar-100-python"


def _with_stats(out: dict) -> dict:
    out["mean"], out["std"] = _cache.channel_stats(out["train_x"])
    return out


def _from_pickles(folder: Path) -> dict:
    parts = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
    key = _cache.files_key(folder, [folder / f for fs in parts.values() for f in fs])

    def build() -> dict:
        out: dict = {}
        for part, names in parts.items():
            xs, ys = [], []
            for name in names:
                with open(folder / name, "rb") as f:
                    batch = pickle.load(f, encoding="bytes")
                xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
            y = np.concatenate(ys)
            order = np.argsort(y, kind="stable")  # class-major, original index within class
            out[f"{part}_x"] = torch.from_numpy(np.concatenate(xs)[order])
            out[f"{part}_y"] = torch.from_numpy(y[order])
        return _with_stats(out)

    return _cache.cached("cifar10-pickles", key, build)


def _decode_parts(files: dict[str, list[tuple[str, object]]], where: str = "") -> dict:
    """``files[part]`` = [(``class/file`` name, path or bytes)]; decoded class-major."""
    out: dict = {}
    for part, items in files.items():
        cls = [CLASSES.index(rel.split("/")[0]) for rel, _ in items]
        order = sorted(range(len(items)), key=lambda i: (cls[i], items[i][0]))
        out[f"{part}_x"] = _cache.decode_images([items[i] for i in order], 32, 3, f"{where}{part}/")
        out[f"{part}_y"] = torch.as_tensor([cls[i] for i in order], dtype=torch.int64)
    return _with_stats(out)


def _from_folders(top: Path) -> dict:
    _, train = scan_class_folders(top / "train", list(CLASSES), "train")
    _, test = scan_class_folders(top / "test", list(CLASSES), "test")
    files = {p: [(f"{c}/{f.name}", f) for c, fs in zip(CLASSES, fl, strict=True) for f in fs]
             for p, fl in (("train", train), ("test", test))}  # fmt: skip
    key = _cache.files_key(top, [f for fl in (train, test) for fs in fl for f in fs])
    return _cache.cached("cifar10-folders", key, lambda: _decode_parts(files))


def _tar_parts(path: Path) -> dict[str, list[tuple[str, object]]]:
    files: dict[str, list] = {"train": [], "test": []}
    for name, data in _cache.read_tar_files(path, (".jpg", ".jpeg", ".png")).items():
        part, cls, fname = (Path(name).parts[-3:] + ("", "", ""))[:3]
        if part in files and cls in CLASSES:
            files[part].append((f"{cls}/{fname}", data))
    for part, items in files.items():
        missing = sorted(set(CLASSES) - {rel.split("/")[0] for rel, _ in items})
        if missing:
            raise UsageError(
                f"tarball {path} has no {part}/<class>/<image> files for class(es) "
                f"{', '.join(missing)}; expected a CIFAR-10 ImageFolder copy"
            )
    return files


def _from_tarball(path: Path) -> dict:
    key = _cache.file_digest(path)
    return _cache.cached("cifar10-tar", key, lambda: _decode_parts(_tar_parts(path), f"{path}:"))


def _download(name: str, base: Path, **kwargs) -> None:
    """Fetch a torchvision data set (``CIFAR10``, ``CIFAR100``, ``STL10``) into ``base``."""
    import importlib

    try:
        getattr(importlib.import_module("torchvision.datasets"), name)(
            str(base), download=True, **kwargs
        )
    except Exception as exc:  # noqa: BLE001 - any download failure is the user's to fix
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        label = {"CIFAR10": "CIFAR-10", "CIFAR100": "CIFAR-100", "STL10": "STL-10"}[name]
        raise UsageError(f"downloading {label} into {base} failed: {msg}") from None


def load_cifar10(root: Path | None, download: bool = False) -> dict:
    """Find CIFAR-10 under ``root`` and return its (cached) decoded class-major tensors."""
    base = root if root is not None else cache_dir() / "data"
    if base.is_file() and base.name.endswith((".tar.gz", ".tgz", ".tar")):
        return _from_tarball(base)
    for folder in (base / "cifar-10-batches-py", base):
        if (folder / "data_batch_1").is_file():
            return _from_pickles(folder)
    for top in (base / "cifar10", base):
        if (top / "train").is_dir() and (top / "test").is_dir():
            return _from_folders(top)
    if (base / TARBALL).is_file():
        return _from_tarball(base / TARBALL)
    if download:
        _download("CIFAR10", base, train=True)
        return _from_pickles(base / "cifar-10-batches-py")
    raise UsageError(
        f"CIFAR-10 not found in {base} (looked for cifar-10-batches-py/, cifar10/{{train,test}}/"
        f", {{train,test}}/ and {TARBALL}); pass --data-root DIR holding one of them, or add "
        "--set download=true to fetch it with torchvision"
    )


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


def load_cifar100(root: Path | None, download: bool = False) -> dict:
    """CIFAR-100 from torchvision's ``cifar-100-python/{train,test,meta}`` pickles, cached.

    Returns ``train_x``/``test_x`` (uint8 ``[N, 3, 32, 32]``, class-major, original index
    within a class), ``train_y``/``test_y`` (fine labels), ``classes`` (the 100 fine label
    names in label order), ``mean`` and ``std``.
    """
    base = root if root is not None else cache_dir() / "data"
    found = [f for f in (base / CIFAR100_DIR, base) if (f / "train").is_file()]
    if not found and download:
        _download("CIFAR100", base, train=True)
        found = [base / CIFAR100_DIR]
    if not found or not all((found[0] / n).is_file() for n in ("test", "meta")):
        raise UsageError(
            f"CIFAR-100 not found in {base} (looked for {CIFAR100_DIR}/{{train,test,meta}}); "
            "pass --data-root DIR holding it, or add --set download=true to fetch it with "
            "torchvision"
        )
    folder = found[0]

    def build() -> dict:
        out: dict = {}
        for part in ("train", "test"):
            batch = _unpickle(folder / part)
            y = np.asarray(batch[b"fine_labels"], dtype=np.int64)
            x = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            order = np.argsort(y, kind="stable")
            out[f"{part}_x"] = torch.from_numpy(x[order])
            out[f"{part}_y"] = torch.from_numpy(y[order])
        names = _unpickle(folder / "meta")[b"fine_label_names"]
        out["classes"] = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        return _with_stats(out)

    key = _cache.files_key(folder, [folder / n for n in ("train", "test", "meta")])
    return _cache.cached("cifar100-pickles", key, build)


def load_pool(path: str) -> tuple[torch.Tensor, np.ndarray]:
    """Read an unlabeled pool file: uint8 images [N, 3, 32, 32] and labels [N] (-1 unknown)."""
    try:
        if path.endswith(".npz"):
            with np.load(path) as z:
                images, labels = z["images"], z["labels"]
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            images, labels = obj["images"], obj["labels"]
    except (OSError, KeyError, ValueError, TypeError, pickle.UnpicklingError) as exc:
        raise UsageError(
            f"cannot read unlabeled_source {path} (need 'images' and 'labels' arrays): {exc}"
        ) from None
    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 4 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    if x.dtype != torch.uint8 or tuple(x.shape[1:]) != (3, 32, 32) or len(labels) != len(x):
        raise UsageError(
            f"unlabeled_source {path}: images must be uint8 [N, 32, 32, 3] with N labels, got "
            f"{x.dtype} {tuple(x.shape)} and {len(labels)} labels"
        )
    return x.contiguous(), np.asarray(labels, dtype=np.int64)
