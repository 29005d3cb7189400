"""``ptychopinn convert``: beamline files to the NPZ contract and back (CXI, ptychodus product)."""

from __future__ import annotations

import argparse

HELP = "convert CXI / ptychodus HDF5 to the contract NPZ (and back: --to cxi, --to product, --to product-cxi)"
DESCRIPTION = """\
Read IN with the loader every command uses and write OUT:
  --to npz      the contract NPZ (default; sqrt(counts), positions in object pixels, geometry in _metadata)
  --to cxi      a CXI 1.6 file (counts, translations in metres, probe, object); the geometry comes from
                IN's _metadata or from --energy-ev, --distance-m and --detector-pixel-m
  --to product  a ptychodus product.h5 holding --reconstruction (reconstruction.npz of 'infer' or
                ptychi_reconstruction.npz of 'iterative'), the probe and the positions in metres
  --to product-cxi  the same product as a ptychodus product.cxi (CXI 1.6: translations in metres,
                probe image_1, object image_2, frame and scan indexes under entry_1/ptychodus);
                needs the photon energy and distance (recorded, or the three geometry options)

IN may be an NPZ, a CXI file, a ptychodus diffraction.h5/diffraction.cxi (with --product), a ptychodus
workflow directory (diffraction.h5 + product.h5) or ptychodus's PtychoPINN training NPZ. Positions in
metres become object pixels with pixel size lambda*distance/(N*detector pixel); translation column 0 is
x (columns), column 1 is y (rows); --flip-positions/--transpose-positions change that (docs/cxi.md).

Exit status: 0 written; 2 bad input or option (one line naming the file and HDF5 path; nothing written)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ptychopinn.cli._data_input import add_input_arguments

    p.add_argument("input", metavar="IN", help="input file or ptychodus workflow directory")
    from ptychopinn.cli import _checks as ck
    from ptychopinn.cli import _common

    _common.add_output(p, "output file", metavar="OUT", overwrite="OUT")
    from ptychopinn.data.formats import READERS, WRITERS

    p.add_argument("--to", choices=tuple(WRITERS), default=None,
                   help="output format (default: from OUT's suffix: .cxi -> cxi, else npz)")
    p.add_argument("--from", dest="from_format", choices=("auto", *READERS), default="auto",
                   help="input format: auto (by name: HDF5 suffix or directory -> hdf5, *.bz2 -> tike, else npz) "
                        "or " + "; ".join(f"{r.name}: {r.help}" for r in READERS.values()))
    p.add_argument("--reconstruction", metavar="RECON.npz", help="--to product/product-cxi: the reconstruction to export")
    p.add_argument("--energy-ev", type=ck.positive_float,
                   help="--to cxi/product/product-cxi without recorded geometry: photon energy (eV)")
    p.add_argument("--distance-m", type=ck.positive_float, help="... sample-detector distance (m)")
    p.add_argument("--detector-pixel-m", type=ck.positive_float, help="... detector pixel size (m)")
    _common.add_quiet(p, "print nothing on success")
    add_input_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ptychopinn.cli import _checks as ck
    from ptychopinn.cli._data_input import load_input
    from ptychopinn.data.formats import write_dataset, writer_for
    from ptychopinn.data.reconstruction import Reconstruction
    from ptychopinn.errors import ConfigError

    w = writer_for(args.output, args.to)
    geo = [o for o, v in (("--energy-ev", args.energy_ev), ("--distance-m", args.distance_m),
                          ("--detector-pixel-m", args.detector_pixel_m)) if v is not None]
    ck.refuse_pairs([(bool(not w.geometry and geo), f"--to {w.name}", geo[0] if geo else "",
                      "mean nothing together (the geometry options apply to --to cxi/product/product-cxi)")])
    if w.reconstruction and not args.reconstruction:
        raise ConfigError(f"--to {w.name} needs --reconstruction RECON.npz")
    if not w.reconstruction and args.reconstruction:
        raise ConfigError(f"--reconstruction applies to --to product/product-cxi only, not --to {w.name}")
    ck.check_output(args.output, "file", overwrite=args.overwrite)
    ds = load_input(args, args.input, check_bounds=False)
    write_dataset(args.output, ds, w.name, reconstruction=args.reconstruction, energy_ev=args.energy_ev,
                  distance_m=args.distance_m, detector_pixel_m=args.detector_pixel_m)
    rec = Reconstruction.load(args.reconstruction) if w.reconstruction else None
    if rec is not None:
        what = f"{rec.object.shape[0]}x{rec.object.shape[1]} object, {ds.n_patterns} positions"
    else:
        px = (ds.metadata.get("geometry") or {}).get("object_pixel_m") if w.name == "npz" else None
        what = f"{ds.n_patterns} patterns {ds.N}x{ds.N}" + (f", object pixel {px[1] * 1e9:.3g} x {px[0] * 1e9:.3g} nm"
                                                             if px else "")
    _say(args, f"convert: {what} -> {args.output} ({w.help.split(' (')[0]})")
    return 0


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text)
