"""The physics-informed network (DESIGN section 5) and the convolutional blocks it shares with the
supervised baseline.

Encoder: ``n_stages`` blocks of (3x3 conv, ReLU, 3x3 conv, ReLU, 2x max-pool); widths
``128 * n_filters_scale / 2^(n_stages-1-i)`` (32/64/128 x scale at N=64, one more stage per doubling
of N), bottleneck 8 x 8. Two decoders (amplitude, phase) of (conv, ReLU, conv, ReLU, 2x nearest
upsampling) blocks mirror the encoder up to N/2; a final 3x3 conv gives C maps of the central
N/2 x N/2 support (amplitude ``amp_max * sigmoid``, phase ``pi * tanh``), zero-padded to N.

The convolutional body may run under ``torch.autocast`` (the trainer uses bfloat16 on CPUs with
native support); the output heads and every physics layer always run in float32 / complex64.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from ptychopinn.model import physics_layers as phys
from ptychopinn.model.config import ModelConfig
from ptychopinn.physics.probe import normalise_probe_energy


def conv_pair(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(inplace=True)]


def encoder_widths(cfg: ModelConfig) -> list[int]:
    s = cfg.n_stages
    return [max(1, (128 * cfg.n_filters_scale) >> (s - 1 - i)) for i in range(s)]


class Encoder(nn.Sequential):
    """Stages of (conv, ReLU, conv, ReLU, 2x max-pool)."""

    def __init__(self, c_in: int, widths: list[int]) -> None:
        layers: list[nn.Module] = []
        for w in widths:
            layers += conv_pair(c_in, w) + [nn.MaxPool2d(2)]
            c_in = w
        super().__init__(*layers)


class Decoder(nn.Sequential):
    """(conv pair, 2x nearest upsampling) blocks with the given widths."""

    def __init__(self, c_in: int, widths: list[int]) -> None:
        layers: list[nn.Module] = []
        for w in widths:
            layers += conv_pair(c_in, w) + [nn.Upsample(scale_factor=2, mode="nearest")]
            c_in = w
        super().__init__(*layers)


def border_branch(c_feat: int, c_out: int, n_in: int = 4) -> nn.Sequential:
    """Low-cost branch for the object outside the central support: the last ``n_in`` decoder
    feature maps at N/2 -> conv pair -> 2x upsampling -> conv to ``c_out`` maps at N."""
    w = max(8, c_feat // 2)
    return nn.Sequential(_LastChannels(min(n_in, c_feat)), *conv_pair(min(n_in, c_feat), w),
                         nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w, c_out, 3, padding=1))


class _LastChannels(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: Tensor) -> Tensor:
        return x[:, -self.k:]


def init_weights(module: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases for every convolution (the PyTorch default,
    kaiming-uniform with a=sqrt(5), shrinks activations through the deep ReLU stack and slows
    early training markedly)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def amplitude_activation(z: Tensor, kind: str, amp_max: float) -> Tensor:
    if kind == "sigmoid":
        return amp_max * torch.sigmoid(z)
    if kind == "softplus":
        return nn.functional.softplus(z)
    return torch.exp(z.clamp(max=10.0))


def _autocast_off(device_type: str):
    return torch.autocast(device_type=device_type, enabled=False)


def _probe_tensor(probe: np.ndarray) -> tuple[Tensor, float]:
    p, factor = normalise_probe_energy(np.asarray(probe, dtype=np.complex128))
    ri = np.stack([p.real, p.imag], axis=-1).astype(np.float32)
    return torch.from_numpy(ri), float(factor)


class PtychoPINN(nn.Module):
    """``forward(x (B, C, N, N) normalised, offsets (B, C, 2)) -> dict`` (see MODEL_API)."""

    def __init__(self, cfg: ModelConfig, probe: np.ndarray, intensity_scale: float) -> None:
        super().__init__()
        if cfg.N is None:
            raise ValueError("ModelConfig.N must be set before building a model")
        n, c = int(cfg.N), cfg.C
        if np.shape(probe) != (n, n):
            raise ValueError(f"probe shape {np.shape(probe)} does not match N={n}")
        self.config = cfg
        self.N, self.gridsize, self.kind, self.C = n, cfg.gridsize, cfg.kind, c
        widths = encoder_widths(cfg)
        if cfg.arch == "unet":
            from ptychopinn.model.unet import UNetBody

            self.unet = UNetBody(c, n, widths, cfg.norm, cfg.back_project, bool(cfg.border_branch))
        else:
            self.encoder = Encoder(c, widths)
            dec_widths = widths[:-1][::-1]
            last = dec_widths[-1] if dec_widths else widths[-1]
            self.dec_amp = Decoder(widths[-1], dec_widths)
            self.dec_phase = Decoder(widths[-1], dec_widths)
            self.head_amp = nn.Conv2d(last, c, 3, padding=1)
            self.head_phase = nn.Conv2d(last, c, 3, padding=1)
            if cfg.border_branch:
                self.border_amp = border_branch(last, c)
                self.border_phase = border_branch(last, c)
            init_weights(self)
        ri, factor = _probe_tensor(probe)
        self.probe_factor = factor
        if cfg.probe_trainable:
            self.probe = nn.Parameter(ri)
        else:
            self.register_buffer("probe", ri)
        log_s = torch.tensor(math.log(float(intensity_scale)), dtype=torch.float32)
        if cfg.intensity_scale_trainable:
            self.log_s = nn.Parameter(log_s)
        else:
            self.register_buffer("log_s", log_s)
        self.register_buffer("support", phys.support_mask(n, full=cfg.border_branch), persistent=False)
        self.register_buffer("inner", phys.support_mask(n), persistent=False)
        if cfg.channels_last:
            self.to(memory_format=torch.channels_last)

    # -- pieces ------------------------------------------------------------------------------
    @property
    def probe_complex(self) -> Tensor:
        return torch.view_as_complex(self.probe)

    @property
    def intensity_scale(self) -> float:
        return float(torch.exp(self.log_s.detach()))

    def set_probe(self, probe: np.ndarray) -> None:
        """Replace the probe (a probe-conditioned model reconstructing a scan with its own probe);
        normalised to sum|P|^2 = (N/2)^2 like the one it was built with."""
        if np.shape(probe) != (self.N, self.N):
            raise ValueError(f"probe shape {np.shape(probe)} does not match N={self.N}")
        ri, factor = _probe_tensor(probe)
        with torch.no_grad():
            self.probe.copy_(ri.to(self.probe.device))
        self.probe_factor = factor

    def object_patches(self, x: Tensor, probe: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Amplitude and phase (B, C, N, N) float32 of the predicted member patches. ``probe``
        (B, 1, N, N) complex: a probe per sample (probe-conditioned training); default the model's."""
        if self.config.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.config.arch == "unet":
            za, zp = self.unet(x, self.probe_complex if probe is None else probe)
            with _autocast_off(x.device.type):
                amp = amplitude_activation(za.float(), self.config.amp_activation, self.config.amp_max)
                phase = math.pi * torch.tanh(zp.float())
                mask = self.support
                return (amp * mask).contiguous(), (phase * mask).contiguous()
        z = self.encoder(x)
        fa, fp = self.dec_amp(z), self.dec_phase(z)
        q = self.N // 4
        with _autocast_off(x.device.type):
            fa, fp = fa.float(), fp.float()
            amp = amplitude_activation(self.head_amp(fa), self.config.amp_activation, self.config.amp_max)
            phase = math.pi * torch.tanh(self.head_phase(fp))
            amp = nn.functional.pad(amp, (q, q, q, q))
            phase = nn.functional.pad(phase, (q, q, q, q))
            if self.config.border_branch:
                outer = 1 - self.inner
                ba = amplitude_activation(self.border_amp(fa), self.config.amp_activation, self.config.amp_max)
                bp = math.pi * torch.tanh(self.border_phase(fp))
                amp = amp + outer * ba
                phase = phase + outer * bp
        return amp.contiguous(), phase.contiguous()

    def forward(self, x: Tensor, offsets: Tensor | None = None, probe: Tensor | None = None,
                scale: Tensor | None = None) -> dict[str, Tensor]:
        """``probe`` (B, 1, N, N) complex and ``scale`` (B, 1, 1, 1): per-sample probe and intensity
        scale (training on a corpus of scans); default the model's own ``probe`` and ``exp(log_s)``."""
        if probe is not None and self.config.arch != "unet":
            raise ValueError("per-sample probes need the unet network (the classic body does not see the probe)")
        amp, phase = self.object_patches(x) if probe is None else self.object_patches(x, probe)
        with _autocast_off(x.device.type):
            patches = torch.polar(amp, phase)
            if offsets is None:
                if self.C != 1:
                    raise ValueError("a gridsize > 1 model needs the group offsets")
            else:
                offsets = offsets.to(device=x.device, dtype=torch.float32)
            out = phys.physics_forward(patches, offsets, self.probe_complex if probe is None else probe,
                                       torch.exp(self.log_s) if scale is None else scale,
                                       self.config.merge_eps, self.config.border_branch)
        amplitude = out["amplitude"]
        return {
            "patches": patches,
            "object_patches": out["object_patches"],
            "object": out["object"],
            "amplitude": amplitude,
            "intensity": amplitude.square(),
            "object_amplitude": amp,
            "object_phase": phase,
        }

    @torch.no_grad()
    def predict_patches(self, x: Tensor, offsets: Tensor | None = None) -> Tensor:
        """Object patches to stitch (B, C, N, N) complex64: the merged canvas re-extracted at
        every member offset (for gridsize 1 simply the predicted patch inside the support)."""
        amp, phase = self.object_patches(x)
        with _autocast_off(x.device.type):
            patches = torch.polar(amp, phase)
            if self.C == 1 and (offsets is None or not torch.any(offsets != 0)):
                return patches * self.support
            off = offsets.to(device=x.device, dtype=torch.float32)
            return phys.reextract_patches(patches, off, self.config.merge_eps, self.config.border_branch)
