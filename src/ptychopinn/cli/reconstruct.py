"""``ptychopinn reconstruct``: fit the PINN to the scan itself (no labels) and reconstruct it."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck
from ptychopinn.cli.train import add_config_arguments, build_configs

HELP = "fit a PINN to one scan (self-supervised, optionally from a trained bundle) and reconstruct it"
DESCRIPTION = """\
Reconstruct mode: the scan's own diffraction patterns train the PINN through the physics
(Poisson NLL; no ground truth needed), a held-out fraction of its groups (--val-fraction) stops the
fit early, and the fitted network then predicts and stitches the whole scan.
--from-bundle RUN fine-tunes a pre-trained bundle instead of starting from random weights (its
network settings are used).

Writes into -o/--output: reconstruction.npz, amplitude.png, phase.png (as `infer`) and the fitted
bundle in OUT/model/. Exit status: 0 written; 2 bad input or option (nothing written)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", metavar="DATA.npz", help="the scan to reconstruct (NPZ data contract)")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output directory")
    p.add_argument("--from-bundle", metavar="RUN_DIR", help="pre-trained bundle to fine-tune")
    p.add_argument("--mask", metavar="FILE",
                   help="detector mask: an .npy array or an NPZ with key 'mask', (N, N), nonzero/True = bad "
                        "pixel; joined to the file's own mask; bad pixels are excluded from the losses")
    from ptychopinn.training.config import RECONSTRUCT_DEFAULTS

    add_config_arguments(p, **RECONSTRUCT_DEFAULTS)


def run(args: argparse.Namespace) -> int:
    from ptychopinn.inference.fit import reconstruct_scan

    from ptychopinn.cli.train import conflicts

    ck.refuse_pairs(conflicts(args) + [
        (bool(args.from_bundle and args.resume), "--from-bundle", "--resume",
         "contradict each other (--resume continues the fit in OUT/model, --from-bundle starts a new one)")])
    ck.check_output(args.output, "dir", overwrite=args.overwrite, resume=args.resume)
    args.model = "pinn"
    mcfg, tcfg = build_configs(args)
    if args.from_bundle:
        mcfg = None  # the bundle's network
    data = args.data
    if args.mask:
        from ptychopinn.cli._data_input import load_input

        data = load_input(args, args.data)
    res = reconstruct_scan(data, args.output, mcfg, tcfg, from_bundle=args.from_bundle,
                           progress=not args.quiet)
    r, t = res.reconstruction, res.training
    h, w = r.object.shape
    print(f"reconstruct: fitted {t.epochs_run} epochs (best {t.best_epoch}) in {t.seconds:.1f} s, "
          f"{h}x{w} object in {res.seconds:.1f} s total -> {args.output}")
    return 0
