"""``ptychopinn validate``: check a dataset against the data contract and summarise it."""

from __future__ import annotations

import argparse
import json

from ptychopinn.cli import _checks as ck

HELP = "check a dataset (NPZ, CXI, ptychodus HDF5) against the data contract and print a short summary"
DESCRIPTION = """Load FILE with the same reader every command uses. A malformed file gets a one-line error
naming the key (or HDF5 path) and the problem (exit status 2). Legacy variants (key 'diffraction',
(N, N, M) layout, integer counts, trailing singleton axis) are accepted and reported. Files of the older
implementation that store normalised amplitudes can be restored to counts with --nphotons or
--intensity-scale. Beamline files (CXI, ptychodus diffraction/product pairs) are converted on reading
(docs/cxi.md).

Plausibility checks refuse (exit 2, override with --force) patterns whose zero frequency is in the
corner and a scan extent below one pixel (positions in metres); a constant objectGuess or a product
object is reported as not being a ground truth."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ptychopinn.cli import _common
    from ptychopinn.cli._data_input import add_input_arguments

    p.add_argument("file", help="dataset NPZ, CXI/HDF5 file or ptychodus workflow directory")
    p.add_argument("--nphotons", type=ck.positive_float, help="rescale amplitudes so mean sum(diff3d^2) equals this")
    p.add_argument("--intensity-scale", type=ck.positive_float, help="multiply stored amplitudes by this factor")
    p.add_argument("--no-bounds-check", action="store_true", help="do not require patches inside objectGuess")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    _common.add_quiet(p, "print nothing when the file is valid (exit status only)")
    add_input_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ptychopinn.cli._data_input import enforce_checks, load_input
    from ptychopinn.data.summary import format_summary, summarize

    ck.refuse_pairs([(bool(args.quiet and args.json), "--quiet", "--json",
                      "contradict each other (print nothing, or print the summary as JSON)")])
    ds = load_input(args, args.file, check=False, check_bounds=not args.no_bounds_check,
                    nphotons=args.nphotons, intensity_scale=args.intensity_scale)
    quiet = bool(getattr(args, "quiet", False))
    findings = enforce_checks(ds, bool(args.force), notes=not quiet)
    if quiet:
        return 0
    s = summarize(ds)
    s["checks"] = [{"level": f.level, "key": f.key, "message": f.message} for f in findings]
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
