"""Shared helper for frozen-dataclass configurations that round-trip to JSON."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from ptychopinn.errors import ConfigError

T = TypeVar("T")


def strict_from_dict(cls: type[T], d: dict[str, Any], what: str) -> T:
    """``cls(**d)``, refusing keys that are not fields of ``cls`` (names them in the error)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - names)
    if unknown:
        raise ConfigError(f"unknown {what} keys: {', '.join(unknown)}")
    return cls(**d)
