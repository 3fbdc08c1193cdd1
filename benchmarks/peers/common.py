"""Our side of a peer check: the run's split and initial weights, data for a peer's code, scoring.

A peer check runs a method's official code on exactly what our run of that method trains on:
the same D, U and test items of our split (the JPEG copy of CIFAR-10 included), the same
backbone with the same initial weights (our run's ``init_hash``), our profile's budget. Only
the implementation differs. Everything a peer's code needs changed to run here is a named
:class:`Patches` entry applied at run time (attributes replaced while it runs, arguments on
its command line); no file of the peer's repository is edited or copied into ours.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from sslt_bench.train.metrics import accuracy_report
from sslt_bench.train.runner import Runner, RunSpec
from sslt_bench.train.session import weights_hash


@dataclass
class Ours:
    """What our run of the same method and setting would start from."""

    spec: RunSpec
    runner: Runner
    data: Any
    method: Any
    model: nn.Module
    init_hash: str

    @property
    def cfg(self) -> Any:
        """The method's resolved config (profile + ``--set`` values)."""
        return self.runner.cfg

    @property
    def split(self) -> Any:
        """Our split (D, U, test items; U's labels are never handed to a peer)."""
        return self.data.split


def prepare(spec: RunSpec) -> Ours:
    """Our run's data and model, built in the runner's order (same seed: same init hash)."""
    runner = Runner(spec)
    data = runner._load_data()
    runner._seed_all(spec.seed)
    method, ctx, _ = runner._build(data, torch.Generator().manual_seed(spec.seed))
    # the model stays in our run's memory format (channels_last for the CIFAR ResNets on CPU)
    return Ours(spec, runner, data, method, ctx.model, weights_hash(ctx.model))


def hwc(source: Any) -> np.ndarray:
    """All images of an in-memory source as an ``[N, H, W, C]`` uint8 array (for PIL)."""
    return source.images.permute(0, 2, 3, 1).contiguous().numpy()


class PilItems(torch.utils.data.Dataset):
    """``images[ids[i]]`` as a PIL image through ``transform``, with ``targets[i]``."""

    def __init__(self, images: np.ndarray, ids: np.ndarray, targets: np.ndarray, transform):
        self.images, self.ids = images, np.asarray(ids)
        self.targets, self.transform = np.asarray(targets), transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.images[self.ids[i]])
        return self.transform(img), int(self.targets[i])


