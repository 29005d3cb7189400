"""Training configuration (frozen, JSON round trip)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ptychopinn._config import Config, opt
from ptychopinn._device import check_device_name
from ptychopinn.data.grouping import DEFAULT_NEIGHBOR_COUNT
from ptychopinn.errors import ConfigError
from ptychopinn.model.losses import LOSS_KINDS
from ptychopinn.model.scaling import SCALE_SOURCES

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "float32", "bf16")
LOSSES = LOSS_KINDS  # the loss registry's names (ptychopinn.model.losses.LOSS_REGISTRY)
SCHEDULES = ("cosine", "plateau")

#: reconstruct mode's own defaults (ModelConfig and TrainConfig fields), one home for the library
#: and the CLI: gridsize 2 (the overlap constraint is what makes one scan informative), a small
#: network, early stopping on 5 % of the scan's groups
RECONSTRUCT_DEFAULTS = {"gridsize": 2, "n_filters_scale": 1, "epochs": 30, "val_fraction": 0.05, "patience": 5}

#: reconstruct mode started from a trained bundle (the built-in general model by default): a short
#: fine-tune at a low rate without warm-up, in small batches (more updates for the same compute:
#: batch 4 beat 16 at equal epochs on both held-out cells tried); early stopping on 5 % of the
#: scan's groups (measured in docs/general_model.md)
FINETUNE_DEFAULTS = {"epochs": 4, "batch_size": 4, "lr": 3e-4, "warmup_epochs": 0.0, "min_lr": 1e-5,
                     "val_fraction": 0.05, "patience": 2, "diagnostics": False}

#: training protocols, one home for the library, ``ptychopinn train`` and the studies: field values
#: of ModelConfig ("model") and TrainConfig ("training") that a protocol fixes. 'modern' is today's
#: defaults (cosine schedule, warmup, 10 % validation, early stopping, restore-best, fixed scale).
#: 'seed' is the seeds' training (seeds 000/001 and DESIGN section 5): no early stopping, no
#: validation hold-out, the last epoch's weights, a trainable intensity scale, Adam at 1e-3 halved
#: when the (training) loss stalls for 2 epochs down to 1e-4, no warmup, no clipping; the number of
#: epochs is the run's own (50 in the seeds)
PROTOCOLS: dict[str, dict[str, dict[str, Any]]] = {
    "modern": {"model": {}, "training": {}},
    "seed": {"model": {"intensity_scale_trainable": True},
             "training": {"patience": 0, "val_fraction": 0.0, "restore_best": False, "schedule": "plateau",
                          "lr": 1e-3, "lr_factor": 0.5, "lr_patience": 2, "min_lr": 1e-4, "warmup_epochs": 0.0,
                          "grad_clip": 0.0}},
}


def protocol_overrides(name: str) -> dict[str, dict[str, Any]]:
    """{"model": {...}, "training": {...}}: the fields protocol ``name`` fixes (copies)."""
    if name not in PROTOCOLS:
        raise ConfigError(f"protocol must be one of {tuple(PROTOCOLS)}; got {name!r}")
    return {k: dict(v) for k, v in PROTOCOLS[name].items()}


def check_protocol(name: str, section: str, cfg: Any) -> None:
    """ConfigError when ``cfg`` (a ModelConfig or TrainConfig) contradicts protocol ``name``."""
    for k, v in protocol_overrides(name)[section].items():
        if getattr(cfg, k) != v:
            raise ConfigError(f"protocol {name!r} fixes {section} field {k} = {v!r}; got {getattr(cfg, k)!r}")


#: fields that control how a run is executed, not what it computes (ignored when resuming)
RUN_CONTROL_FIELDS = ("epochs", "resume", "overwrite", "device", "patience")


@dataclass(frozen=True)
class TrainConfig(Config):
    """Everything that defines a training run besides the model.

    ``loss`` picks the PINN loss ('nll', 'mae' or 'nll+mae'); ``nll_weight`` / ``mae_weight``
    override the weights. ``patience`` is the early-stopping patience in epochs on the
    validation loss (0 = off). ``warmup_epochs`` is the length of the linear learning-rate warmup
    at the start (0 = off). ``schedule`` 'cosine' then decays the rate along a half cosine from
    ``lr`` to ``min_lr`` at the last step of ``epochs``; 'plateau' halves it (``lr_factor``) when
    the validation loss stalls for ``lr_patience`` epochs, down to ``min_lr``. ``grad_clip`` > 0
    clips the gradient norm, measured relative to its running median (so it does not depend on
    the dose). ``diagnostics`` records dead units, tiling and the deviance versus the Poisson floor
    in ``history.json`` every epoch. With a trainable probe (``ModelConfig.probe_trainable``) the
    probe has its own rate ``probe_lr`` (None = ``lr``; it follows the same schedule, scaled) and
    stays fixed for the first ``probe_warmup_epochs`` epochs, while the network learns the object.
    ``refine_positions`` learns a sub-pixel correction of every scan position (gridsize >= 2: the
    group offsets enter the physics through Fourier shifts) at Adam rate ``position_lr`` (pixels per
    step, scaled with the network's schedule), starting after ``position_warmup_epochs``; the mean
    correction is removed (the scan's absolute frame is not observable). ``precision`` 'auto' runs the convolutional body in bfloat16
    autocast on CPUs with native bfloat16 support and in float32 elsewhere (heads, physics and
    losses are always float32). ``intensity_scale_source`` chooses the data-derived scale or
    the closed form sqrt(nphotons)/(N/2) from the metadata. ``restore_best`` saves the weights
    of the epoch with the lowest validation loss (else those of the last epoch). ``protocol`` names
    the training protocol (:data:`PROTOCOLS`); the fields it fixes must hold its values.
    """

    epochs: int = opt(50, "maximum number of epochs", check="positive")
    batch_size: int = opt(16, "groups per batch", check="positive")
    lr: float = opt(1e-3, "Adam learning rate", check="positive")
    warmup_epochs: float = opt(1.0, "linear learning-rate warmup (0 = off)", check="non_negative")
    loss: str = opt("nll", "PINN loss", choices=LOSSES)
    nll_weight: float | None = opt(None, "weight of the Poisson NLL term (default: none = from --loss)",
                                   check="non_negative")
    mae_weight: float | None = opt(None, "weight of the amplitude MAE term (default: none = from --loss)",
                                   check="non_negative")
    neighbor_count: int = opt(DEFAULT_NEIGHBOR_COUNT, "K nearest neighbours for grouping", check="positive")
    n_groups: int | None = opt(None, "number of groups (default: none = one per pattern)", check="positive")
    oversample: bool = opt(False, "allow more groups than patterns (gridsize > 1)")
    seed: int = opt(0, "seed of the weights, shuffles and validation split", check="seed")
    device: str = "auto"
    precision: str = opt("auto", "auto: bfloat16 convolutions on CPUs with native support, else float32",
                         choices=PRECISIONS)
    val_fraction: float = opt(0.1, "fraction of groups held out for validation / early stopping", check="fraction")
    patience: int = opt(6, "early-stopping patience in epochs (0 = off)", check="non_negative")
    schedule: str = opt("cosine", "learning rate after warmup: half cosine to --min-lr, or halve on plateau",
                        choices=SCHEDULES)
    lr_factor: float = 0.5
    lr_patience: int = 2
    min_lr: float = opt(1e-4, "final / lowest learning rate", check="non_negative")
    grad_clip: float = opt(0.0, "clip the gradient norm at this multiple of its running mean (0 = off)",
                           check="non_negative")
    diagnostics: bool = True
    probe_lr: float | None = opt(None, "learning rate of a trainable probe (default: none = --lr), scaled by the "
                                       "same schedule", check="positive")
    probe_warmup_epochs: float = opt(1.0, "epochs with the trainable probe held fixed while the object is learnt",
                                     check="non_negative")
    refine_positions: bool = opt(False, "learn a sub-pixel correction of every scan position through the physics "
                                        "(gridsize >= 2); the refined positions are saved as refined_positions.npz")
    position_lr: float = opt(0.02, "Adam rate of the position corrections (px per step), scaled by the schedule",
                             check="positive")
    position_warmup_epochs: float = opt(1.0, "epochs with the positions held fixed while the object is learnt",
                                        check="non_negative")
    intensity_scale_source: str = opt("data", "data-derived scale or sqrt(nphotons)/(N/2) from the metadata",
                                      choices=SCALE_SOURCES)
    restore_best: bool = True
    protocol: str = opt("modern", "training protocol: 'modern' = the defaults above; 'seed' = the seeds' training "
                        "(no early stopping, no validation hold-out, last-epoch weights, trainable intensity "
                        "scale, lr 1e-3 halved on a 2-epoch plateau of the training loss down to 1e-4, no "
                        "warmup); an option that contradicts the protocol is an error", choices=tuple(PROTOCOLS))
    resume: bool = opt(False, "continue the run in RUN_DIR from its checkpoint")
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name in ("lr", "warmup_epochs", "nll_weight", "mae_weight", "min_lr", "grad_clip", "val_fraction",
                     "lr_factor", "probe_lr", "probe_warmup_epochs", "position_lr",
                     "position_warmup_epochs"):
            v = getattr(self, name)
            if v is not None and not math.isfinite(float(v)):
                raise ConfigError(f"{name} must be a finite number; got {v}")
        if self.nll_weight is not None and self.nll_weight < 0 or self.mae_weight is not None and self.mae_weight < 0:
            raise ConfigError("loss weights must be >= 0")
        if self.probe_lr is not None and not self.probe_lr > 0:
            raise ConfigError(f"probe_lr must be > 0; got {self.probe_lr}")
        if self.probe_warmup_epochs < 0:
            raise ConfigError(f"probe_warmup_epochs must be >= 0; got {self.probe_warmup_epochs}")
        if not self.position_lr > 0 or self.position_warmup_epochs < 0:
            raise ConfigError(f"position_lr must be > 0 and position_warmup_epochs >= 0; got "
                              f"{self.position_lr}, {self.position_warmup_epochs}")
        if self.min_lr < 0:
            raise ConfigError(f"min_lr must be >= 0; got {self.min_lr}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1; got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1; got {self.batch_size}")
        if self.warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs must be >= 0; got {self.warmup_epochs}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be > 0; got {self.lr}")
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {LOSSES}; got {self.loss!r}")
        check_device_name(self.device)
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}; got {self.precision!r}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be in [0, 1); got {self.val_fraction}")
        if self.patience < 0 or self.lr_patience < 0:
            raise ConfigError("patience values must be >= 0")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}; got {self.schedule!r}")
        if not self.grad_clip >= 0:
            raise ConfigError(f"grad_clip must be >= 0 (0 = off); got {self.grad_clip}")
        if not 0 < self.lr_factor < 1:
            raise ConfigError(f"lr_factor must be in (0, 1); got {self.lr_factor}")
        if self.n_groups is not None and self.n_groups < 1:
            raise ConfigError(f"n_groups must be >= 1; got {self.n_groups}")
        if self.intensity_scale_source not in SCALE_SOURCES:
            raise ConfigError("intensity_scale_source must be 'data' or 'closed_form'")
        check_protocol(self.protocol, "training", self)


