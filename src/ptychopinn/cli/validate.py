"""``ptychopinn validate``: check a dataset against the data contract and summarise it."""

from __future__ import annotations

import argparse
import json

from ptychopinn.cli import _checks as ck

HELP = "check an NPZ against the data contract and print a short summary"
DESCRIPTION = """Load FILE with the same reader every command uses. A malformed file gets a one-line error
naming the key and the problem (exit status 2). Legacy variants (key 'diffraction', (N, N, M) layout,
integer counts, trailing singleton axis) are accepted and reported. Files of the older implementation
that store normalised amplitudes can be restored to counts with --nphotons or --intensity-scale."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="dataset NPZ (or HDF5/CXI)")
    p.add_argument("--nphotons", type=ck.positive_float, help="rescale amplitudes so mean sum(diff3d^2) equals this")
    p.add_argument("--intensity-scale", type=ck.positive_float, help="multiply stored amplitudes by this factor")
    p.add_argument("--no-bounds-check", action="store_true", help="do not require patches inside objectGuess")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing when the file is valid (exit status only)")


def run(args: argparse.Namespace) -> int:
    from ptychopinn.data.contract import load_dataset
    from ptychopinn.data.summary import format_summary, summarize

    ds = load_dataset(args.file, check_bounds=not args.no_bounds_check, nphotons=args.nphotons,
                      intensity_scale=args.intensity_scale)
    if getattr(args, "quiet", False):
        return 0
    s = summarize(ds)
    s["pinn_usable"], why = _pinn_usable(ds.N)
    text = format_summary(s)
    if why:
        text += f"\nPINN models:        not usable at N={ds.N} ({why}); train/infer refuse it, iterative accepts it"
    print(json.dumps(s, indent=2) if args.json else text)
    return 0


def _pinn_usable(n: int) -> tuple[bool, str]:
    """Whether the PINN / supervised networks take patterns of size ``n`` (and why not)."""
    from ptychopinn.errors import ConfigError
    from ptychopinn.model.config import ModelConfig

    try:
        ModelConfig(N=n)
    except ConfigError as exc:
        return False, str(exc)
    return True, ""
