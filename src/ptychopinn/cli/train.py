"""``ptychopinn train``: train a PINN (or the supervised baseline) and write a model bundle."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck

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


#: --border-branch spelling of ModelConfig.border_branch
BORDER_BRANCH = {"auto": None, "on": True, "off": False}


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


def add_config_arguments(p: argparse.ArgumentParser, **defaults) -> None:
    """Model and training options shared by ``train`` and ``reconstruct``. Defaults are those of
    ModelConfig / TrainConfig unless ``defaults`` (field -> value) gives a command's own."""
    from ptychopinn.cli import _common
    from ptychopinn.model.config import ARCHS, NORMS, ModelConfig
    from ptychopinn.model.scaling import SCALE_SOURCES
    from ptychopinn.training.config import (
        LOSSES,
        PRECISIONS,
        PROTOCOLS,
        SCHEDULES,
        TrainConfig,
    )

    def opt(cls: type, name: str, help: str, **kw) -> None:
        if name in defaults:
            kw["default"] = defaults[name]
        _common.add_field_option(p, cls, name, help=help, **kw)

    M, T = ModelConfig, TrainConfig
    opt(M, "arch", "network: unet (back-projected input, skip connections) or classic "
                   "(the reference PtychoPINN network)", choices=ARCHS)
    opt(M, "gridsize", "patterns per group = gridsize^2", type=ck.positive_int)
    opt(T, "neighbor_count", "K nearest neighbours for grouping", type=ck.positive_int)
    opt(T, "n_groups", "number of groups (default: none = one per pattern)", type=ck.positive_int)
    opt(T, "oversample", "allow more groups than patterns (gridsize > 1)")
    opt(T, "loss", "PINN loss", choices=LOSSES)
    opt(T, "nll_weight", "weight of the Poisson NLL term (default: none = from --loss)", type=ck.non_negative_float)
    opt(T, "mae_weight", "weight of the amplitude MAE term (default: none = from --loss)", type=ck.non_negative_float)
    opt(T, "epochs", "maximum number of epochs", type=ck.positive_int)
    opt(T, "batch_size", "groups per batch", type=ck.positive_int)
    opt(T, "lr", "Adam learning rate", type=ck.positive_float)
    opt(T, "warmup_epochs", "linear learning-rate warmup (0 = off)", type=ck.non_negative_float)
    opt(T, "schedule", "learning rate after warmup: half cosine to --min-lr, or halve on plateau", choices=SCHEDULES)
    opt(T, "min_lr", "final / lowest learning rate", type=ck.non_negative_float)
    opt(T, "grad_clip", "clip the gradient norm at this multiple of its running mean (0 = off)",
        type=ck.non_negative_float)
    opt(M, "n_filters_scale", "width multiplier of the network", type=ck.positive_int)
    opt(M, "norm", "normalisation layers (unet)", choices=NORMS)
    opt(M, "amp_max", "amplitude head range: amp_max * sigmoid", type=ck.positive_float)
    p.add_argument("--border-branch", choices=list(BORDER_BRANCH), default="auto",
                   help="predict the object outside the N/2 support (auto: when the probe extends beyond it)")
    opt(M, "probe_trainable", "refine the probe during training")
    opt(T, "probe_lr", "learning rate of a trainable probe (default: none = --lr), scaled by the same schedule",
        type=ck.positive_float)
    opt(T, "probe_warmup_epochs", "epochs with the trainable probe held fixed while the object is learnt",
        type=ck.non_negative_float)
    opt(T, "refine_positions", "learn a sub-pixel correction of every scan position through the physics "
                               "(gridsize >= 2); the refined positions are saved as refined_positions.npz")
    opt(T, "position_lr", "Adam rate of the position corrections (px per step), scaled by the schedule",
        type=ck.positive_float)
    opt(T, "position_warmup_epochs", "epochs with the positions held fixed while the object is learnt",
        type=ck.non_negative_float)
    opt(M, "intensity_scale_trainable", "train the intensity scale log_s")
    opt(T, "intensity_scale_source", "data-derived scale or sqrt(nphotons)/(N/2) from the metadata",
        choices=SCALE_SOURCES)
    opt(T, "seed", "seed of the weights, shuffles and validation split", type=ck.seed)
    opt(T, "precision", "auto: bfloat16 convolutions on CPUs with native support, else float32", choices=PRECISIONS)
    opt(T, "val_fraction", "fraction of groups held out for validation / early stopping", type=ck.fraction)
    opt(T, "patience", "early-stopping patience in epochs (0 = off)", type=ck.non_negative_int)
    opt(T, "protocol", "training protocol: 'modern' = the defaults above; 'seed' = the seeds' training (no "
                       "early stopping, no validation hold-out, last-epoch weights, trainable intensity scale, "
                       "lr 1e-3 halved on a 2-epoch plateau of the training loss down to 1e-4, no warmup); an "
                       "option that contradicts the protocol is an error", choices=tuple(PROTOCOLS))
    opt(T, "resume", "continue the run in RUN_DIR from its checkpoint")
    _common.add_overwrite(p, help="write into a non-empty output directory, replacing a run already there "
                                  "(default: refuse)")
    _common.add_device(p, default=defaults.get("device", T.device))
    _common.add_threads(p)
    _common.add_quiet(p)
    _common.add_config(p, {"model": ModelConfig, "training": TrainConfig})


