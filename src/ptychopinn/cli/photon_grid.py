"""``ptychopinn photon-grid``: one object/probe/scan simulated at several doses (seed 000)."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck

HELP = "simulate one object, probe and scan at several photon doses, with a manifest"
DESCRIPTION = """Writes ROOT/data_p1e3.npz ... data_p1e9.npz (one per dose; same object, probe and scan,
independent Poisson noise per dose) and ROOT/manifest.json, ROOT/manifest.md (file, dose, patterns,
shape, SHA-256, size, seconds). The same command writes byte-identical NPZ files (no time inside
them), and a dose's noise depends only on --seed and the dose value: data_p1e5.npz is the same file
whether made alone or in a sweep. Every dose is checked before the first simulation and the files
are built in a staging folder next to ROOT, moved into place only when all are written: a failed or
interrupted run leaves nothing. Exit status: 0 written; 2 bad option or input (nothing written)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ptychopinn.cli import _common
    from ptychopinn.studies.photon_grid import PhotonGridConfig

    d = _common.field_defaults(PhotonGridConfig)
    p.add_argument("-o", "--output", required=True, help="output directory ROOT")
    ck.add_overwrite(p, "files in an existing, non-empty ROOT")
    p.add_argument("--doses", type=ck.dose_list, default=d["doses"], help="comma-separated photons per pattern")
    p.add_argument("--n-images", type=ck.positive_int, default=d["n_images"], help="patterns per dataset")
    p.add_argument("--N", type=ck.positive_int, default=d["N"], help="pattern / probe size")
    p.add_argument("--object-size", type=ck.positive_int, default=d["object_size"], help="synthetic object side (px)")
    p.add_argument("--object", dest="object_kind", default=d["object_kind"], choices=["lines", "grf", "siemens"],
                   help="synthetic object")
    p.add_argument("--object-from", default=d["object_from"], help="NPZ with objectGuess")
    p.add_argument("--probe-from", default=d["probe_from"], help="NPZ with probeGuess")
    p.add_argument("--scan", default=d["scan"], choices=["random", "raster", "jitter"], help="scan pattern")
    p.add_argument("--seed", type=ck.seed, default=d["seed"], help="seed of the object, scan and noise streams")
    _common.add_threads(p)
    _common.add_quiet(p)
    _common.add_config(p, {"photon_grid": PhotonGridConfig})


def run(args: argparse.Namespace) -> int:
    from ptychopinn.cli._common import config_for
    from ptychopinn.studies.photon_grid import PhotonGridConfig, photon_grid

    ck.check_output(args.output, "dir", overwrite=args.overwrite)
    cfg = config_for(args, "photon_grid", PhotonGridConfig, dict(
        doses=args.doses, n_images=args.n_images, N=args.N, object_size=args.object_size,
        object_kind=args.object_kind, object_from=args.object_from, probe_from=args.probe_from,
        scan=args.scan, seed=args.seed))
    m = photon_grid(cfg, args.output, progress=not args.quiet)
    for e in m["datasets"]:
        print(f"{e['file']}: dose {e['dose']:.0e}, measured {e['measured_photons_per_pattern']:.4g} photons/pattern")
    print(f"manifest: {args.output}/manifest.json ({args.threads} CPU threads)")
    return 0
