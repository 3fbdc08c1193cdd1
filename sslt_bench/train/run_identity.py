"""What makes a run itself: its data's content key, a split file's fit to the data, its lock.

A run's identity (and so its record and checkpoint names) includes :func:`data_content_key`,
so swapping the images behind ``--data-root`` makes a new run instead of silently reusing the
other data's model. :func:`split_mismatch` says why an exported split cannot be used with the
data (other data set or classes, missing items, changed labels, test items trained on).
:func:`run_lock` keeps two processes from doing the same run into one ``--out`` at once.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import IO

import numpy as np

from ..data.source import FileSource, SSLTData, TensorSource
from ..data.split import Split
from ..errors import UsageError


def split_mismatch(split: Split, data: SSLTData) -> str | None:
    """Why an exported split cannot be used with ``data`` (``None`` if it can).

    Checks the data set, the class names, that every index exists, and that every item the
    data's own split also labels carries the same label there (a changed data folder).
    """
    built = data.split
    if split.dataset != built.dataset:
        return f"it is of data set {split.dataset!r}, the data is {built.dataset!r}"
    if tuple(split.class_names) != tuple(built.class_names):

        def names(s: Split) -> str:
            return ", ".join(s.class_names[:5]) + (", ..." if s.num_classes > 5 else "")

        return (
            f"its {split.num_classes} classes ({names(split)}) differ "
            f"from the data's {built.num_classes} ({names(built)})"
        )
    if data.train is data.test:  # one source: a test item must not be trained on
        trained = np.concatenate([split.labeled_idx, split.unlabeled_idx])
        leak = np.intersect1d(split.test_idx, trained)
        if len(leak):
            return (
                f"item {int(leak[0])} is in the test set and in D or U ({len(leak)} such "
                "items): test leakage"
            )
    n_train, n_test = len(data.train), len(data.test)
    train_max = max(split.labeled_idx.max(initial=-1), split.unlabeled_idx.max(initial=-1))
    if train_max >= n_train or split.test_idx.max(initial=-1) >= n_test:
        return (
            f"it indexes item {max(train_max, split.test_idx.max(initial=-1))} but the data has "
            f"{n_train} train and {n_test} test images"
        )
    for what, n, ours, theirs in (
        (
            "train",
            n_train,
            [(built.labeled_idx, built.labeled_y), (built.unlabeled_idx, built.unlabeled_y_hidden)],
            [(split.labeled_idx, split.labeled_y), (split.unlabeled_idx, split.unlabeled_y_hidden)],
        ),
        ("test", n_test, [(built.test_idx, built.test_y)], [(split.test_idx, split.test_y)]),
    ):
        known = np.full(n, -1, dtype=np.int64)
        for idx, y in ours:
            known[idx] = y
        for idx, y in theirs:
            k = known[idx]
            bad = np.flatnonzero((k >= 0) & (y >= 0) & (k != y))
            if len(bad):
                i = bad[0]
                return (
                    f"{what} item {idx[i]} has label {y[i]} in the file but {k[i]} in the data "
                    f"({len(bad)} such items)"
                )
    return None


def data_content_key(data: SSLTData) -> str:
    """A short key of the data's content, part of a run's identity.

    Decoded images (:class:`TensorSource`) are hashed byte for byte; file sources by their
    paths (relative to their common folder) and sizes. Swapping the images behind
    ``--data-root`` therefore makes a new run instead of reusing the other data's model.
    """
    h = hashlib.blake2b(digest_size=8)
    for src in dict.fromkeys([data.train, data.test]):  # once if train and test share one
        if isinstance(src, TensorSource):
            h.update(np.ascontiguousarray(src.images.cpu().numpy()).data)
            h.update(str(tuple(src.images.shape)).encode())
        elif isinstance(src, FileSource):
            root = os.path.commonpath([str(p) for p in src.paths]) if src.paths else ""
            for p in src.paths:
                h.update(f"{os.path.relpath(p, root)}\t{os.stat(p).st_size}\n".encode())
        else:
            h.update(f"{type(src).__name__} {len(src)}".encode())
        h.update(b"|")
    return h.hexdigest()


def run_lock(path: Path) -> IO[str]:
    """Hold an exclusive lock on ``path`` (one per run id) for as long as the file stays open.

    Raises:
        UsageError: another process holds it (the same run is already going into this --out).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(path, "a")  # noqa: SIM115 - closed when the run ends (or the process exits)
    try:
        import fcntl

        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except ImportError:  # not POSIX: no lock, as before
        return fh
    except OSError:
        fh.close()
        raise UsageError(
            f"this run is already going in another process (lock {path}); wait for it to "
            "finish (re-running then gives its record) or use another --out"
        ) from None
    return fh