def build_configs(args: argparse.Namespace) -> tuple:
    """(ModelConfig, TrainConfig) from the options of :func:`add_config_arguments`, with the
    ``--config`` file's fields for the options not given on the command line."""
    from ptychopinn.cli._common import config_for
    from ptychopinn.model.config import ModelConfig
    from ptychopinn.training.config import TrainConfig

    protocol = getattr(args, "protocol", "modern")
    over = _protocol_values(args, protocol)
    mcfg = config_for(args, "model", ModelConfig, dict(
        kind=getattr(args, "model", "pinn"), arch=args.arch, norm=args.norm,
        gridsize=args.gridsize, n_filters_scale=args.n_filters_scale,
        probe_trainable=args.probe_trainable, intensity_scale_trainable=args.intensity_scale_trainable,
        amp_max=args.amp_max, border_branch=BORDER_BRANCH[args.border_branch],
    ) | (over["model"] if getattr(args, "model", "pinn") == "pinn" else {}), flag_of={"kind": "model"})
    tcfg = config_for(args, "training", TrainConfig, dict(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_epochs=args.warmup_epochs, loss=args.loss,
        schedule=args.schedule, min_lr=args.min_lr, grad_clip=args.grad_clip,
        probe_lr=args.probe_lr, probe_warmup_epochs=args.probe_warmup_epochs,
        refine_positions=args.refine_positions, position_lr=args.position_lr,
        position_warmup_epochs=args.position_warmup_epochs,
        nll_weight=args.nll_weight, mae_weight=args.mae_weight, neighbor_count=args.neighbor_count,
        n_groups=args.n_groups, oversample=args.oversample, seed=args.seed, device=args.device,
        precision=args.precision, val_fraction=args.val_fraction, patience=args.patience,
        intensity_scale_source=args.intensity_scale_source, resume=args.resume, overwrite=args.overwrite,
        protocol=protocol,
    ) | over["training"])
    return mcfg, tcfg


def _protocol_values(args: argparse.Namespace, protocol: str) -> dict:
    """The fields ``--protocol`` fixes; ConfigError when an option given on the command line
    contradicts one of them."""
    from ptychopinn.errors import ConfigError
    from ptychopinn.training.config import protocol_overrides

    over = protocol_overrides(protocol)
    explicit = getattr(args, "_explicit", set())
    for section in over.values():
        for k, v in section.items():
            if k in explicit and getattr(args, k, v) != v:
                raise ConfigError(f"--protocol {protocol} fixes --{k.replace('_', '-')} = {v}; "
                                  f"got {getattr(args, k)} (drop the option or use --protocol modern)")
    return over


def run(args: argparse.Namespace) -> int:
    from ptychopinn.training.trainer import train

    ck.refuse_pairs(conflicts(args))
    ck.check_output(args.output, "dir", overwrite=args.overwrite, resume=args.resume)
    mcfg, tcfg = build_configs(args)
    train_data, test_data, ptychi_probe = _prepare_data(args)
    observers = []
    if args.telemetry:
        from ptychopinn.telemetry.observers import TrainingTelemetry

        observers.append(TrainingTelemetry(args.telemetry, scenario=args.scenario, pipeline=args.pipeline))
    res = train(train_data, args.output, mcfg, tcfg, test_data=test_data, progress=not args.quiet,
                observers=observers)
    if not isinstance(train_data, str) and _is_main():
        _record_probe_source(args.output, train_data, args.train, ptychi_probe)
    if res.device and _is_main():
        best = (f", best val loss {res.best_val_loss:.6g} (epoch {res.best_epoch})"
                if res.best_val_loss is not None else "")
        stop = " (early stop)" if res.stopped_early else ""
        print(f"wrote {args.output}: {res.epochs_run} epochs{stop}{best}, "
              f"{res.train_patterns_per_s:.1f} train patterns/s, {res.seconds:.1f} s")
    return 0


