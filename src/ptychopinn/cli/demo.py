"""``ptychopinn demo``: a small end-to-end run on built-in synthetic data."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck

HELP = "end-to-end demo: simulate, train a small PINN, reconstruct, pty-chi, compare, figure"
DESCRIPTION = """Simulates a lines object on a jittered raster (N=32 by default), trains a small PINN on the
top half of the scan, reconstructs the bottom half, runs pty-chi LSQML on the same half when the
'ptychi' extra is installed, compares both with the ground truth and writes DIR/demo_summary.png,
DIR/demo_summary.json, the datasets, the model bundle and every command's outputs. A few minutes
on a laptop CPU. Settings are checked first; everything is built in a staging folder next to DIR
and moved into place at the end, so a failed or interrupted demo leaves nothing."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="output directory")
    ck.add_overwrite(p, "files in an existing, non-empty output directory")
    p.add_argument("--epochs", type=ck.positive_int, default=40, help="PINN training epochs")
    p.add_argument("--N", type=ck.positive_int, default=32, help="pattern size (32 keeps the demo fast on a CPU)")
    p.add_argument("--nphotons", type=ck.dose, default=1e6)
    p.add_argument("--gridsize", type=ck.positive_int, default=1)
    p.add_argument("--no-ptychi", action="store_true", help="skip the pty-chi arm")
    p.add_argument("--ptychi-epochs", type=ck.positive_int, default=50)
    p.add_argument("--seed", type=ck.seed, default=0)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from ptychopinn.studies.demo import DemoConfig, run_demo

    ck.check_output(args.output, "dir", overwrite=args.overwrite)
    cfg = DemoConfig(N=args.N, epochs=args.epochs, nphotons=args.nphotons, gridsize=args.gridsize,
                     ptychi=not args.no_ptychi, ptychi_epochs=args.ptychi_epochs, seed=args.seed,
                     device=args.device)
    run_demo(args.output, cfg, progress=not args.quiet)
    return 0
