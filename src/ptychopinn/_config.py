"""Shared helper for frozen-dataclass configurations that round-trip to JSON."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from ptychopinn.errors import ConfigError

T = TypeVar("T")


def strict_from_dict(cls: type[T], d: dict[str, Any], what: str) -> T:
    """``cls(**d)``, refusing keys that are not fields of ``cls`` (names them in the error)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown {what} keys: {', '.join(unknown)}")
    check_types(cls, d, what)  # type: ignore[arg-type]
    return cls(**d)


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(_type_ok(v, args[0]) for v in value) if args else True
    return True  # annotations this checker does not know are not checked


def type_problem(cls: type, d: dict[str, Any]) -> tuple[str, str] | None:
    """(key, problem) for the first value whose JSON type does not fit its field's annotation
    (e.g. ``"N": "64"``), or None. Keys that are not fields are not checked here."""
    hints = typing.get_type_hints(cls)
    for name, value in d.items():
        tp = hints.get(name)
        if tp is not None and not _type_ok(value, tp):
            return name, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
    return None


def check_types(cls: type, d: dict[str, Any], what: str) -> None:
    """ConfigError naming the key when a value's type does not fit (see :func:`type_problem`)."""
    bad = type_problem(cls, d)
    if bad is not None:
        raise ConfigError(f"{what} key '{bad[0]}': {bad[1]}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
