"""``ptychopinn reconstruct``: fit the PINN to the scan itself (no labels) and reconstruct it."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck
from ptychopinn.cli._train_options import add_config_arguments, build_configs, conflicts

HELP = "fit a PINN to one scan (self-supervised, optionally from a trained bundle) and reconstruct it"
DESCRIPTION = """\
Reconstruct mode: the scan's own diffraction patterns train the PINN through the physics
(Poisson NLL; no ground truth needed), a held-out fraction of its groups (--val-fraction) stops the
fit early, and the fitted network then predicts and stitches the whole scan.
By default the fit starts from the built-in general model for the scan's pattern size
(general-n64 at N=64; docs/general_model.md) and fine-tunes it briefly (the fine-tuning defaults:
4 epochs in batches of 4 at lr 3e-4, no warm-up, patience 2; options given on the command line win). --from-bundle RUN
fine-tunes another bundle (a directory or a built-in name; its network settings are used).
--from-scratch starts from random weights with the defaults listed below (also used when no general
model ships for the scan's N).

Writes into -o/--output: reconstruction.npz, amplitude.png, phase.png (as `infer`) and the fitted
bundle in OUT/model/. Exit status: 0 written; 2 bad input or option (nothing written)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ptychopinn.cli import _common

    p.add_argument("data", metavar="DATA.npz", help="the scan to reconstruct (NPZ data contract)")
    _common.add_output(p, "output directory", metavar="OUT_DIR")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--from-bundle", metavar="RUN_DIR",
                       help="bundle to fine-tune: a directory or a built-in name (default: the built-in general "
                            "model for the scan's N, e.g. general-n64)")
    start.add_argument("--from-scratch", action="store_true",
                       help="fit from random weights (the defaults below) instead of fine-tuning a general model")
    p.add_argument("--mask", metavar="FILE",
                   help="detector mask: an .npy array or an NPZ with key 'mask', (N, N), nonzero/True = bad "
                        "pixel; joined to the file's own mask; bad pixels are excluded from the losses")
    from ptychopinn.training.config import RECONSTRUCT_DEFAULTS

    add_config_arguments(p, **RECONSTRUCT_DEFAULTS)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from ptychopinn.data.contract import as_dataset
    from ptychopinn.inference.fit import GENERAL, reconstruct_scan, start_bundle
    from ptychopinn.model.bundle import resolve_bundle
    from ptychopinn.training.config import FINETUNE_DEFAULTS

    ck.refuse_pairs(conflicts(args) + [
        (bool(args.from_bundle and args.resume), "--from-bundle", "--resume",
         "contradict each other (--resume continues the fit in OUT/model, --from-bundle starts a new one)")])
    ck.check_output(args.output, "dir", overwrite=args.overwrite, resume=args.resume)
    if args.from_bundle:
        resolve_bundle(args.from_bundle)  # an unknown built-in name fails before the data are read
    args.model = "pinn"
    mcfg, tcfg = build_configs(args)
    if args.mask:
        from ptychopinn.cli._data_input import load_input

        data = load_input(args, args.data)
    else:
        data = as_dataset(args.data)
    start = None if args.from_scratch else start_bundle(args.from_bundle or GENERAL, data.N)
    if start is not None:
        mcfg = None  # the bundle's network
        explicit = getattr(args, "_explicit", set()) | set(getattr(args, "_config_values", {}).get("training", {}))
        tcfg = dataclasses.replace(tcfg, **{k: v for k, v in FINETUNE_DEFAULTS.items() if k not in explicit})
    res = reconstruct_scan(data, args.output, mcfg, tcfg, from_bundle=start, progress=not args.quiet)
    r, t = res.reconstruction, res.training
    h, w = r.object.shape
    origin = "random weights" if start is None else f"fine-tuned from {start}"
    print(f"reconstruct: {origin}: {t.epochs_run} epochs (best {t.best_epoch}) in {t.seconds:.1f} s, "
          f"{h}x{w} object in {res.seconds:.1f} s total -> {args.output}")
    return 0
