"""The one configuration base: frozen dataclasses that refuse unknown keys and round-trip JSON."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from ptychopinn.errors import ConfigError

T = TypeVar("T")
C = TypeVar("C", bound="Config")


def strict_from_dict(cls: type[T], d: Mapping[str, Any], what: str) -> T:
    """``cls(**d)``, refusing keys that are not fields of ``cls`` (names them in the error); list
    values of tuple-typed fields become tuples (JSON has no tuples)."""
    fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {what} keys: {', '.join(unknown)}")
    check_types(cls, dict(d), what)  # type: ignore[arg-type]
    return cls(**{k: tuple(v) if isinstance(v, list) and fields[k].startswith("tuple") else v
                  for k, v in d.items()})


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


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class of every configuration dataclass (subclasses are ``@dataclass(frozen=True)``).

    :meth:`to_dict` / :meth:`from_dict` and :meth:`to_json` / :meth:`from_json` round-trip;
    an unknown key is a :class:`~ptychopinn.errors.ConfigError` naming it. Subclasses validate
    their values in ``__post_init__``."""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
        return strict_from_dict(cls, d, f"{cls.__name__}")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{cls.__name__}: not valid JSON ({exc.msg})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__}: expected a JSON object; got {type(d).__name__}")
        return cls.from_dict(d)
