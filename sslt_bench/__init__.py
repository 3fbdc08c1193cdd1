"""sslt-bench: a benchmark suite and baseline zoo for semi-supervised long-tailed recognition.

Public API for plug-ins: :func:`register_method`, :func:`register_dataset`,
:func:`register_model`, the :class:`~sslt_bench.methods.base.Method` base class and the step
types of :mod:`sslt_bench.stages`.
"""

__version__ = "0.1.0"

from .registry import register_dataset, register_method, register_model  # noqa: E402

__all__ = ["__version__", "register_dataset", "register_method", "register_model"]
