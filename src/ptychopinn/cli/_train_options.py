"""Model and training options shared by ``train`` and ``reconstruct`` (one declaration, read from
ModelConfig and TrainConfig), the configs they build and the option pairs they refuse."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck

#: --border-branch spelling of ModelConfig.border_branch
BORDER_BRANCH = {"auto": None, "on": True, "off": False}


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
    kind = getattr(args, "model", "pinn")
    model = _given(args, ModelConfig) | {"kind": kind, "border_branch": BORDER_BRANCH[args.border_branch]}
    mcfg = config_for(args, "model", ModelConfig, model | (over["model"] if kind == "pinn" else {}),
                      flag_of={"kind": "model"})
    tcfg = config_for(args, "training", TrainConfig, _given(args, TrainConfig) | {"protocol": protocol}
                      | over["training"])
    return mcfg, tcfg


def _given(args: argparse.Namespace, cls: type) -> dict:
    """{field: value} of the fields of ``cls`` that are options of this command."""
    import dataclasses

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


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
