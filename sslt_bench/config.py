"""Typed configuration: dataclass defaults, named profiles and ``--set key=value`` overrides.

Every method and data set declares a dataclass whose defaults are the paper's values. A
*profile* is a named dict of overrides (``quick`` is the CPU budget, ``paper`` the defaults).
User overrides are parsed against the field's type; unknown keys and ill-typed values raise
a one-line :class:`~sslt_bench.errors.UsageError` naming the valid keys or type.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from .errors import UsageError, choices_error

C = TypeVar("C")
PROFILES = ("quick", "paper")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse(key: str, text: str, tp: Any) -> Any:
    """Parse ``text`` as a value of type ``tp`` (str values from the CLI, or typed values)."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if isinstance(text, str) and text.lower() in {"none", "null", ""}:
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
        The config instance; its ``validate()`` method, if any, has been called.
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
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        validate()
    return cfg


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
