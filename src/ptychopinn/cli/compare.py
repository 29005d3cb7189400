"""``ptychopinn compare``: score reconstructions against the ground truth."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck

HELP = "align reconstructions to the ground truth and write metrics, FRC curves and a figure"
DESCRIPTION = """\
Align each reconstruction to the dataset's objectGuess (crop to the scanned region, sub-pixel
registration, global phase offset, least-squares amplitude scale) and compute MAE, MSE, PSNR,
SSIM, MS-SSIM, FRC (0.5 and 1/7 crossings) and Pearson r for amplitude and phase.

example:
  ptychopinn compare --data test.npz --recon PtychoPINN=run/reconstruction.npz \\
      --recon PtyChi=ptychi/ptychi_reconstruction.npz -o cmp

outputs in the output directory: comparison_metrics.csv, frc_curves.csv,
reconstructions_aligned.npz, comparison_plot.png, comparison.json"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ptychopinn.cli import _common
    from ptychopinn.evaluation.compare import CompareConfig

    p.add_argument("--data", required=True, metavar="NPZ", help="dataset with objectGuess (ground truth) and scan positions")
    p.add_argument("--recon", action="append", required=True, metavar="LABEL=PATH",
                   help="a reconstruction NPZ (reconstruction.npz or ptychi_reconstruction.npz); repeat per arm; "
                        "canonical labels PtychoPINN, Baseline, PtyChi")
    _common.add_command_options(p, {"comparison": CompareConfig}, "output directory", metavar="DIR")


def _parse_recons(items: list[str]) -> dict[str, str]:
    from ptychopinn.errors import ConfigError

    out: dict[str, str] = {}
    for item in items:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise ConfigError(f"--recon {item!r}: expected LABEL=PATH, e.g. PtychoPINN=run/reconstruction.npz")
        if label in out:
            raise ConfigError(f"--recon: label {label!r} given twice")
        out[label] = path
    return out


def run(args: argparse.Namespace) -> int:
    from ptychopinn.cli._common import config_for
    from ptychopinn.evaluation.compare import CompareConfig, compare

    ck.refuse_pairs([
        (bool(not args.register and args.register_on != "auto"), "--no-register", "--register-on",
         "mean nothing together (no registration is done)"),
        (bool(not args.register and args.upsample_factor != CompareConfig.upsample_factor), "--no-register", "--upsample-factor",
         "mean nothing together (no registration is done)"),
    ])
    recons = _parse_recons(args.recon)
    ck.check_output(args.output, "dir", overwrite=args.overwrite)
    cfg = config_for(args, "comparison", CompareConfig)
    result = compare(args.data, recons, args.output, config=cfg)
    if args.telemetry:
        from ptychopinn.telemetry.observers import record_comparison

        record_comparison(args.telemetry, result, scenario=args.scenario, pipeline=args.pipeline)
    psnr_key = "psnr" if cfg.psnr_convention == "range" else f"psnr_{cfg.psnr_convention}"
    cols = ("ssim", "ms_ssim", psnr_key, "mae", "frc50")
    print(f"{'model':<14}{'comp':<10}" + "".join(f"{c:>16}" for c in cols))
    for label, comp in result.metrics.items():
        for name in ("amplitude", "phase"):
            print(f"{label:<14}{name:<10}" + "".join(f"{comp[name][c]:>16.4g}" for c in cols))
    for label, al in result.alignments.items():
        print(f"{label}: shift (dy, dx) = ({al.shift[0]:.3f}, {al.shift[1]:.3f}) px, phase offset "
              f"{al.phase_offset:.4f} rad, amplitude scale {al.amplitude_scale:.4g}")
    print(f"wrote {len(result.files)} files to {args.output} ({args.threads} CPU threads)")
    return 0
