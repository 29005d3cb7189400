"""``ptychopinn iterative``: reconstruct a dataset with pty-chi (LSQML / ePIE / DM)."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck

HELP = "iterative baseline: reconstruct a dataset with pty-chi (LSQML by default)"

DESCRIPTION = """\
Reconstruct DATA.npz with pty-chi and write into OUT_DIR:
  ptychi_reconstruction.npz  reconstructed_object (H, W complex64, objectGuess pixel frame),
                             reconstructed_probe, algorithm, epochs, computation_time_seconds,
                             loss_history (per epoch), origin (canvas pixel (i, j) = object
                             pixel (origin[0] + i, origin[1] + j)), _metadata (JSON text)
  ptychi_reconstruction.png  amplitude, phase and loss history
  refined_positions.npz      with --position-correction: xcoords, ycoords (refined patch centres,
                             object pixels, pattern order of DATA), _metadata (RMS / max shift)

The object starts from ones (or from the file's objectGuess with --object-init dataset, or from a
PINN reconstruction with --init-object RECON.npz), the probe from probeGuess (or --init-probe),
scaled to the measured photons per pattern. Needs the optional
dependency pty-chi: pip install -c constraints.txt 'ptychopinn[ptychi]'. Where torchvision cannot
be imported (CUDA wheel beside a CPU-only torch), a documented stand-in for its GaussianBlur is
used; the metadata records it.

Exit status: 0 written; 2 bad input, bad option or pty-chi missing (nothing written)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ptychopinn.cli import _common
    from ptychopinn.iterative.ptychi_runner import PtychiConfig

    parser.add_argument("--data", required=True, metavar="DATA.npz",
                        help="dataset (NPZ contract, CXI or ptychodus HDF5; see docs/cxi.md)")
    _common.add_output(parser, "output directory", metavar="OUT_DIR",
                       overwrite="files in an existing, non-empty output directory")
    _common.add_fields(parser, PtychiConfig, algorithm={"type": str.upper})
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    _common.add_device(parser, default=PtychiConfig.device)
    _common.add_threads(parser)
    _common.add_quiet(parser)
    _common.add_config(parser, {"ptychi": PtychiConfig})
    parser.add_argument("--save-probe", metavar="PROBE.npz",
                        help="also write the refined probe as an NPZ (probeGuess + _metadata) for "
                             "'train/infer --probe-from'")
    from ptychopinn.cli._data_input import add_input_arguments

    add_input_arguments(parser, probe=False)  # --init-probe starts pty-chi from another probe


def run(args: argparse.Namespace) -> int:
    from ptychopinn.cli._common import config_for
    from ptychopinn.cli._data_input import load_input
    from ptychopinn.iterative.ptychi_runner import (
        PtychiConfig,
        import_ptychi,
        run_ptychi,
        save_probe,
        save_result,
    )

    ck.refuse_pairs([
        (bool(not args.position_correction and (args.position_correction_start != PtychiConfig.position_correction_start
                                                or args.position_step_size != PtychiConfig.position_step_size)),
         "--position-correction-start/--position-step-size", "no --position-correction",
         "mean nothing together (positions are not refined)"),
        (bool(args.init_object and args.object_init != PtychiConfig.object_init), "--init-object", "--object-init",
         "exclude each other (one initial object)"),
        (bool(args.probe_fixed and args.save_probe), "--probe-fixed", "--save-probe",
         "mean nothing together (a fixed probe is the input probe; nothing is refined to save)"),
    ])
    ck.check_output(args.output, "dir", overwrite=args.overwrite)
    ck.check_output(args.save_probe, "file", overwrite=args.overwrite, option="--save-probe")
    config = config_for(args, "ptychi", PtychiConfig)
    import_ptychi()  # fail fast (exit 2) before reading a large file
    dataset = load_input(args, args.data)
    result = run_ptychi(dataset, config, progress=not args.quiet)
    written = save_result(result, args.output, plot=not args.no_plot)
    if args.save_probe:
        written["probe"] = save_probe(args.save_probe, result, dataset, config, name=args.data)
    tv = " (torchvision stand-in)" if result.metadata.get("torchvision_stub_used") else ""
    print(f"iterative: pty-chi {config.algorithm}, {len(result.loss_history)} epochs on "
          f"{result.metadata['device']}{tv}, {args.threads} CPU threads: {result.computation_time_seconds:.2f} s, "
          f"final loss {result.loss_history[-1]:.4g} -> " + ", ".join(str(p) for p in written.values()))
    return 0

