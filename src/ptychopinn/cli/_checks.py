"""Checks every command makes before it starts work: numeric options, option pairs, and the
output rule (:func:`ptychopinn._io.check_output`, re-exported here).

Numeric options use the ``argparse`` types below: a NaN, an Inf, a negative or a zero where it
means nothing is refused while the command line is parsed (``error: argument --nphotons: ...``,
exit status 2).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from ptychopinn._io import check_output  # noqa: F401 - the output rule, used by every command as ck.check_output
from ptychopinn.errors import ConfigError

#: seeds feed numpy's SeedSequence and torch.manual_seed: non-negative and below 2**63
SEED_MAX = 2 ** 63 - 1


# ---------------------------------------------------------------------------------------------
# numeric option types (argparse prefixes the message with "argument --name:")
# ---------------------------------------------------------------------------------------------
def _number(text: str, kind: type) -> float | int:
    try:
        if kind is int:
            return int(text, 10)
        return float(text)
    except (TypeError, ValueError):
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}; got {text!r}") from None


def number(kind: type = float, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> Callable[[str], float | int]:
    """An argparse ``type=``: a finite ``kind`` (int or float) in [low, high] (``*_open``: strict)."""

    def parse(text: str) -> float | int:
        v = _number(text, kind)
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number; got {text!r}")
        if low is not None and (v <= low if low_open else v < low):
            raise argparse.ArgumentTypeError(f"must be {'>' if low_open else '>='} {low:g}; got {text!r}")
        if high is not None and (v >= high if high_open else v > high):
            raise argparse.ArgumentTypeError(f"must be {'<' if high_open else '<='} {high:g}; got {text!r}")
        return v

    lo = "" if low is None else f"{'>' if low_open else '>='}{low:g}"
    parse.__name__ = f"{kind.__name__}{lo}"  # argparse shows it only for plain ValueErrors
    return parse


positive_int = number(int, low=1)
non_negative_int = number(int, low=0)
positive_float = number(float, low=0, low_open=True)
non_negative_float = number(float, low=0)
finite_float = number(float)
fraction = number(float, low=0, high=1, high_open=True)  # [0, 1)
seed = number(int, low=0, high=SEED_MAX)
#: photons per pattern: numpy's Poisson sampler stops near 9.2e18 counts (see data.simulate)
dose = number(float, low=0, low_open=True, high=1e18)


def dose_list(text: str) -> tuple[float, ...]:
    """Comma-separated doses (each like :data:`dose`), e.g. ``1e3,1e4``."""
    items = [t.strip() for t in text.split(",")]
    if not text.strip() or any(not t for t in items):
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers; got {text!r}")
    return tuple(dose(t) for t in items)


def check_type(check: str, kind: type | None) -> Callable[[str], Any]:
    """The argparse type of a field's ``opt(check=...)`` (``kind``: the field's int or float)."""
    if check in ("positive", "non_negative"):
        return {("positive", int): positive_int, ("non_negative", int): non_negative_int,
                ("positive", float): positive_float, ("non_negative", float): non_negative_float}[check, kind or float]
    return {"fraction": fraction, "seed": seed, "dose": dose, "doses": dose_list, "finite": finite_float}[check]


# ---------------------------------------------------------------------------------------------
# contradictory or meaningless option pairs (refused before any work)
# ---------------------------------------------------------------------------------------------
def refuse_pairs(pairs: list[tuple[bool, str, str, str]]) -> None:
    """Raise :class:`ConfigError` naming both options for the first pair that is given together.

    ``pairs``: (both given, option A, option B, why) -- ``why`` completes the sentence
    "A and B ...", e.g. "contradict each other (continue the run, or replace it)"."""
    for both, a, b, why in pairs:
        if both:
            raise ConfigError(f"{a} and {b} {why}")
