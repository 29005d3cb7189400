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

--data may be a CXI / ptychodus file (docs/cxi.md). A probe-conditioned model (the built-in general
model) reconstructs with the dataset's probe; --probe-from FILE replaces the dataset's probeGuess
(recorded), and a file without a probe is read with the bundle's probe.

Exit status: 0 written; 2 bad input (missing/invalid bundle or data, bad option): nothing written."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ptychopinn.cli import _common
    from ptychopinn.inference.reconstruct import GROUPINGS, reconstruct
    from ptychopinn.inference.stitch import SUBPIXEL_MODES

    def opt(name: str, help: str, **kw) -> None:
        _common.add_field_option(parser, reconstruct, name, help=help, **kw)

    parser.add_argument("--model", required=True, metavar="RUN_DIR",
                        help="trained model bundle directory (or RUN_DIR/checkpoint.pt of an interrupted run), "
                             "or a built-in name: general-n64 (the general model, docs/general_model.md)")
    parser.add_argument("--data", required=True, metavar="DATA.npz", help="dataset to reconstruct (NPZ contract)")
    _common.add_output(parser, "output directory", metavar="OUT_DIR",
                       overwrite="files in an existing, non-empty output directory")
    opt("stitch_crop", "kept central M x M of each patch (default: round(N*20/64), 20 at N=64)",
        type=ck.positive_int, metavar="M")
    opt("batch_size", "patterns per prediction chunk", type=ck.positive_int, metavar="B")
    opt("subpixel", "sub-pixel scan positions: Fourier-shift the kept crop or round to the nearest pixel",
        choices=SUBPIXEL_MODES)
    opt("seed", "grouping seed of gridsize > 1 models", type=ck.seed)
    opt("groups", "gridsize > 1: one group per pattern, stitching its anchor (anchor), or only the groups "
                  "covering every pattern, stitching all members (cover, ~3x faster); auto = cover for "
                  "probe-conditioned (general) models", choices=GROUPINGS)
    _common.add_device(parser)
    _common.add_threads(parser)
    _common.add_quiet(parser)
    parser.add_argument("--no-progress", dest="quiet", action="store_true", help=argparse.SUPPRESS)  # old spelling
    _common.add_config(parser, {})
    from ptychopinn.cli._data_input import add_input_arguments

    add_input_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from ptychopinn.inference.reconstruct import reconstruct

    ck.check_output(args.output, "dir", overwrite=args.overwrite)
    data = _load(args)
    observers = []
    if args.telemetry:
        from ptychopinn.telemetry.observers import InferenceTelemetry

        observers.append(InferenceTelemetry(args.telemetry, args.model, args.data, scenario=args.scenario,
                                             pipeline=args.pipeline))
    rec = reconstruct(
        args.model, data, out_dir=args.output, stitch_crop=args.stitch_crop,
        batch_size=args.batch_size, device=args.device, subpixel=args.subpixel,
        progress=False if args.quiet else None, seed=args.seed, observers=observers, groups=args.groups,
    )
    t = rec.timing
    h, w = rec.object.shape
    print(f"infer: {rec.metadata['n_patterns']} patterns -> {h}x{w} object (origin y={rec.origin[0]:g}, "
          f"x={rec.origin[1]:g}) in {t['total_s']:.2f} s ({t['patterns_per_s']:.0f} patterns/s; "
          f"stitch {t['stitch_s']:.2f} s; {args.threads} CPU threads) -> {args.output}")
    return 0


def _load(args: argparse.Namespace):
    """The dataset (its path when nothing changes it)."""
    import os

    from ptychopinn.cli._data_input import enforce_checks, input_options
    from ptychopinn.errors import BundleError
    from ptychopinn.inference.reconstruct import load_scan
    from ptychopinn.model.bundle import resolve_bundle

    args.model = str(resolve_bundle(args.model))
    if not os.path.isdir(args.model):  # the cheap check first
        raise BundleError(f"{args.model}: model bundle directory not found")
    options = input_options(args)
    ds = load_scan(args.model, args.data, options)
    enforce_checks(ds, args.force)
    return ds if options.changes(args.data) else args.data
