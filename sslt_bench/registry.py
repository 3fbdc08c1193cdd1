"""Name registries for methods, data sets and backbones.

A decorator registers a name; a duplicate name raises; an unknown name raises a one-line
:class:`~sslt_bench.errors.UsageError` listing the registered names. Third-party packages add
entries through the Python entry-point groups ``sslt_bench.methods``, ``sslt_bench.datasets``
and ``sslt_bench.models``: each entry point names a module (or object) whose import registers
its entries. Import errors propagate: a broken plugin is never silently skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import choices_error

T = TypeVar("T")


class Registry(Generic[T]):
    """A mapping from names to registered objects with a one-line summary each.

    Args:
        kind: human name of what is registered (used in error messages).
        builtin_modules: modules imported on first look-up to register built-in entries.
        group: entry-point group from which third-party entries are loaded.
    """

    def __init__(self, kind: str, builtin_modules: tuple[str, ...], group: str) -> None:
        self.kind = kind
        self._builtin_modules = builtin_modules
        self._group = group
        self._entries: dict[str, T] = {}
        self._summaries: dict[str, str] = {}
        self._prefixes: dict[str, Callable[[str], T]] = {}
        self._loaded = False

    def register_prefix(self, prefix: str, resolve: Callable[[str], T]) -> None:
        """Resolve every name ``prefix + rest`` to ``resolve(rest)`` (e.g. ``timm:<name>``).

        ``resolve`` raises :class:`~sslt_bench.errors.UsageError` for a ``rest`` it lacks.
        """
        self._prefixes[prefix] = resolve

    def register(self, name: str, summary: str | None = None) -> Callable[[T], T]:
        """Return a decorator that registers ``obj`` under ``name``.

        Args:
            name: the registered name (what users type).
            summary: one-line summary; defaults to the first line of ``obj``'s docstring.

        Raises:
            ValueError: if ``name`` is already registered.
        """

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            doc = (getattr(obj, "__doc__", None) or "").strip().splitlines()
            self._entries[name] = obj
            self._summaries[name] = summary or (doc[0] if doc else "")
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        """Remove ``name`` (used by tests that register temporary entries)."""
        self._entries.pop(name, None)
        self._summaries.pop(name, None)

    def load(self) -> None:
        """Import built-in modules and entry points once; import errors propagate."""
        if self._loaded:
            return
        self._loaded = True
        for module in self._builtin_modules:
            importlib.import_module(module)
        for ep in entry_points(group=self._group):
            ep.load()

    def get(self, name: str) -> T:
        """Return the entry registered as ``name``.

        Raises:
            UsageError: if ``name`` is not registered; the message lists the valid names.
        """
        self.load()
        for prefix, resolve in self._prefixes.items():
            if name.startswith(prefix) and name not in self._entries:
                return resolve(name[len(prefix) :])
        if name not in self._entries:
            raise choices_error(
                self.kind, name, [*self._entries, *(f"{p}<name>" for p in self._prefixes)]
            )
        return self._entries[name]

    def names(self) -> list[str]:
        """Sorted registered names."""
        self.load()
        return sorted(self._entries)

    def summary(self, name: str) -> str:
        """The one-line summary of ``name``."""
        self.get(name)
        return self._summaries[name]

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


def import_submodules(package: str, path: list[str]) -> None:
    """Import every module of ``package`` except ``base`` and private ``_*`` ones, in name order.

    Used by the built-in ``methods`` and ``datasets`` packages so a new entry is one new file.
    Import errors propagate.
    """
    import pkgutil

    for info in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        if info.name != "base" and not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


METHODS: Registry = Registry("method", ("sslt_bench.methods",), "sslt_bench.methods")
#: The entry-point group names are public (plug-ins declare them) and independent of where the
#: built-in modules live: ``sslt_bench.datasets`` stays the data-set group.
DATASETS: Registry = Registry("data set", ("sslt_bench.data.datasets",), "sslt_bench.datasets")
MODELS: Registry = Registry("backbone", ("sslt_bench.models",), "sslt_bench.models")

register_method = METHODS.register
register_dataset = DATASETS.register
register_model = MODELS.register
