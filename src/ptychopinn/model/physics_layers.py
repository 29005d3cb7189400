"""Differentiable physics layers of the PINN (DESIGN section 5), batched over groups.

Geometry (sign convention of :mod:`ptychopinn.data.grouping`): a group with member centres
``c_j`` and centroid ``c̄`` has offsets ``o_j = c_j - c̄``. A *frame* is an N x N pixel grid centred
at ``c̄ + f``: the group canvas is the frame ``f = 0``; member j's own grid is the frame ``f = o_j``.
Member k's patch appears in frame f translated by ``d = o_k - f``.

Merge (per group, never across the groups of a batch), evaluated on any frame::

    merged_f = sum_k W(d_fk) * T(ext(p_k), d_fk) / (sum_k W(d_fk) + eps)

* ``T`` is :func:`ptychopinn.physics.forward.fourier_shift` (sub-pixel, content moves by +d).
* ``ext(p_k)`` is the member's support content extended symmetrically (mirror) to the whole N x N
  frame, so its periodic continuation has no jumps and the Fourier shift does not ring.
* ``W(d)`` is the support mask translated by d, as 0/1 weights: a pixel counts when its source
  coordinate lies within the member's sampled support, so values are interpolated, never
  extrapolated (exactly the shifted mask for integer d). Numerator and denominator use the SAME
  weights, so border pixels are never inflated; uncovered pixels are 0.

Re-extraction at the offsets is this merge evaluated on member j's frame (``f = o_j``), times the
support mask. For integer offsets the round trip cut -> merge -> re-extract is exact; member j's
own term enters untranslated, so sub-pixel offsets only interpolate the neighbours' terms. The
group canvas output is the frame ``f = 0``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ptychopinn.physics.forward import far_field, fourier_shift


def support_bounds(n: int, full: bool = False) -> tuple[int, int]:
    """[start, stop) of the support on each axis: the central n/2 (or the whole patch)."""
    return (0, n) if full else (n // 4, n // 4 + n // 2)


def support_mask(n: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32,
                 full: bool = False) -> Tensor:
    """(n, n) mask: 1 on the central n/2 x n/2 square (``[n//4, n//4 + n//2)``), else 0.
    ``full=True`` gives all ones (border branch)."""
    a, b = support_bounds(n, full)
    m = torch.zeros(n, n, device=device, dtype=dtype)
    m[a:b, a:b] = 1
    return m


def mirror_index(n: int, full: bool = False, device: torch.device | str | None = None) -> Tensor:
    """(n,) indices that fill an n-frame from the support [a, b) by mirror extension (period n,
    continuous across the wrap)."""
    a, b = support_bounds(n, full)
    length = b - a
    i = torch.arange(n, device=device) - a
    i = torch.remainder(i, 2 * length)
    i = torch.where(i >= length, 2 * length - 1 - i, i)
    return i + a


def extend_support(patches: Tensor, full: bool = False) -> Tensor:
    """Mirror-extend the support content of (..., n, n) patches to the whole frame."""
    n = patches.shape[-1]
    if full:
        return patches
    idx = mirror_index(n, False, patches.device)
    return patches.index_select(-2, idx).index_select(-1, idx)


def support_weights(shift_yx: Tensor, n: int, full: bool = False) -> Tensor:
    """(..., n, n) 0/1 weights of the support translated by ``shift_yx`` (..., 2): pixel i counts
    when ``i - shift`` lies within the sampled support range [a, b-1], so translated values are
    always interpolated between the member's own samples, never extrapolated. Integer shifts give
    the translated support mask exactly."""
    a, b = support_bounds(n, full)
    pix = torch.arange(n, device=shift_yx.device, dtype=shift_yx.dtype)
    src = pix - shift_yx[..., None]  # (..., 2, n) source coordinate in the member's patch
    tol = 1e-4
    inside = ((src >= a - tol) & (src <= b - 1 + tol)).to(shift_yx.dtype)
    return inside[..., 0, :, None] * inside[..., 1, None, :]


def merge_on_frames(patches: Tensor, offsets: Tensor, frames: Tensor, eps: float = 1e-6,
                    full: bool = False) -> Tensor:
    """Merge member patches (B, C, n, n) complex at ``offsets`` (B, C, 2) onto the frames
    ``frames`` (B, F, 2) (offsets of the frame centres from the group centroid) -> (B, F, n, n)."""
    n = patches.shape[-1]
    rdtype = patches.real.dtype
    d = offsets.to(rdtype)[:, None, :, :] - frames.to(rdtype)[:, :, None, :]  # (B, F, C, 2)
    ext = extend_support(patches, full)
    moved = fourier_shift(ext[:, None].expand(-1, d.shape[1], -1, -1, -1), d)  # (B, F, C, n, n)
    with torch.no_grad():
        w = support_weights(d, n, full)
        inv = 1.0 / (w.sum(dim=2) + eps)  # (B, F, n, n)
    return (moved * w).sum(dim=2) * inv


def merge_patches(patches: Tensor, offsets: Tensor, eps: float = 1e-6, full: bool = False) -> Tensor:
    """The group canvas (B, n, n): the merge on the frame centred at the group centroid."""
    frames = offsets.new_zeros(offsets.shape[0], 1, 2)
    return merge_on_frames(patches, offsets, frames, eps, full)[:, 0]


def reextract_patches(patches: Tensor, offsets: Tensor, eps: float = 1e-6, full: bool = False) -> Tensor:
    """Merged object re-extracted at every member offset (B, C, n, n), times the support mask."""
    n = patches.shape[-1]
    merged = merge_on_frames(patches, offsets, offsets, eps, full)
    return merged * support_mask(n, merged.device, merged.real.dtype, full)


def diffraction_amplitude(obj_patches: Tensor, probe: Tensor, scale: Tensor | float) -> Tensor:
    """|far_field(probe * O)| * scale: predicted amplitudes (count units when scale = exp(log_s))."""
    return far_field(probe * obj_patches).abs() * scale


def physics_forward(patches: Tensor, offsets: Tensor | None, probe: Tensor, scale: Tensor | float,
                    eps: float = 1e-6, full: bool = False, with_canvas: bool = True) -> dict[str, Tensor]:
    """Object patches (B, C, N, N) -> re-extracted patches, group canvas, predicted amplitudes.

    Groups of one member at offset 0 (gridsize 1) skip the merge: it is the identity there.
    """
    n = patches.shape[-1]
    mask = support_mask(n, patches.device, patches.real.dtype, full)
    if patches.shape[1] == 1 and (offsets is None or not torch.any(offsets != 0)):
        obj = patches * mask
        canvas = obj[:, 0]
    else:
        obj = reextract_patches(patches, offsets, eps, full)
        canvas = merge_patches(patches.detach(), offsets, eps, full) if with_canvas else obj[:, 0]
    amp = diffraction_amplitude(obj, probe, scale)
    return {"object_patches": obj, "object": canvas, "amplitude": amp}
