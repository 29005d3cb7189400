"""Dataset input options shared by the commands that read data (beamline files, probe swap,
plausibility checks)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np


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
                        getattr(args, "from_format", "auto") or "auto")


def load_input(args: argparse.Namespace, path: str, *, check: bool = True, probe: np.ndarray | None = None,
               probe_source: str | None = None, **kw: Any) -> Any:
    """Load ``path`` with the command's input options; run the plausibility checks."""
    from ptychopinn.data.contract import is_hdf5_path, load_dataset
    from ptychopinn.errors import ConfigError

    opts = input_options(args)
    beamline = os.path.isdir(path) or is_hdf5_path(path)
    if not beamline:
        for flag, given in (("--flip-positions", opts.convention.flip),
                            ("--transpose-positions", opts.convention.transpose), ("--product", opts.product)):
            if given:
                raise ConfigError(f"{flag} applies to beamline files with positions in metres (CXI/HDF5); "
                                  f"{path} is an NPZ whose positions are already object pixels")
    if probe is None and getattr(args, "probe_from", None):
        from ptychopinn.data.contract import read_probe_file

        probe, probe_source = read_probe_file(args.probe_from)
    ds = load_dataset(path, probe=probe, probe_source=probe_source, options=opts, **kw)
    if opts.fftshift and not beamline:
        ds.diff3d = np.ascontiguousarray(np.fft.fftshift(ds.diff3d, axes=(1, 2)))
        if ds.mask is not None:
            ds.mask = np.ascontiguousarray(np.fft.fftshift(ds.mask))
        ds.metadata.setdefault("load_notes", {})["fftshift_applied"] = True
    if getattr(args, "mask", None):
        from ptychopinn.data.contract import read_mask_file

        ds = ds.with_mask(read_mask_file(args.mask, ds.diff3d.shape[-2:]), f"--mask {args.mask}")
    if check:
        enforce_checks(ds, bool(getattr(args, "force", False)))
    return ds


def enforce_checks(ds: Any, force: bool, notes: bool = False) -> list[Any]:
    """Refuse (DataError) on a refusing finding unless ``force``; print notes when ``notes``."""
    from ptychopinn.data.checks import sanity_findings
    from ptychopinn.errors import DataError

    findings = sanity_findings(ds)
    for f in findings:
        if f.level == "note" and notes:
            print(f"note: {f.line(ds.source)}", file=sys.stderr)
    refused = [f for f in findings if f.level == "refuse"]
    if refused and not force:
        raise DataError(refused[0].line(ds.source) + " (override with --force)")
    for f in refused:
        print(f"warning (--force): {f.line(ds.source)}", file=sys.stderr)
    return findings
