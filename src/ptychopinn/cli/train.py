"""``ptychopinn train``: train a PINN (or the supervised baseline) and write a model bundle."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck
from ptychopinn.cli._train_options import add_config_arguments, build_configs, conflicts

HELP = "train a PINN or the supervised baseline on a dataset NPZ and write a model bundle"
DESCRIPTION = """Train on TRAIN.npz and write a bundle to RUN_DIR (model.safetensors, config.json, probe.npz,
history.json) plus checkpoint.pt for --resume. Inputs are normalised by the dataset scalar
r = sqrt((N/2)^2 / mean sum X^2); predicted amplitudes are in count units through exp(log_s).
Multi-process / multi-GPU: torchrun --nproc_per_node=K -m ptychopinn train ... (the effective batch
is K x --batch-size; only rank 0 writes). --threads N sets the CPU threads per process.

Probe: --probe-from FILE replaces the dataset's probeGuess (e.g. a probe refined by
'ptychopinn iterative --save-probe'); --probe-from-ptychi EPOCHS first refines the probe with a short
pty-chi LSQML run on the training data (starting from the file's probe, or from the inverse FFT of the
mean pattern amplitude when the file has none), then trains with it. config.json records the source
(probe.source) and ptychi_probe.npz keeps the refined probe. TRAIN may be a CXI / ptychodus file
(docs/cxi.md)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ptychopinn.cli import _common
    from ptychopinn.model.config import MODEL_KINDS, ModelConfig

    p.add_argument("--train", required=True, metavar="TRAIN.npz", help="training dataset")
    p.add_argument("--test", metavar="TEST.npz", default=None,
                   help="test dataset, scored after every epoch (test_loss)")
    _common.add_output(p, "run / bundle directory", metavar="RUN_DIR")
    _common.add_field_option(p, ModelConfig, "kind", "--model", dest="model", choices=MODEL_KINDS,
                             help="network: physics-informed (unsupervised) or the supervised baseline")
    add_config_arguments(p)
    p.add_argument("--probe-from-ptychi", type=ck.positive_int, metavar="EPOCHS",
                   help="refine the probe with EPOCHS pty-chi LSQML epochs on TRAIN first, then train with it")
    from ptychopinn.cli._data_input import add_input_arguments

    add_input_arguments(p)


def run(args: argparse.Namespace) -> int:
    from ptychopinn.training.trainer import train

    ck.refuse_pairs(conflicts(args))
    ck.check_output(args.output, "dir", overwrite=args.overwrite, resume=args.resume)
    mcfg, tcfg = build_configs(args)
    train_data, test_data = _prepare_data(args)
    observers = []
    if args.telemetry:
        from ptychopinn.telemetry.observers import TrainingTelemetry

        observers.append(TrainingTelemetry(args.telemetry, scenario=args.scenario, pipeline=args.pipeline))
    res = train(train_data, args.output, mcfg, tcfg, test_data=test_data, progress=not args.quiet,
                observers=observers)
    if res.device and _is_main():
        best = (f", best val loss {res.best_val_loss:.6g} (epoch {res.best_epoch})"
                if res.best_val_loss is not None else "")
        stop = " (early stop)" if res.stopped_early else ""
        print(f"wrote {args.output}: {res.epochs_run} epochs{stop}{best}, "
              f"{res.train_patterns_per_s:.1f} train patterns/s, {res.seconds:.1f} s")
    return 0


def _prepare_data(args: argparse.Namespace):
    """(train data, test data): paths when nothing changes the data, else datasets (probe swapped
    or refined by pty-chi, beamline file converted). The plausibility checks run either way."""
    import os
    import sys

    from ptychopinn.cli._data_input import input_options, load_input
    from ptychopinn.errors import ConfigError

    e = args.probe_from_ptychi
    if e is not None and e < 1:
        raise ConfigError(f"--probe-from-ptychi must be >= 1 epoch; got {e}")
    if e is not None and args.probe_from:
        raise ConfigError("--probe-from and --probe-from-ptychi exclude each other")
    if e is not None:
        from ptychopinn.iterative.ptychi_runner import import_ptychi

        import_ptychi()  # fail fast (exit 2) before any work
    changed = e is not None or input_options(args).changes(args.train)
    if not changed and not os.path.exists(args.train):
        return args.train, args.test  # the trainer's loader reports it
    ds = load_input(args, args.train, estimate_missing_probe=e is not None)
    if e is not None:
        from ptychopinn.iterative.ptychi_runner import refine_probe

        refine_probe(ds, e, device=args.device, seed=args.seed, progress=not args.quiet)
        print(f"train: probe refined by pty-chi ({e} LSQML epochs, "
              f"{ds.metadata['probe_refinement']['seconds']:.1f} s)", file=sys.stderr)
    test = args.test
    if test is not None and changed:
        test = load_input(args, test, probe=ds.probe if (args.probe_from or e is not None) else None,
                          probe_source=ds.metadata.get("probe_source"))
    return (ds if changed else args.train), test


def _is_main() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def interrupted_hint(args: argparse.Namespace) -> str:
    """What Ctrl-C left behind: the last checkpoint and how to continue, or nothing."""
    import json
    from pathlib import Path

    run = Path(args.output)
    if not (run / "checkpoint.pt").is_file():
        return "no checkpoint was written yet (interrupted during the first epoch)"
    epoch = "?"
    try:
        epoch = str(len(json.loads((run / "history.json").read_text())))
    except (OSError, ValueError):
        pass
    return (f"the checkpoint of epoch {epoch} is kept in {run / 'checkpoint.pt'}; continue with the same "
            f"command plus --resume (ptychopinn train --train {args.train} -o {run} ... --resume)")
