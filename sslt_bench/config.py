"""Typed configuration: dataclass defaults, named profiles and ``--set key=value`` overrides.

Every method and data set declares a dataclass whose defaults are the paper's values. A
*profile* is a named dict of overrides (``quick`` is the CPU budget, ``paper`` the defaults).
User overrides are parsed against the field's type; unknown keys and ill-typed values raise
a one-line :class:`~sslt_bench.errors.UsageError` naming the valid keys or type.

Ranges are declared once, on the field: ``lr: float = in_range(0.1, "(0, inf)")`` stores the
interval as field metadata, and :func:`check_config` (called by :func:`build_config`) checks
every field of every config the same way: numbers must be finite and inside their declared
interval. A subclass that only changes a default (``lr: float = 0.03``) keeps the range its
base class declared. A config's own ``validate()`` method, if any, is for cross-field checks
and runs after the ranges.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from .errors import UsageError, choices_error

C = TypeVar("C")
PROFILES = ("quick", "paper")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_value(key: str, text: Any, tp: Any) -> Any:
    """Parse ``text`` as a value of type ``tp`` (str values from the CLI, or typed values).

    Raises:
        UsageError: ``text`` is not a valid ``tp``; the message names ``key`` and the type.
    """
    return _parse(key, text, tp)


def _parse(key: str, text: str, tp: Any) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if text is None or (isinstance(text, str) and text.lower() in {"none", "null", ""}):
            return None
        errors = []
        for arg in args:
            try:
                return _parse(key, text, arg)
            except UsageError as exc:
                errors.append(str(exc))
        raise UsageError(f"bad value {text!r} for {key}: expected {tp}")
    if origin is Literal:
        choices = get_args(tp)
        if text not in choices:
            raise UsageError(
                f"bad value {text!r} for {key}; choose from: {', '.join(map(str, choices))}"
            )
        return text
    if origin in (tuple, list):
        inner = get_args(tp)[0] if get_args(tp) else str
        items = text if isinstance(text, (list, tuple)) else [t for t in str(text).split(",") if t]
        return tuple(_parse(key, t, inner) for t in items)
    if tp is bool:
        if isinstance(text, bool):
            return text
        low = str(text).lower()
        if low in _TRUE | _FALSE:
            return low in _TRUE
        raise UsageError(f"bad value {text!r} for {key}: expected true or false")
    if tp in (int, float):
        if isinstance(text, bool):
            raise UsageError(f"bad value {text!r} for {key}: expected {tp.__name__}")
        try:
            value = tp(text)
        except (TypeError, ValueError):
            raise UsageError(f"bad value {text!r} for {key}: expected {tp.__name__}") from None
        if tp is int and isinstance(text, float) and text != int(text):
            raise UsageError(f"bad value {text!r} for {key}: expected int")
        return value
    if tp is str:
        return str(text)
    return text


_INTERVAL = re.compile(r"^([\[(])\s*([^,\s]+)\s*,\s*([^\])\s]+)\s*([\])])$")


def in_range(default: Any, interval: str, *, split: bool = True, **kwargs: Any) -> Any:
    """A dataclass field whose value must lie in ``interval`` (``"[0, 1)"``, ``"(0, inf)"``).

    Args:
        default: the field's default.
        interval: closed ``[``/``]`` or open ``(``/``)`` bounds; ``inf``/``-inf`` for none.
        split: for data parameters, whether the value shapes the split (see
            :func:`not_split`).
        **kwargs: passed on to :func:`dataclasses.field`.

    Returns:
        The field, with the interval in its metadata under ``"range"``.
    """
    _parse_interval(interval)  # fail at import time on a malformed interval
    meta = {"range": interval, **({} if split else {"split": False})}
    return dataclasses.field(default=default, metadata=meta, **kwargs)


def not_split(default: Any, **kwargs: Any) -> Any:
    """A data parameter that does not shape the split (decoding, augmentation, download).

    With ``--split-file`` the data parameters come from the file and a ``--set`` that
    contradicts one is refused; a parameter marked here may still be set by the user.
    """
    return dataclasses.field(default=default, metadata={"split": False}, **kwargs)


def shapes_split(cls: type, name: str) -> bool:
    """Whether data parameter ``name`` of ``cls`` shapes the split (the default: yes)."""
    for klass in getattr(cls, "__mro__", (cls,)):
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and "split" in f.metadata:
            return bool(f.metadata["split"])
    return True


def _parse_interval(interval: str) -> tuple[float, float, bool, bool]:
    m = _INTERVAL.match(interval.strip())
    if not m:
        raise ValueError(f"bad interval {interval!r}: expected e.g. '[0, 1)' or '(0, inf)'")
    return float(m[2]), float(m[3]), m[1] == "(", m[4] == ")"


def _describe(interval: str) -> str:
    """``>= 1``, ``> 0`` or ``in [0, 1)``: how an error message states an interval."""
    lo, hi, lo_open, hi_open = _parse_interval(interval)
    if math.isinf(hi) and not math.isinf(lo):
        return f"{'>' if lo_open else '>='} {lo:g}"
    if math.isinf(lo) and not math.isinf(hi):
        return f"{'<' if hi_open else '<='} {hi:g}"
    return f"in {interval}"


def _inside(value: float, interval: str) -> bool:
    lo, hi, lo_open, hi_open = _parse_interval(interval)
    above = value > lo if lo_open else value >= lo
    below = value < hi if hi_open else value <= hi
    return above and below


def field_range(cls: type, name: str) -> str | None:
    """The interval declared for field ``name`` on ``cls`` or the nearest base that has one."""
    for klass in getattr(cls, "__mro__", (cls,)):
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and "range" in f.metadata:
            return f.metadata["range"]
    return None


def check_config(cfg: Any) -> None:
    """Check every numeric field of ``cfg``: finite, and inside its declared range.

    Tuples of numbers are checked element by element. Booleans and strings are left to the
    parser (types, ``Literal`` choices).

    Raises:
        UsageError: one line naming the setting, the bad value and what would be valid.
    """
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        items = value if isinstance(value, (tuple, list)) else (value,)
        interval = field_range(type(cfg), f.name)
        for v in items:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            want = _describe(interval) if interval else ""
            if not math.isfinite(v):
                raise UsageError(
                    f"{f.name} must be a finite number{' ' + want if want else ''}, got {v}"
                )
            if interval and not _inside(v, interval):
                shown = value if isinstance(value, (tuple, list)) else v
                raise UsageError(f"{f.name} must be {want}, got {_show(shown)}")


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(_show, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_batch_size(cfg: Any, pool: int, min_steps: int) -> None:
    """Refuse a ``batch_size`` larger than the training pool when epochs are padded.

    A data set with a floor on batches per epoch (``min_steps_per_epoch``) cycles the pool up
    to that many batches; with a batch larger than the pool that repeats the data thousands
    of times per epoch (``batch_size=100000`` on digits-sslt: 3.2 M images an epoch).

    Args:
        cfg: the method config (its ``batch_size``, if it has one, is checked).
        pool: images a stage can train on (|D| + |U|).
        min_steps: the data set's floor on batches per epoch (0: none, nothing is checked).
    """
    batch = getattr(cfg, "batch_size", None)
    if min_steps and isinstance(batch, int) and batch > pool:
        raise UsageError(
            f"batch_size {batch} is larger than the {pool} training images of this split; "
            f"choose batch_size <= {pool}"
        )


def field_types(cls: type) -> dict[str, Any]:
    """Resolved type hints of the dataclass ``cls``'s fields."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def build_config(
    cls: type[C],
    profile: str = "paper",
    overrides: Mapping[str, Any] | None = None,
    profiles: Mapping[str, Mapping[str, Any]] | None = None,
) -> C:
    """Instantiate the dataclass ``cls`` from defaults, a profile and user overrides.

    Args:
        cls: the config dataclass.
        profile: ``"paper"`` (the defaults) or another named profile in ``profiles``.
        overrides: ``key -> value`` from the user (strings are parsed by field type).
        profiles: named override dicts; defaults to ``cls.PROFILES`` if present.

    Returns:
        The config instance, checked by :func:`check_config`; its ``validate()`` method (for
        cross-field checks), if any, has been called.
    """
    profiles = profiles if profiles is not None else getattr(cls, "PROFILES", {})
    if profile not in PROFILES and profile not in profiles:
        raise choices_error("profile", profile, set(PROFILES) | set(profiles))
    types_ = field_types(cls)
    values: dict[str, Any] = {}
    for source in (dict(profiles.get(profile, {})), dict(overrides or {})):
        for key, raw in source.items():
            if key not in types_:
                raise UsageError(
                    f"unknown setting {key!r} for {cls.__name__}; valid keys: "
                    + ", ".join(sorted(types_))
                )
            values[key] = _parse(key, raw, types_[key])
    cfg = cls(**values)
    check_config(cfg)
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        validate()
    return cfg


