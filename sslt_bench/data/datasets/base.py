"""What a data set builder is: typed parameters and ``build(params, seed, root)``.

A builder is a class registered with :func:`~sslt_bench.registry.register_dataset`. Its
``Params`` dataclass holds the split parameters (defaults = the paper's); ``build`` returns an
:class:`~sslt_bench.data.source.SSLTData` whose split is a pure function of (params, seed,
the sorted items per class).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ..source import SSLTData


@dataclass
class NoParams:
    """A data set without parameters."""


class DatasetBuilder:
    """Base class: override ``Params`` and ``build``."""

    Params: ClassVar[type] = NoParams
    #: Method settings this data set needs per profile (below the user's ``--set``, above the
    #: method's profile): the default ``backbone`` and, for tiny data, a smaller ``batch_size``.
    hints: ClassVar[dict[str, dict[str, object]]] = {
        "quick": {"backbone": "resnet20"},
        "paper": {"backbone": "resnet32"},
    }

    @classmethod
    def build(cls, params, seed: int, root: Path | None) -> SSLTData:
        """Build the data and its split for ``seed``; ``root`` is ``--data-root``/SSLT_DATA."""
        raise NotImplementedError

    @classmethod
    def smoke_fixture(cls, root: Path) -> tuple[Path | None, dict[str, str]]:
        """Make a tiny stand-in of this data set under ``root`` for the smoke test.

        The registry-driven test suite builds every registered data set from this fixture, so
        a data set that reads files must write a few small files in its own layout here.

        Returns:
            (the ``--data-root`` to use or ``None``, ``--set`` overrides for a tiny split).
        """
        return None, {}


def cache_dir() -> Path:
    """Where decoded-image caches live (``SSLT_CACHE`` or ``~/.cache/sslt-bench``)."""
    path = Path(os.environ.get("SSLT_CACHE", Path.home() / ".cache" / "sslt-bench"))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from ...errors import UsageError

        why = "it is a file" if path.exists() and not path.is_dir() else exc.strerror
        raise UsageError(
            f"image cache folder {path} cannot be used ({why}); set SSLT_CACHE to a writable folder"
        ) from None
    return path
