"""``ptychopinn infer``: reconstruct an object from a dataset with a trained model bundle."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck

HELP = "reconstruct (predict + stitch) a dataset with a trained model bundle"

DESCRIPTION = """\
Predict an object patch for every diffraction pattern of --data with the model in --model
(a training run directory) and stitch the central M x M of each patch at its scan position,
averaging overlaps. Prediction is chunked (--batch-size) so memory stays bounded.

Writes into -o/--output: reconstruction.npz (object complex64, amplitude, phase, counts,
origin [y0, x0] with canvas[i, j] == object[y0 + i, x0 + j], xcoords, ycoords, stitch_crop,
_metadata JSON) plus amplitude.png and phase.png. Files appear only when all are complete.

Exit status: 0 written; 2 bad input (missing/invalid bundle or data, bad option): nothing written."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="RUN_DIR", help="trained model bundle directory")
    parser.add_argument("--data", required=True, metavar="DATA.npz", help="dataset to reconstruct (NPZ contract)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output directory")
    ck.add_overwrite(parser, "files in an existing, non-empty output directory")
    parser.add_argument("--stitch-crop", type=ck.positive_int, default=None, metavar="M",
                        help="kept central M x M of each patch (default: round(N*20/64), 20 at N=64)")
    parser.add_argument("--batch-size", type=ck.positive_int, default=256, metavar="B",
                        help="patterns per prediction chunk (default: %(default)s)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="compute device (default: %(default)s = CUDA when available)")
    parser.add_argument("--subpixel", choices=("fourier", "round"), default="fourier",
                        help="sub-pixel scan positions: Fourier-shift the kept crop (default) or round to "
                             "the nearest pixel")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ptychopinn.inference.reconstruct import reconstruct

    ck.check_output(args.output, "dir", overwrite=args.overwrite)
    data = args.data
    if args.telemetry:  # telemetry also needs the dataset: read it once and hand it over
        from ptychopinn.data.contract import load_dataset

        data = load_dataset(args.data)
    rec = reconstruct(
        args.model, data, out_dir=args.output, stitch_crop=args.stitch_crop,
        batch_size=args.batch_size, device=args.device, subpixel=args.subpixel,
        progress=False if args.no_progress else None,
    )
    if args.telemetry:
        from ptychopinn.telemetry.hooks import record_inference

        record_inference(args.telemetry, rec, args.model, args.data, data, args.output)
    t = rec.timing
    h, w = rec.object.shape
    print(f"infer: {rec.metadata['n_patterns']} patterns -> {h}x{w} object (origin y={rec.origin[0]:g}, "
          f"x={rec.origin[1]:g}) in {t['total_s']:.2f} s ({t['patterns_per_s']:.0f} patterns/s; "
          f"stitch {t['stitch_s']:.2f} s) -> {args.output}")
    return 0
