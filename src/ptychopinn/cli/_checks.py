"""Checks every command makes before it starts work: output paths and numeric options.

Output rule (the same for every command): an output that already exists -- a file, or a
directory that is not empty -- is refused unless ``--overwrite`` is given (``train --resume``
continues the run in place). Paths whose parent is a file, a file where a directory is wanted
(or the reverse) and unwritable places are refused too, all before any data is read.

Numeric options use the ``argparse`` types below: a NaN, an Inf, a negative or a zero where it
means nothing is refused while the command line is parsed (``error: argument --nphotons: ...``,
exit status 2).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ptychopinn._io import clean_stale_temps, is_empty_dir
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


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------


def _probe_writable(directory: Path) -> str | None:
    """None if a file can be created in ``directory``, else the reason."""
    try:
        with tempfile.TemporaryFile(dir=directory):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def check_output(path: str | os.PathLike | None, kind: str, *, overwrite: bool = False, resume: bool = False,
                 option: str = "-o/--output", append: bool = False) -> Path | None:
    """Refuse an output path that cannot or must not be written, before any work starts.

    ``kind`` is 'file' or 'dir'. An existing file / non-empty directory is refused unless
    ``overwrite`` (or ``resume`` for a training run, or ``append`` for a file the command extends,
    such as a telemetry JSON). Returns the path, or None when ``path`` is None."""
    if path is None:
        return None
    if kind not in ("file", "dir"):
        raise ValueError(f"kind must be 'file' or 'dir'; got {kind!r}")
    text = os.fspath(path)
    if not str(text).strip():
        raise ConfigError(f"{option}: empty path")
    p = Path(text)
    full = Path(os.path.abspath(p))
    # the deepest part of the path that exists must be a directory we can write into
    base = full
    while not os.path.lexists(base):
        base = base.parent
    if base != full:
        if not base.is_dir():
            raise ConfigError(f"{option} {text}: {base} is a file, not a directory")
        where = base
    elif kind == "file":
        if full.is_dir():
            raise ConfigError(f"{option} {text}: is a directory, expected a file path")
        if not full.parent.is_dir():  # pragma: no cover - covered by the walk above
            raise ConfigError(f"{option} {text}: {full.parent} is not a directory")
        if not (overwrite or append):
            raise ConfigError(f"{option} {text}: already exists; pass --overwrite to replace it")
        where = full.parent
    else:
        if not full.is_dir():
            raise ConfigError(f"{option} {text}: exists and is not a directory")
        if not (overwrite or resume) and not is_empty_dir(full):
            raise ConfigError(f"{option} {text}: directory exists and is not empty; pass --overwrite to "
                              "write into it (files of the same name are replaced) or choose another directory")
        where = full
    reason = _probe_writable(where)
    if reason is not None:
        raise ConfigError(f"{option} {text}: cannot write in {where} ({reason})")
    # temporaries a killed run left here (next to the file, or in / next to the directory)
    clean_stale_temps(full.parent if full.parent.is_dir() else where)
    if kind == "dir" and full.is_dir():
        clean_stale_temps(full)
    return p



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