def method_config(
    cls: type[C],
    profile: str,
    hints: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> C:
    """The method config a run gets: the profile, then a data set's hints, then the user's.

    Args:
        cls: the method's config dataclass.
        profile: the profile name (``quick``, ``paper`` or one of ``cls.PROFILES``).
        hints: the data set's settings for this profile (``builder.hints[profile]``); keys
            that ``cls`` lacks are ignored, as a data set hints every method at once.
        overrides: the user's ``--set`` values for the method group.
    """
    fields = field_types(cls)
    kept = {k: v for k, v in (hints or {}).items() if k in fields}
    return build_config(cls, profile, {**kept, **(overrides or {})})


def split_overrides(pairs: list[str], groups: Mapping[str, type]) -> dict[str, dict[str, str]]:
    """Route ``key=value`` strings to the config group that owns the key.

    A key may be qualified (``method.lr=0.05``, ``data.imbalance_ratio=10``); an unqualified key
    goes to the only group that has it.

    Args:
        pairs: raw ``key=value`` strings from ``--set``.
        groups: group name -> config dataclass.

    Returns:
        group name -> {key: raw value}.
    """
    routed: dict[str, dict[str, str]] = {g: {} for g in groups}
    owners = {g: set(field_types(cls)) for g, cls in groups.items()}
    valid = sorted({k for keys in owners.values() for k in keys})
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"bad --set {pair!r}: expected key=value")
        key, value = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        group_hint, _, bare = key.rpartition(".")
        if group_hint:
            if group_hint not in groups:
                raise choices_error("setting group", group_hint, groups)
            if bare not in owners[group_hint]:
                raise UsageError(
                    f"unknown setting {bare!r} for {group_hint}; valid keys: "
                    + ", ".join(sorted(owners[group_hint]))
                )
            routed[group_hint][bare] = value
            continue
        hits = [g for g, keys in owners.items() if bare in keys]
        if not hits:
            raise UsageError(f"unknown setting {bare!r}; valid keys: " + ", ".join(valid))
        if len(hits) > 1:
            raise UsageError(
                f"ambiguous setting {bare!r}: qualify it as "
                + " or ".join(f"{g}.{bare}" for g in hits)
            )
        routed[hits[0]][bare] = value
    return routed


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-friendly dict of a config dataclass."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out
