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

    d = _common.field_defaults(PtychiConfig)
    parser.add_argument("--data", required=True, metavar="DATA.npz",
                        help="dataset (NPZ contract, CXI or ptychodus HDF5; see docs/cxi.md)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output directory")
    ck.add_overwrite(parser, "files in an existing, non-empty output directory")
    parser.add_argument("--algorithm", default=d["algorithm"], type=str.upper, choices=("LSQML", "EPIE", "DM"),
                        help="reconstruction algorithm")
    parser.add_argument("--epochs", type=ck.positive_int, default=d["epochs"], help="number of epochs")
    parser.add_argument("--batch-size", type=ck.positive_int, default=d["batch_size"], help="minibatch size")
    parser.add_argument("--probe-fixed", action="store_true", help="keep the probe fixed (default: refine it)")
    parser.add_argument("--seed", type=ck.seed, default=d["seed"], help="random seed")
    parser.add_argument("--object-init", default=d["object_init"], choices=("ones", "dataset"),
                        help="initial object: ones, or the file's objectGuess")
    parser.add_argument("--init-object", metavar="RECON.npz", default=d.get("init_object"),
                        help="start from this reconstruction (e.g. a PINN's reconstruction.npz; its origin "
                             "places it; unscanned pixels start at its mean) instead of --object-init")
    parser.add_argument("--init-probe", metavar="PROBE.npz", default=d.get("init_probe"),
                        help="start from this probe (probeGuess, reconstructed_probe or probe key) "
                             "instead of the dataset's probeGuess")
    parser.add_argument("--position-correction", action="store_true",
                        help="refine the scan positions (pty-chi's gradient position correction; the mean "
                             "position is kept); writes refined_positions.npz (xcoords, ycoords) beside the "
                             "reconstruction")
    parser.add_argument("--position-correction-start", type=ck.non_negative_int,
                        default=d["position_correction_start"], metavar="EPOCH",
                        help="first epoch that updates the positions")
    parser.add_argument("--position-step-size", type=ck.positive_float, default=d["position_step_size"],
                        help="step size of the position update (pty-chi's default 0.3; pty-chi also clips "
                             "each update to 0.1 px per epoch)")
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG")
    _common.add_device(parser, default=d["device"])
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
        save_result,
    )

    ck.refuse_pairs([
        (bool(not args.position_correction and (args.position_correction_start != 5
                                                or args.position_step_size != 0.3)),
         "--position-correction-start/--position-step-size", "no --position-correction",
         "mean nothing together (positions are not refined)"),
        (bool(args.init_object and args.object_init != "ones"), "--init-object", "--object-init",
         "exclude each other (one initial object)"),
        (bool(args.probe_fixed and args.save_probe), "--probe-fixed", "--save-probe",
         "mean nothing together (a fixed probe is the input probe; nothing is refined to save)"),
    ])
    ck.check_output(args.output, "dir", overwrite=args.overwrite)
    ck.check_output(args.save_probe, "file", overwrite=args.overwrite, option="--save-probe")
    config = config_for(args, "ptychi", PtychiConfig, dict(
        algorithm=args.algorithm, epochs=args.epochs, batch_size=args.batch_size,
        probe_fixed=bool(args.probe_fixed), device=args.device, seed=args.seed, object_init=args.object_init,
        init_object=args.init_object, init_probe=args.init_probe,
        position_correction=bool(args.position_correction),
        position_correction_start=args.position_correction_start,
        position_step_size=args.position_step_size))
    import_ptychi()  # fail fast (exit 2) before reading a large file
    dataset = load_input(args, args.data)
    result = run_ptychi(dataset, config, progress=not args.quiet)
    written = save_result(result, args.output, plot=not args.no_plot)
    if args.save_probe:
        written["probe"] = save_probe(args.save_probe, result.probe, {
            "probe_source": f"pty-chi {config.algorithm} {len(result.loss_history)} epochs on {args.data}"
                            + (" (probe fixed)" if config.probe_fixed else ""),
            "initial_probe": (dataset.metadata.get("probe_source")
                              or (dataset.metadata.get("geometry") or {}).get("probe_source")
                              or f"{args.data}: probeGuess"),
            "seconds": result.computation_time_seconds, "final_loss": float(result.loss_history[-1])
            if len(result.loss_history) else None})
    tv = " (torchvision stand-in)" if result.metadata.get("torchvision_stub_used") else ""
    print(f"iterative: pty-chi {config.algorithm}, {len(result.loss_history)} epochs on "
          f"{result.metadata['device']}{tv}, {args.threads} CPU threads: {result.computation_time_seconds:.2f} s, "
          f"final loss {result.loss_history[-1]:.4g} -> " + ", ".join(str(p) for p in written.values()))
    return 0


def save_probe(path: str, probe, meta: dict):
    """Write a probe NPZ (``probeGuess`` complex64 + ``_metadata`` JSON) atomically."""
    import json
    from pathlib import Path

    import numpy as np

    from ptychopinn._io import jsonable, save_npz_atomic

    save_npz_atomic(path, probeGuess=np.asarray(probe, np.complex64),
                    _metadata=np.array(json.dumps(meta, default=jsonable)))
    return Path(path)
