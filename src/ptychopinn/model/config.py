"""Model configuration (frozen, JSON round trip). Nothing here builds a model."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ptychopinn._config import Config, opt
from ptychopinn.errors import ConfigError

MODEL_KINDS = ("pinn", "supervised")
AMP_ACTIVATIONS = ("sigmoid", "softplus", "exp")
ARCHS = ("unet", "classic")
NORMS = ("none", "group")


def needs_border_branch(probe: Any, threshold: float = 0.01) -> bool:
    """True when more than ``threshold`` of sum|P|^2 lies outside the central N/2 x N/2 support."""
    import numpy as np

    e = np.abs(np.asarray(probe)) ** 2
    n = e.shape[-1]
    a = n // 4
    total = float(e.sum())
    inside = float(e[a:a + n // 2, a:a + n // 2].sum())
    return total > 0 and (total - inside) > threshold * total


@dataclass(frozen=True)
class ModelConfig(Config):
    """Everything that defines a network's shape and its physics layers.

    ``N=None`` means "take it from the training data". ``amp_max`` multiplies the sigmoid
    amplitude head: with the intensity normalisation of DESIGN section 2 the object comes out in
    units of its probe-weighted RMS amplitude, so bright features exceed 1 and a plain sigmoid
    (``amp_max=1``) saturates. ``border_branch`` adds the low-resolution branch that predicts the
    object outside the central N/2 support; ``None`` (auto) turns it on when more than 1 % of the
    probe's energy lies outside that support (see :func:`needs_border_branch`).
    ``merge_eps`` is the epsilon of the merge normalisation (DESIGN section 5).
    ``arch`` picks the network body: 'unet' (default, :mod:`ptychopinn.model.unet`: back-projected
    input, skip connections, SiLU; ``norm`` and ``back_project`` configure it) or 'classic' (the
    reference PtychoPINN encoder/decoders, kept for parity). ``probe_conditioned``: the network was
    trained on many probes (a general model, :mod:`ptychopinn.training.general`), so inference and
    fine-tuning give it the probe of the scan being reconstructed instead of the bundle's own.
    """

    kind: str = "pinn"
    arch: str = opt("unet", "network: unet (back-projected input, skip connections) or classic (the reference "
                              "PtychoPINN network)", choices=ARCHS)
    N: int | None = None
    gridsize: int = opt(1, "patterns per group = gridsize^2", check="positive")
    n_filters_scale: int = opt(2, "width multiplier of the network", check="positive")
    probe_trainable: bool = opt(False, "refine the probe during training")
    intensity_scale_trainable: bool = opt(False, "train the intensity scale log_s")
    amp_activation: str = "sigmoid"
    amp_max: float = opt(2.0, "amplitude head range: amp_max * sigmoid", check="positive")
    border_branch: bool | None = None
    merge_eps: float = 1e-6
    channels_last: bool = True
    norm: str = opt("none", "normalisation layers (unet)", choices=NORMS)
    back_project: bool = True
    probe_conditioned: bool = False

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"model kind must be one of {MODEL_KINDS}; got {self.kind!r}")
        if self.arch not in ARCHS:
            raise ConfigError(f"arch must be one of {ARCHS}; got {self.arch!r}")
        if self.N is not None:
            n = int(self.N)
            if n < 32 or n & (n - 1):
                raise ConfigError(f"N must be a power of two >= 32 (32, 64, 128, ...); got {self.N}")
        if self.gridsize < 1:
            raise ConfigError(f"gridsize must be >= 1; got {self.gridsize}")
        if self.kind == "supervised" and self.gridsize != 1:
            raise ConfigError("the supervised baseline takes one pattern at a time: use gridsize 1")
        if self.n_filters_scale < 1:
            raise ConfigError(f"n_filters_scale must be >= 1; got {self.n_filters_scale}")
        if self.amp_activation not in AMP_ACTIVATIONS:
            raise ConfigError(f"amp_activation must be one of {AMP_ACTIVATIONS}; got {self.amp_activation!r}")
        if not self.amp_max > 0:
            raise ConfigError(f"amp_max must be > 0; got {self.amp_max}")
        if self.norm not in NORMS:
            raise ConfigError(f"norm must be 'none' or 'group'; got {self.norm!r}")
        if not self.merge_eps > 0:
            raise ConfigError("merge_eps must be > 0")
        if self.probe_conditioned and (self.arch != "unet" or not self.back_project):
            raise ConfigError("probe_conditioned needs arch 'unet' with back_project (the probe enters there)")

    def resolved(self, probe: Any) -> ModelConfig:
        """This config with ``border_branch`` decided from ``probe`` when it is None (auto)."""
        if self.border_branch is not None:
            return self
        return dataclasses.replace(self, border_branch=self.kind == "pinn" and needs_border_branch(probe))

    @property
    def C(self) -> int:
        """Patterns per group (gridsize^2)."""
        return self.gridsize * self.gridsize

    @property
    def n_stages(self) -> int:
        """Encoder stages: 3 at N=64, one more per doubling of N (bottleneck 8 x 8)."""
        if self.N is None:
            raise ConfigError("N is not set")
        return int(self.N).bit_length() - 4

    def with_N(self, n: int) -> ModelConfig:
        """This config with ``N`` set (error if it was set to something else)."""
        if self.N is not None and int(self.N) != int(n):
            raise ConfigError(f"model config has N={self.N} but the data have N={n}")
        return dataclasses.replace(self, N=int(n))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        """Strict; a config without ``arch`` (bundles written before it existed) is 'classic'."""
        return super().from_dict({"arch": "classic", **d})
