"""sslt-bench: a benchmark suite and baseline zoo for semi-supervised long-tailed recognition.

The public API a plug-in needs is importable from here (``from sslt_bench import ...``) and
documented, with a worked method and a worked data set, in ``docs/extending.md``:

* registration: :func:`register_method`, :func:`register_dataset`, :func:`register_model`;
* methods: :class:`Method`, :class:`BaseConfig`, :class:`DataInfo`, :func:`in_range` (a
  config field with its valid range), and the steps of a plan: :class:`Train`,
  :class:`TrainHead`, :class:`PseudoLabel`, :class:`Evaluate`, :class:`Call`,
  :class:`Unlabeled`, with what a loss receives: :class:`Batch`, :class:`StepContext`;
* data sets: :class:`DatasetBuilder`, :class:`SSLTData`, :class:`TensorSource`,
  :class:`Split` and the split helpers :func:`exponential_counts`,
  :func:`draw_per_class`, :func:`splits_by_rank`.

Everything but the registration functions is imported on first use, so ``import
sslt_bench`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .registry import register_dataset, register_method, register_model

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported lazily by ``__getattr__``).
_LAZY = {
    "Method": "sslt_bench.methods.base",
    "BaseConfig": "sslt_bench.methods.base",
    "DataInfo": "sslt_bench.methods.base",
    "in_range": "sslt_bench.config",
    "Train": "sslt_bench.train.stages",
    "TrainHead": "sslt_bench.train.stages",
    "PseudoLabel": "sslt_bench.train.stages",
    "Evaluate": "sslt_bench.train.stages",
    "Call": "sslt_bench.train.stages",
    "Unlabeled": "sslt_bench.train.stages",
    "Batch": "sslt_bench.train.stages",
    "StepContext": "sslt_bench.train.stages",
    "DatasetBuilder": "sslt_bench.data.datasets.base",
    "SSLTData": "sslt_bench.data.source",
    "TensorSource": "sslt_bench.data.source",
    "Split": "sslt_bench.data.split",
    "exponential_counts": "sslt_bench.data.split",
    "draw_per_class": "sslt_bench.data.split",
    "splits_by_rank": "sslt_bench.data.split",
}

__all__ = [
    "__version__",
    "register_dataset",
    "register_method",
    "register_model",
    "Method",
    "BaseConfig",
    "DataInfo",
    "in_range",
    "Train",
    "TrainHead",
    "PseudoLabel",
    "Evaluate",
    "Call",
    "Unlabeled",
    "Batch",
    "StepContext",
    "DatasetBuilder",
    "SSLTData",
    "TensorSource",
    "Split",
    "exponential_counts",
    "draw_per_class",
    "splits_by_rank",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sslt_bench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on use
    from .config import in_range
    from .data.datasets.base import DatasetBuilder
    from .data.source import SSLTData, TensorSource
    from .data.split import Split, draw_per_class, exponential_counts, splits_by_rank
    from .methods.base import BaseConfig, DataInfo, Method
    from .train.stages import (
        Batch,
        Call,
        Evaluate,
        PseudoLabel,
        StepContext,
        Train,
        TrainHead,
        Unlabeled,
    )
