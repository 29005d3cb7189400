"""Dataset input options shared by the commands that read data (beamline files, probe swap,
plausibility checks)."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _flip_axes(text: str) -> str:
    """--flip-positions value: x, y or xy ('' = no flip, as a --config file may write it)."""
    if text not in ("", "x", "y", "xy"):
        raise argparse.ArgumentTypeError(f"expected x, y or xy; got {text!r}")
    return text


def add_input_arguments(p: argparse.ArgumentParser, *, probe: bool = True, force: bool = True) -> None:
    g = p.add_argument_group("beamline input (CXI / ptychodus HDF5; see docs/cxi.md)")
    g.add_argument("--product", metavar="FILE",
                   help="the product half (positions, probe, object) of a ptychodus pair: product.h5 or product.cxi")
    g.add_argument("--flip-positions", nargs="?", const="xy", default="", type=_flip_axes, metavar="AXES",
                   help="negate the translations along x, y or both (xy, the default when given without a value; "
                        "give AXES when the flag comes right before a positional argument); "
                        "facilities differ on sample versus beam motion")
    g.add_argument("--transpose-positions", action="store_true",
                   help="swap the translation columns (x <-> y) before any flip")
    g.add_argument("--fftshift", action="store_true",
                   help="the patterns have the zero frequency in the corner: fftshift them when reading")
    g.add_argument("--mask", metavar="FILE",
                   help="detector mask: an .npy array or an NPZ with key 'mask', (N, N) bool or integer, "
                        "nonzero/True = bad pixel; joined to the file's own mask; bad pixels are excluded "
                        "from the PINN losses and from pty-chi")
    if probe:
        g.add_argument("--probe-from", metavar="FILE",
                       help="replace the dataset's probe with the one in FILE (NPZ key probeGuess, "
                            "reconstructed_probe or probe, e.g. from 'iterative --save-probe'; or a CXI/product file)")
    if force:
        g.add_argument("--force", action="store_true",
                       help="go on although a plausibility check refuses the data (corner zero frequency, "
                            "sub-pixel scan extent)")


def input_options(args: argparse.Namespace) -> Any:
    from ptychopinn.data.cxi import InputOptions, PositionConvention

    return InputOptions(PositionConvention(getattr(args, "flip_positions", "") or "",
                                           bool(getattr(args, "transpose_positions", False))),
                        getattr(args, "product", None), bool(getattr(args, "fftshift", False)),
                        getattr(args, "from_format", "auto") or "auto", getattr(args, "mask", None),
                        getattr(args, "probe_from", None))


def load_input(args: argparse.Namespace, path: str, *, check: bool = True, **kw: Any) -> Any:
    """Load ``path`` with the command's input options; run the plausibility checks."""
    from ptychopinn.data.contract import load_dataset

    ds = load_dataset(path, options=input_options(args), **kw)
    if check:
        enforce_checks(ds, bool(getattr(args, "force", False)))
    return ds


def enforce_checks(ds: Any, force: bool, notes: bool = False) -> list[Any]:
    """:func:`ptychopinn.data.checks.check_dataset`, printing the notes (when ``notes``) and the
    refusals that ``force`` overrides."""
    from ptychopinn.data.checks import check_dataset

    def report(f: Any) -> None:
        if f.level == "refuse":
            print(f"warning (--force): {f.line(ds.source)}", file=sys.stderr)
        elif notes:
            print(f"note: {f.line(ds.source)}", file=sys.stderr)

    return check_dataset(ds, force=force, report=report)
