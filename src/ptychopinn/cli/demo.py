"""``ptychopinn demo``: a small end-to-end run on built-in synthetic data."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck

HELP = "end-to-end demo: simulate, train a small PINN, reconstruct, pty-chi, compare, figure"
DESCRIPTION = """Simulates a lines object on a jittered raster (N=32 by default), trains a small PINN on the
top half of the scan, reconstructs the bottom half, runs pty-chi LSQML on the same half when the
'ptychi' extra is installed, compares both with the ground truth and writes DIR/demo_summary.png,
DIR/demo_summary.json, the datasets, the model bundle and every command's outputs. Minutes on an
idle 2-core CPU (see the README for what slows it down). Settings are checked first; everything is
built in a staging folder next to DIR and moved into place at the end, so a failed or interrupted
demo leaves nothing."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ptychopinn.cli import _common
    from ptychopinn.studies.demo import DemoConfig

    _common.add_command_options(p, {"demo": DemoConfig}, "output directory", device=DemoConfig.device)


def run(args: argparse.Namespace) -> int:
    from ptychopinn.cli._common import config_for
    from ptychopinn.studies.demo import DemoConfig, run_demo

    ck.refuse_pairs([(bool(not args.ptychi and args.ptychi_epochs != DemoConfig.ptychi_epochs), "--no-ptychi",
                      "--ptychi-epochs", "mean nothing together (pty-chi is not run)")])
    ck.check_output(args.output, "dir", overwrite=args.overwrite)
    cfg = config_for(args, "demo", DemoConfig)
    run_demo(args.output, cfg, progress=not args.quiet)
    return 0
