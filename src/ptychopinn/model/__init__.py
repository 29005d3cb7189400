"""model stage: configuration, intensity scaling, physics layers, the PINN, the supervised
baseline and the losses. Nothing is built at import time; every model comes from
:func:`build_model` and owns all of its state (probe, intensity scale, weights)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from torch import nn

    from ptychopinn.model.config import ModelConfig


def build_model(cfg: ModelConfig, probe: np.ndarray, intensity_scale: float,
                amplitude_scale: float = 1.0) -> nn.Module:
    """Build a fresh PINN (``cfg.kind == 'pinn'``) or supervised baseline.

    ``probe`` (N, N) complex is copied and normalised to sum|P|^2 = (N/2)^2 (factor in
    ``model.probe_factor``); ``intensity_scale`` s initialises ``log_s = log(s)``;
    ``amplitude_scale`` is the supervised model's amplitude range (ignored by the PINN).
    ``cfg.border_branch=None`` (auto) is resolved from the probe (``model.config`` holds the result).
    Weight initialisation draws from torch's global generator: seed it (or use
    ``torch.random.fork_rng``) for reproducible models.
    """
    cfg = cfg.resolved(probe)
    if cfg.kind == "supervised":
        from ptychopinn.model.supervised import SupervisedBaseline

        return SupervisedBaseline(cfg, probe, intensity_scale, amplitude_scale)
    from ptychopinn.model.pinn import PtychoPINN

    return PtychoPINN(cfg, probe, intensity_scale)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
