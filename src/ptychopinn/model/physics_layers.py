"""Differentiable physics layers of the PINN (DESIGN section 5), batched over groups.

Geometry (sign convention of :mod:`ptychopinn.data.grouping`): a group with member centres
``c_j`` and centroid ``c̄`` has offsets ``o_j = c_j - c̄``. The group canvas is a square of side
``N + 2*pad`` centred on ``c̄`` (canvas index ``Nc//2`` is the centroid); member j's patch is
centred at ``Nc//2 + o_j``. Translations use :func:`ptychopinn.physics.forward.fourier_shift`
(sub-pixel, periodic; the ``pad`` margin keeps the wrap away from the supports).

Merge: ``canvas = sum_j T_{o_j}(m * p_j) / (sum_j T_{o_j}(m) + eps)`` with the *same* support mask
``m`` in numerator and denominator, computed separately for every group of the batch; where the
summed weight is below ``min_weight`` (outside every support, or Fourier ringing) the canvas is 0.
Extraction: ``p'_j = m * crop_N(T_{-o_j}(canvas))``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ptychopinn.physics.forward import far_field, fourier_shift


def support_mask(n: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 full: bool = False) -> Tensor:
    """(n, n) mask: 1 on the central n/2 x n/2 square (``[n//4, n//4 + n//2)``), else 0.
    ``full=True`` gives all ones (border branch)."""
    if full:
        return torch.ones(n, n, device=device, dtype=dtype)
    m = torch.zeros(n, n, device=device, dtype=dtype)
    a = n // 4
    m[a:a + n // 2, a:a + n // 2] = 1
    return m


def default_pad(n: int) -> int:
    """Canvas margin: N/4 on each side, so supports shifted by up to N/2 stay inside."""
    return n // 4


def _pad(t: Tensor, pad: int) -> Tensor:
    if pad == 0:
        return t
    if torch.is_complex(t):
        return torch.view_as_complex(
            torch.nn.functional.pad(torch.view_as_real(t), (0, 0, pad, pad, pad, pad)).contiguous())
    return torch.nn.functional.pad(t, (pad, pad, pad, pad))


def merge_weights(offsets: Tensor, mask: Tensor, pad: int) -> Tensor:
    """Summed translated support masks (B, Nc, Nc) (the merge denominator, before eps)."""
    m = _pad(mask, pad).expand(*offsets.shape[:-1], -1, -1)
    return fourier_shift(m, offsets).sum(dim=-3)


def merge_patches(patches: Tensor, offsets: Tensor, mask: Tensor, pad: int,
                  eps: float = 1e-6, min_weight: float = 0.1) -> Tensor:
    """Merge member patches (B, C, N, N) complex at ``offsets`` (B, C, 2) into one canvas per
    group (B, N + 2 pad, N + 2 pad)."""
    rdtype = patches.real.dtype
    off = offsets.to(rdtype)
    num = fourier_shift(_pad(patches * mask, pad), off).sum(dim=-3)
    with torch.no_grad():
        w = merge_weights(off, mask.to(rdtype), pad)
        inv = torch.where(w > min_weight, 1.0 / (w.clamp_min(0) + eps), torch.zeros_like(w))
    return num * inv


def extract_from_canvas(canvas: Tensor, offsets: Tensor, n: int, mask: Tensor | None = None) -> Tensor:
    """Member patches (B, C, n, n) centred at canvas centre + offset, times ``mask``."""
    nc = canvas.shape[-1]
    pad = (nc - n) // 2
    rdtype = canvas.real.dtype if torch.is_complex(canvas) else canvas.dtype
    shifted = fourier_shift(canvas[:, None], -offsets.to(rdtype))
    out = shifted[..., pad:pad + n, pad:pad + n]
    return out if mask is None else out * mask


def crop_centre(canvas: Tensor, n: int) -> Tensor:
    """Central n x n of a (..., Nc, Nc) canvas."""
    pad = (canvas.shape[-1] - n) // 2
    return canvas[..., pad:pad + n, pad:pad + n]


def diffraction_amplitude(obj_patches: Tensor, probe: Tensor, scale: Tensor | float) -> Tensor:
    """|far_field(probe * O)| * scale: predicted amplitudes (count units when scale = exp(log_s))."""
    return far_field(probe * obj_patches).abs() * scale


def physics_forward(patches: Tensor, offsets: Tensor | None, probe: Tensor, scale: Tensor | float,
                    mask: Tensor, pad: int, eps: float = 1e-6, min_weight: float = 0.1
                    ) -> dict[str, Tensor]:
    """Object patches (B, C, N, N) -> merged canvas, re-extracted patches, predicted amplitudes.

    Groups of one member (gridsize 1, offset 0) skip the merge: it is the identity there.
    """
    n = patches.shape[-1]
    c = patches.shape[1]
    if c == 1 and (offsets is None or not torch.any(offsets != 0)):
        obj = patches * mask
        canvas = obj[:, 0]
    else:
        full = merge_patches(patches, offsets, mask, pad, eps, min_weight)
        obj = extract_from_canvas(full, offsets, n, mask)
        canvas = crop_centre(full, n)
    amp = diffraction_amplitude(obj, probe, scale)
    return {"object_patches": obj, "object": canvas, "amplitude": amp}
