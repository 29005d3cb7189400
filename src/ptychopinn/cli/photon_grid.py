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

    _common.add_command_options(p, {"photon_grid": PhotonGridConfig}, "output directory ROOT",
                                overwrite="files in an existing, non-empty ROOT")


def run(args: argparse.Namespace) -> int:
    from ptychopinn.cli._common import config_for
    from ptychopinn.studies.photon_grid import PhotonGridConfig, photon_grid

    ck.check_output(args.output, "dir", overwrite=args.overwrite)
    cfg = config_for(args, "photon_grid", PhotonGridConfig)
    m = photon_grid(cfg, args.output, progress=not args.quiet)
    for e in m["datasets"]:
        print(f"{e['file']}: dose {e['dose']:.0e}, measured {e['measured_photons_per_pattern']:.4g} photons/pattern")
    print(f"manifest: {args.output}/manifest.json ({args.threads} CPU threads)")
    return 0
