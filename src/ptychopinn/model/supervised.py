"""Supervised baseline (PtychoNN-style): one normalised pattern in, the full N x N amplitude and
phase patch out, trained with MAE against ``ground_truth_patches``.

Same encoder as the PINN; each decoder mirrors it up to full resolution N (one more upsampling
block than the PINN's). Amplitude is ``amplitude_scale * sigmoid`` where ``amplitude_scale`` (a
buffer saved with the weights) is set from the training labels, so objects brighter than 1 can be
represented (``amp_max`` is not used here); phase is ``pi * tanh``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from ptychopinn.model.config import ModelConfig
from ptychopinn.model.pinn import (
    Decoder,
    Encoder,
    _autocast_off,
    _probe_tensor,
    amplitude_activation,
    encoder_widths,
    init_weights,
)


class SupervisedBaseline(nn.Module):
    """``forward(x (B, 1, N, N), offsets ignored) -> {'patches', 'object_amplitude', 'object_phase'}``."""

    def __init__(self, cfg: ModelConfig, probe: np.ndarray, intensity_scale: float,
                 amplitude_scale: float = 1.0) -> None:
        super().__init__()
        if cfg.N is None:
            raise ValueError("ModelConfig.N must be set before building a model")
        n = int(cfg.N)
        self.config = cfg
        self.N, self.gridsize, self.kind, self.C = n, 1, cfg.kind, 1
        widths = encoder_widths(cfg)
        self.encoder = Encoder(1, widths)
        dec_widths = widths[:-1][::-1] + [max(1, widths[0] // 2)]
        self.dec_amp = Decoder(widths[-1], dec_widths)
        self.dec_phase = Decoder(widths[-1], dec_widths)
        self.head_amp = nn.Conv2d(dec_widths[-1], 1, 3, padding=1)
        self.head_phase = nn.Conv2d(dec_widths[-1], 1, 3, padding=1)
        init_weights(self)
        ri, factor = _probe_tensor(probe)
        self.probe_factor = factor
        self.register_buffer("probe", ri)  # recorded for the bundle; unused by the network
        self.register_buffer("log_s", torch.tensor(math.log(float(intensity_scale)), dtype=torch.float32))
        self.register_buffer("amplitude_scale", torch.tensor(float(amplitude_scale), dtype=torch.float32))
        if cfg.channels_last:
            self.to(memory_format=torch.channels_last)

    @property
    def intensity_scale(self) -> float:
        return float(torch.exp(self.log_s))

    def forward(self, x: Tensor, offsets: Tensor | None = None) -> dict[str, Tensor]:
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        z = self.encoder(x)
        fa, fp = self.dec_amp(z), self.dec_phase(z)
        with _autocast_off(x.device.type):
            amp = self.amplitude_scale * amplitude_activation(
                self.head_amp(fa.float()), self.config.amp_activation, 1.0)
            phase = math.pi * torch.tanh(self.head_phase(fp.float()))
            amp, phase = amp.contiguous(), phase.contiguous()
            return {"patches": torch.polar(amp, phase), "object_amplitude": amp, "object_phase": phase}

    @torch.no_grad()
    def predict_patches(self, x: Tensor, offsets: Tensor | None = None) -> Tensor:
        """(B, 1, N, N) complex64 predicted object patches."""
        return self.forward(x)["patches"]
