"""Model and training options shared by ``train`` and ``reconstruct`` (one declaration, read from
ModelConfig and TrainConfig), the configs they build and the option pairs they refuse."""

from __future__ import annotations

import argparse

#: --border-branch spelling of ModelConfig.border_branch
BORDER_BRANCH = {"auto": None, "on": True, "off": False}


def add_config_arguments(p: argparse.ArgumentParser, **defaults) -> None:
    """Model and training options shared by ``train`` and ``reconstruct``, declared by the fields of
    ModelConfig / TrainConfig; ``defaults`` (field -> value) gives a command's own defaults."""
    from ptychopinn.cli import _common
    from ptychopinn.model.config import ModelConfig
    from ptychopinn.training.config import TrainConfig

    _common.add_fields(p, ModelConfig, defaults=defaults)
    p.add_argument("--border-branch", choices=list(BORDER_BRANCH), default="auto",
                   help="predict the object outside the N/2 support (auto: when the probe extends beyond it)")
    _common.add_fields(p, TrainConfig, defaults=defaults)
    _common.add_overwrite(p, help="write into a non-empty output directory, replacing a run already there "
                                  "(default: refuse)")
    _common.add_device(p, default=defaults.get("device", TrainConfig.device))
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
    model = {"kind": kind, "border_branch": BORDER_BRANCH[args.border_branch]}
    mcfg = config_for(args, "model", ModelConfig, model | (over["model"] if kind == "pinn" else {}),
                      flag_of={"kind": "model"})
    tcfg = config_for(args, "training", TrainConfig, {"protocol": protocol} | over["training"])
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
