"""The split object: labeled D, unlabeled U (labels hidden), test set, many/medium/few.

A split is a pure function of (data set, parameters, seed) and the sorted list of items per
class, and carries a content hash (sha256 over its index and label arrays), so two users with
the same files can check that they train and test on the same items. U's true labels are kept
only for diagnostics (pseudo-label accuracy); methods never receive them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError

SPLIT_NAMES = ("many", "medium", "few")


@dataclass(frozen=True, eq=False)
class Split:
    """Indices and labels of one SSLT split.

    Attributes:
        dataset: registered data set name.
        params: the data set parameters that produced it (JSON-friendly).
        seed: the split seed.
        class_names: one name per class.
        labeled_idx: indices of D into the train source.
        labeled_y: labels of D.
        unlabeled_idx: indices of U into the train source.
        test_idx: indices into the test source.
        test_y: test labels.
        class_split: per class, 0 = many, 1 = medium, 2 = few.
        unlabeled_y_hidden: true labels of U, for diagnostics only.
    """

    dataset: str
    params: dict[str, Any]
    seed: int
    class_names: tuple[str, ...]
    labeled_idx: np.ndarray
    labeled_y: np.ndarray
    unlabeled_idx: np.ndarray
    test_idx: np.ndarray
    test_y: np.ndarray
    class_split: np.ndarray
    unlabeled_y_hidden: np.ndarray = field(repr=False)

    def __post_init__(self) -> None:
        for name in (
            "labeled_idx",
            "labeled_y",
            "unlabeled_idx",
            "test_idx",
            "test_y",
            "class_split",
            "unlabeled_y_hidden",
        ):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.int64))
        if len(np.intersect1d(self.labeled_idx, self.unlabeled_idx)):
            raise ValueError("labeled and unlabeled sets overlap")

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return len(self.class_names)

    @property
    def labeled_counts(self) -> np.ndarray:
        """Labeled images per class, n_j."""
        return np.bincount(self.labeled_y, minlength=self.num_classes)

    @property
    def unlabeled_counts(self) -> np.ndarray:
        """Unlabeled images per class, m_j (from the hidden labels; unknown ones, -1, skipped)."""
        y = self.unlabeled_y_hidden
        return np.bincount(y[y >= 0], minlength=self.num_classes)

    @property
    def split_sizes(self) -> dict[str, int]:
        """Number of classes in each of many/medium/few."""
        return {n: int((self.class_split == i).sum()) for i, n in enumerate(SPLIT_NAMES)}

    @property
    def hash(self) -> str:
        """sha256 (first 16 hex digits) of the split's content."""
        h = hashlib.sha256()
        for arr in (
            self.labeled_idx,
            self.labeled_y,
            self.unlabeled_idx,
            self.unlabeled_y_hidden,
            self.test_idx,
            self.test_y,
            self.class_split,
        ):
            h.update(np.ascontiguousarray(arr, dtype="<i8").tobytes())
            h.update(b"|")
        h.update(json.dumps(list(self.class_names)).encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        """Counts and hash, JSON-friendly (what ``splits show`` prints)."""
        return {
            "dataset": self.dataset,
            "seed": self.seed,
            "params": self.params,
            "hash": self.hash,
            "num_classes": self.num_classes,
            "labeled": int(len(self.labeled_idx)),
            "unlabeled": int(len(self.unlabeled_idx)),
            "test": int(len(self.test_idx)),
            "split_sizes": self.split_sizes,
            "labeled_counts": self.labeled_counts.tolist(),
            "unlabeled_counts": self.unlabeled_counts.tolist(),
            "achieved_ratio": achieved_ratio(self.labeled_counts),
        }

    def to_json(self) -> dict[str, Any]:
        """Every item list, for ``splits export``."""
        return {
            "dataset": self.dataset,
            "params": self.params,
            "seed": self.seed,
            "class_names": list(self.class_names),
            "hash": self.hash,
            "labeled_idx": self.labeled_idx.tolist(),
            "labeled_y": self.labeled_y.tolist(),
            "unlabeled_idx": self.unlabeled_idx.tolist(),
            "unlabeled_y_hidden": self.unlabeled_y_hidden.tolist(),
            "test_idx": self.test_idx.tolist(),
            "test_y": self.test_y.tolist(),
            "class_split": self.class_split.tolist(),
        }

    @classmethod
    def from_json(cls, obj: Any) -> Split:
        """Inverse of :meth:`to_json`; checks structure and invariants, then the stored hash.

        The checks hold whether or not the file carries a hash (a hand-made file has none).

        Raises:
            UsageError: one line naming the first problem found.
        """
        problem = split_file_problem(obj)
        if problem:
            raise UsageError(f"invalid split file: {problem}")
        split = cls(
            dataset=obj["dataset"],
            params=obj["params"],
            seed=obj["seed"],
            class_names=tuple(obj["class_names"]),
            labeled_idx=obj["labeled_idx"],
            labeled_y=obj["labeled_y"],
            unlabeled_idx=obj["unlabeled_idx"],
            test_idx=obj["test_idx"],
            test_y=obj["test_y"],
            class_split=obj["class_split"],
            unlabeled_y_hidden=obj["unlabeled_y_hidden"],
        )
        if obj.get("hash") not in (None, split.hash):
            raise UsageError(
                f"split file hash {obj['hash']} does not match its content "
                f"({split.hash}): the file was edited or is corrupt"
            )
        return split

    @classmethod
    def load(cls, path: str | Path) -> Split:
        """Read a split exported with ``splits export``; errors name the file."""
        try:
            obj = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read split file {path}: {exc}") from None
        try:
            return cls.from_json(obj)
        except UsageError as exc:
            raise UsageError(f"split file {path}: {exc}") from None


_INT_LISTS = (
    "labeled_idx",
    "labeled_y",
    "unlabeled_idx",
    "unlabeled_y_hidden",
    "test_idx",
    "test_y",
    "class_split",
)


def _int_list_problem(key: str, value: Any) -> str | None:
    if not isinstance(value, list):
        return f"{key} is {type(value).__name__}, expected a list of integers"
    bad = next((v for v in value if isinstance(v, bool) or not isinstance(v, int)), None)
    if bad is not None:
        return f"{key} holds {bad!r}, expected integers"
    return None


def split_file_problem(obj: Any) -> str | None:
    """The first structural problem of a split file's JSON (``None`` if there is none).

    Checks: a JSON object with every field of :meth:`Split.to_json` and the right types;
    matching lengths; indices >= 0 and never repeated; D and U disjoint; labels of D and the
    test set in [0, C), hidden labels of U in [-1, C); every class in group 0-2 (many, medium,
    few). Whether the indices exist in the data, and test/train disjointness when both index
    one source, are checked against the data by the runner.
    """
    if not isinstance(obj, dict):
        return f"expected a JSON object (as 'splits export' writes), got a {type(obj).__name__}"
    missing = [k for k in ("dataset", "params", "seed", "class_names", *_INT_LISTS) if k not in obj]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    if not isinstance(obj["dataset"], str) or not isinstance(obj["params"], dict):
        return "dataset must be a string and params an object"
    if isinstance(obj["seed"], bool) or not isinstance(obj["seed"], int):
        return f"seed is {obj['seed']!r}, expected an integer"
    names = obj["class_names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        return "class_names must be a non-empty list of strings"
    if len(set(names)) != len(names):
        return "class_names has duplicates"
    for key in _INT_LISTS:
        problem = _int_list_problem(key, obj[key])
        if problem:
            return problem
    num_classes = len(names)
    for idx, y in (("labeled_idx", "labeled_y"), ("unlabeled_idx", "unlabeled_y_hidden"),
                   ("test_idx", "test_y")):  # fmt: skip
        if len(obj[idx]) != len(obj[y]):
            return f"{idx} has {len(obj[idx])} items but {y} has {len(obj[y])}"
        arr = np.asarray(obj[idx], dtype=np.int64)
        if len(arr) and arr.min() < 0:
            return f"{idx} holds the negative index {int(arr.min())}; indices must be >= 0"
        uniq, counts = np.unique(arr, return_counts=True)
        if len(uniq) != len(arr):
            return f"{idx} lists item {int(uniq[counts > 1][0])} more than once"
        low = -1 if y == "unlabeled_y_hidden" else 0
        labels = np.asarray(obj[y], dtype=np.int64)
        if len(labels) and not (low <= labels.min() and labels.max() < num_classes):
            worst = int(labels.min() if labels.min() < low else labels.max())
            return f"{y} holds label {worst}; valid labels: {low} to {num_classes - 1}"
    both = np.intersect1d(obj["labeled_idx"], obj["unlabeled_idx"])
    if len(both):
        return f"item {int(both[0])} is in both labeled and unlabeled ({len(both)} such items)"
    groups = np.asarray(obj["class_split"], dtype=np.int64)
    if len(groups) != num_classes:
        return f"class_split has {len(groups)} entries for {num_classes} classes"
    if len(groups) and (groups.min() < 0 or groups.max() > 2):
        bad = int(groups[(groups < 0) | (groups > 2)][0])
        return f"class_split holds group {bad}; valid: 0 (many), 1 (medium), 2 (few)"
    return None


def exponential_counts(n_max: int, ratio: float, num_classes: int) -> np.ndarray:
    """Per-class counts n_i = floor(n_max * ratio^(-i/(C-1))), at least 1 (Cao et al. 2019)."""
    if ratio < 1:
        raise UsageError(f"imbalance_ratio must be >= 1, got {ratio}")
    i = np.arange(num_classes)
    counts = np.floor(n_max * ratio ** (-i / max(num_classes - 1, 1)) + 1e-9)
    return np.maximum(counts, 1).astype(np.int64)


def splits_by_rank(counts: np.ndarray, sizes: tuple[int, int, int]) -> np.ndarray:
    """Many/medium/few by rank: the ``sizes[0]`` most populated classes are many, and so on."""
    order = np.argsort(-np.asarray(counts), kind="stable")
    out = np.empty(len(counts), dtype=np.int64)
    bounds = np.cumsum(sizes)
    for rank, c in enumerate(order):
        out[c] = int(np.searchsorted(bounds, rank, side="right"))
    return np.minimum(out, 2)


def splits_by_rank_thirds(counts: np.ndarray) -> np.ndarray:
    """Many/medium/few as rank thirds (the remainder goes to few)."""
    n = len(counts)
    third = n // 3
    return splits_by_rank(counts, (third, third, n - 2 * third))


def splits_by_threshold(counts: np.ndarray, many_above: int, few_at_most: int) -> np.ndarray:
    """Many if n > ``many_above``, few if n <= ``few_at_most``, else medium (ImageNet-SSLT)."""
    counts = np.asarray(counts)
    return np.where(counts > many_above, 0, np.where(counts <= few_at_most, 2, 1)).astype(np.int64)


def achieved_ratio(counts: Any) -> float | None:
    """n_max / n_min of the actual labeled counts (rounded to 0.01), ``None`` if a class is empty.

    Floors and the at-least-one rule make it differ from the requested ``imbalance_ratio``
    (cifar10-sslt, n_max 833, ratio 1000: counts end 3, 1, 1, so 833).
    """
    counts = [int(c) for c in counts]
    if not counts or min(counts) <= 0:
        return None
    return round(max(counts) / min(counts), 2)


def draw_per_class(
    labels: np.ndarray,
    labeled_counts: np.ndarray,
    unlabeled_counts: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw disjoint labeled and unlabeled index sets with the given per-class counts.

    Items of each class are taken in sorted index order, permuted by ``rng``; the first
    ``labeled_counts[c]`` are labeled, the next ``unlabeled_counts[c]`` unlabeled.

    Returns:
        (labeled indices, unlabeled indices), each sorted.
    """
    lab, unl = [], []
    for c, (n, m) in enumerate(zip(labeled_counts, unlabeled_counts, strict=True)):
        pool = np.flatnonzero(labels == c)
        if n + m > len(pool):
            raise UsageError(
                f"class {c} has {len(pool)} images but the split asks for {n} labeled + "
                f"{m} unlabeled; lower n_max or the unlabeled factor"
            )
        perm = rng.permutation(pool)
        lab.append(perm[:n])
        unl.append(perm[n : n + m])
    return np.sort(np.concatenate(lab)), np.sort(np.concatenate(unl))