def unlabeled_pool(
    split: Any, labeled_mark: int, hidden: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """Items of D ∪ U and their targets as the codes' ``train_split`` builds them.

    D's items carry ``labeled_mark`` (ACR's code marks them -2 to leave them out of its
    estimate); U's items carry ``hidden``, never their labels: a method never reads U's labels.
    """
    ids = np.concatenate([split.labeled_idx, split.unlabeled_idx])
    marks = np.full(len(ids), hidden, dtype=np.int64)
    marks[: len(split.labeled_idx)] = labeled_mark
    return ids, marks


def score(model_heads: dict[str, Callable], loader, split: Any) -> dict[str, dict]:
    """Accuracy report (overall, many/medium/few, per class) of each head on the test loader."""
    preds: dict[str, list] = {h: [] for h in model_heads}
    with torch.no_grad():
        for x, _ in loader:
            for h, fn in model_heads.items():
                preds[h].append(fn(x).argmax(1).numpy())
    return {
        h: accuracy_report(np.concatenate(p), split.test_y, split.class_split, split.num_classes)
        for h, p in preds.items()
    }


class Patches:
    """Attributes replaced while a peer's code runs, each with a one-line reason (restored)."""

    def __init__(self) -> None:
        self.applied: list[dict[str, str]] = []
        self._undo: list[Callable[[], None]] = []

    def set(self, obj: Any, name: str, value: Any, why: str) -> None:
        """Replace ``obj.name`` by ``value`` and note ``why``."""
        old = getattr(obj, name, None)
        self._undo.append(lambda: setattr(obj, name, old))
        setattr(obj, name, value)
        owner = getattr(obj, "__name__", type(obj).__name__)
        self.applied.append({"patch": f"{owner}.{name}", "why": why})

    def set_item(self, mapping: Any, key: str, value: Any, what: str, why: str) -> None:
        """Set ``mapping[key]`` (``sys.modules``, ``os.environ``); removed or reset after."""
        had, old = key in mapping, mapping.get(key)
        self._undo.append(lambda: mapping.__setitem__(key, old) if had else mapping.pop(key, None))
        mapping[key] = value
        self.applied.append({"patch": f"{what}[{key!r}]", "why": why})

    def note(self, what: str, why: str) -> None:
        """Record a change made another way (a command-line argument, a wrapper)."""
        self.applied.append({"patch": what, "why": why})

    def restore(self) -> None:
        """Undo every replacement, last first."""
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


@contextlib.contextmanager
def checkout(path: Path) -> Iterator[tuple[Path, str]]:
    """``(folder with the code's files, git revision)`` of a checkout or a bare repository.

    A bare repository (what ``fetch`` brings) is exported at HEAD into a temporary folder.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no official code at {path}")
    rev = _git(path, "rev-parse", "HEAD") or "unknown"
    bare = _git(path, "rev-parse", "--is-bare-repository") == "true"
    if not bare:
        yield path, rev + ("-dirty" if _git(path, "status", "--porcelain") else "")
        return
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(path), "archive", "HEAD"], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        yield Path(tmp), rev


def _git(path: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else ""


def import_code(
    folder: Path, *modules: str, stub_tensorboard: bool = True
) -> list[types.ModuleType]:
    """Import ``modules`` of a peer's code from ``folder`` (its own top-level packages first).

    Modules of an earlier peer with the same top-level names (``models``, ``dataset``,
    ``utils``, ``train``) are dropped first. ``torch.utils.tensorboard`` is stubbed when the
    code imports it only for logging and tensorboard is not installed.
    """
    tops = {"models", "dataset", "utils", "train", *(m.split(".")[0] for m in modules)}
    for name in list(sys.modules):
        if name.split(".")[0] in tops:
            del sys.modules[name]
    if stub_tensorboard and importlib.util.find_spec("tensorboard") is None:
        tb = types.ModuleType("torch.utils.tensorboard")
        tb.SummaryWriter = _NoWriter
        sys.modules["torch.utils.tensorboard"] = tb
    sys.path.insert(0, str(folder))
    try:
        return [importlib.import_module(m) for m in modules]
    finally:
        sys.path.remove(str(folder))


class _NoWriter:
    """A SummaryWriter that writes nothing (the peer's TensorBoard logging, not needed here)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None


def proxy_module(module: types.ModuleType, **attrs: Any) -> types.ModuleType:
    """``module`` as a peer's code sees it: every attribute the same except ``attrs``."""
    proxy = types.ModuleType(module.__name__)
    proxy.__getattr__ = lambda name: getattr(module, name)  # type: ignore[method-assign]
    for name, value in attrs.items():
        setattr(proxy, name, value)
    return proxy


def cpu_torch() -> types.ModuleType:
    """``torch`` as seen by a CUDA-only script: every attribute the same, ``device`` -> cpu."""
    return proxy_module(torch, device=lambda *a, **k: torch.device("cpu"))


#: ``(object, attribute, replacement, reason)``: what a CUDA-only script of the torch-1.x era
#: needs to run on the CPU under a current torch (see :func:`cpu_shims`).
CPU_SHIMS: tuple[tuple[Any, str, Any, str], ...] = (
    (torch.Tensor, "cuda", lambda self, *a, **k: self, "Tensor.cuda() is the identity on the CPU"),
    (nn.Module, "cuda", lambda self, *a, **k: self, "Module.cuda() is the identity on the CPU"),
    (
        torch.utils.data.dataloader._BaseDataLoaderIter,
        "next",
        torch.utils.data.dataloader._BaseDataLoaderIter.__next__,
        "iterator.next() (gone since torch 1.13)",
    ),
)


def cpu_shims(p: Patches) -> None:
    """Apply every :data:`CPU_SHIMS` entry through ``p`` (each recorded, restored after)."""
    for obj, name, value, why in CPU_SHIMS:
        p.set(obj, name, value, why)


def machine() -> dict[str, Any]:
    """Where the peer ran: threads, torch, our revision."""
    here = Path(__file__).resolve().parents[2]
    return {
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": "cpu",
        "machine": os.uname().machine,
        "sslt_bench_git": _git(here, "rev-parse", "--short=12", "HEAD") or None,
    }
