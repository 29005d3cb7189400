"""The default PINN network body (``ModelConfig.arch = 'unet'``).

Why it differs from the classic body (measured with ``benchmarks/bench_quality.py``):

* **Back-projected input.** Besides the C normalised amplitudes X, the network sees the first
  error-reduction estimate of each member's object patch: ``O0 = conj(P) * F^-1[X * exp(i arg F[P])]
  / (|P|^2 + delta)`` (the measured modulus with the phase of the probe's own far field, taken back
  to real space and divided by the probe). This puts the problem in real space, where the object
  lives, so convolutions and skip connections act on aligned geometry.
* **Skip connections (U-Net)** from every encoder level to the decoder, so fine detail does not have
  to pass an 8 x 8 bottleneck.
* **Non-dying activations** (SiLU) and optional GroupNorm.
* It runs on the support only (the central N/2 x N/2, or N x N with the border branch), where the
  object is predicted: a quarter of the pixels of the classic body's first stage.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ptychopinn.physics.forward import far_field, near_field


def _block(c_in: int, c_out: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(2):
        layers.append(nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, padding=1))
        if norm == "group":
            layers.append(nn.GroupNorm(min(8, c_out), c_out))
        layers.append(nn.SiLU(inplace=True))
    return nn.Sequential(*layers)


def back_projection(x: Tensor, probe: Tensor, delta: float = 0.1) -> Tensor:
    """(B, C, N, N) normalised amplitudes -> (B, 2C, N, N) real/imag of the first real-space object
    estimate ``conj(P) F^-1[X exp(i arg F[P])] / (|P|^2 + delta max|P|^2)``. ``probe``: one (N, N)
    probe for the batch, or one per sample (B, 1, N, N)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        p = probe.detach().to(torch.complex64)
        phase = torch.exp(1j * torch.angle(far_field(p)))
        psi = near_field(x.float() * phase)
        p2 = p.abs().square()
        o = psi * p.conj() / (p2 + delta * p2.amax(dim=(-2, -1), keepdim=True))
        return torch.cat([o.real, o.imag], dim=1)


class UNetBody(nn.Module):
    """(B, C, N, N) amplitudes -> pre-activation amplitude and phase maps (B, C, N, N) each.

    The U-Net runs on the support only (the central N/2 x N/2, or all N x N with ``full``): its
    input there is the back-projected object estimate (2C channels) and the amplitudes average-
    pooled to the same size (C channels); outside the support the maps are zero.
    """

    def __init__(self, c: int, n: int, widths: list[int], norm: str = "none", back_project: bool = True,
                 full: bool = False) -> None:
        super().__init__()
        self.back_project, self.n, self.full = back_project, n, full
        self.size = n if full else n // 2
        c_in = 3 * c if back_project else c
        self.enc = nn.ModuleList()
        prev = c_in
        for w in widths:
            self.enc.append(_block(prev, w, norm))
            prev = w
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _block(prev, prev, norm)
        self.dec = nn.ModuleList()
        dec_w = [max(16, w // 2) for w in widths]
        for i in reversed(range(len(widths))):
            self.dec.append(_block(prev + widths[i], dec_w[i], norm))
            prev = dec_w[i]
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.head_amp = nn.Conv2d(prev, c, 3, padding=1)
        self.head_phase = nn.Conv2d(prev, c, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(0.5), nonlinearity="leaky_relu")
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.head_phase.weight)  # start from a flat phase, amplitude amp_max * sigmoid(0)

    def features(self, x: Tensor, probe: Tensor) -> Tensor:
        """Network input on the support: (B, 3C or C, S, S)."""
        a = (self.n - self.size) // 2
        xs = x if self.full else nn.functional.avg_pool2d(x, 2)
        if not self.back_project:
            return xs
        bp = back_projection(x, probe)[..., a:a + self.size, a:a + self.size]
        return torch.cat([xs, bp.to(x.dtype)], dim=1)

    def forward(self, x: Tensor, probe: Tensor) -> tuple[Tensor, Tensor]:
        h = self.features(x, probe)
        skips = []
        for i, blk in enumerate(self.enc):
            h = blk(h if i == 0 else self.pool(h))
            skips.append(h)
        h = self.bottleneck(self.pool(h))
        for blk, s in zip(self.dec, reversed(skips)):
            h = blk(torch.cat([self.up(h), s], dim=1))
        q = (self.n - self.size) // 2
        pad = (q, q, q, q)
        return nn.functional.pad(self.head_amp(h), pad), nn.functional.pad(self.head_phase(h), pad)