def conflicts(args: argparse.Namespace) -> list:
    """Option pairs of train/reconstruct that contradict each other (see ``_checks.refuse_pairs``)."""
    explicit = getattr(args, "_explicit", set())
    return [
        (bool(args.resume and args.overwrite), "--resume", "--overwrite",
         "contradict each other (continue the run in place, or replace it)"),
        (bool(getattr(args, "probe_from", None) and getattr(args, "probe_from_ptychi", None)), "--probe-from",
         "--probe-from-ptychi", "exclude each other (one probe source)"),
        (bool(args.refine_positions and args.gridsize < 2), "--refine-positions", f"--gridsize {args.gridsize}",
         "exclude each other (positions enter the PINN's physics only through the group offsets: gridsize >= 2)"),
        (bool(not args.refine_positions and {"position_lr", "position_warmup_epochs"} & explicit),
         "--position-lr/--position-warmup-epochs", "no --refine-positions", "the position options need --refine-positions"),
    ]


def _prepare_data(args: argparse.Namespace):
    """(train data, test data, pty-chi probe record): paths when nothing changes the data, else
    datasets (probe swapped, beamline file converted). The plausibility checks run either way."""
    import os
    import sys

    import numpy as np

    from ptychopinn.cli._data_input import load_input
    from ptychopinn.errors import ConfigError

    e = args.probe_from_ptychi
    if e is not None and e < 1:
        raise ConfigError(f"--probe-from-ptychi must be >= 1 epoch; got {e}")
    if e is not None and args.probe_from:
        raise ConfigError("--probe-from and --probe-from-ptychi exclude each other")
    if e is not None:
        from ptychopinn.iterative.ptychi_runner import import_ptychi

        import_ptychi()  # fail fast (exit 2) before any work
    from ptychopinn.data.contract import is_hdf5_path

    changed = bool(args.probe_from or e is not None or args.product or args.flip_positions or args.mask
                   or args.transpose_positions or args.fftshift
                   or os.path.isdir(args.train) or is_hdf5_path(args.train))
    if not changed and not os.path.exists(args.train):
        return args.train, args.test, None  # the trainer's loader reports it
    ds = load_input(args, args.train, estimate_missing_probe=e is not None)
    ptychi_probe = None
    if e is not None:
        from ptychopinn.iterative.ptychi_runner import PtychiConfig, run_ptychi

        initial = (ds.metadata.get("probe_source") or (ds.metadata.get("geometry") or {}).get("probe_source")
                   or f"{args.train}: probeGuess")
        res = run_ptychi(ds, PtychiConfig(epochs=e, device=args.device, seed=args.seed), progress=not args.quiet)
        ds.probe = np.asarray(res.probe, dtype=np.complex64)
        src = f"pty-chi LSQML {len(res.loss_history)} epochs on {args.train} (initial probe: {initial})"
        ds.metadata["probe_source"] = src
        ptychi_probe = {"probe": ds.probe, "probe_source": src, "seconds": res.computation_time_seconds,
                        "loss_history": list(map(float, res.loss_history))}
        print(f"train: probe refined by pty-chi ({e} LSQML epochs, {res.computation_time_seconds:.1f} s)",
              file=sys.stderr)
    test = args.test
    if test is not None and changed:
        test = load_input(args, test, probe=ds.probe if (args.probe_from or e is not None) else None,
                          probe_source=ds.metadata.get("probe_source"))
    return (ds if changed else args.train), test, ptychi_probe


def _record_probe_source(run_dir: str, ds, train_path: str, ptychi_probe: dict | None) -> None:
    """Put the probe's source (and the training file's SHA-256) into the bundle's config.json."""
    import os
    from pathlib import Path

    from ptychopinn._io import sha256_file, write_json_atomic
    from ptychopinn.training.bundle import CONFIG_FILE, read_config

    cfg = read_config(run_dir)
    cfg["probe"]["source"] = ds.metadata.get("probe_source") or f"{train_path}: probeGuess"
    train = cfg.get("data", {}).get("train") or {}
    if train.get("sha256") is None and os.path.isfile(train_path):
        train["sha256"] = sha256_file(train_path)
        train["path"] = train_path
    if ptychi_probe is not None:
        from ptychopinn.cli.iterative import save_probe

        save_probe(str(Path(run_dir) / "ptychi_probe.npz"), ptychi_probe["probe"],
                   {k: v for k, v in ptychi_probe.items() if k != "probe"})
        cfg["probe"]["ptychi_refinement"] = {"file": "ptychi_probe.npz", "seconds": ptychi_probe["seconds"],
                                             "final_loss": ptychi_probe["loss_history"][-1]}
    write_json_atomic(Path(run_dir) / CONFIG_FILE, cfg)


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
