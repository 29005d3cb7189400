"""Stitching predicted object patches into one object (DESIGN section 6).

Geometry
--------
A patch predicted at centre ``c`` (object pixels, (y, x)) holds ``patch[k] = O(c - N//2 + k)`` on
each axis (DESIGN section 2). Only its central ``crop x crop`` square is kept: patch indices
``N//2 - crop//2 + j``, ``j = 0 .. crop-1``. With ``ci = floor(c + 0.5)`` (nearest integer, halves
rounded up) the kept square lands on the integer object pixels ``ci - crop//2 + j``.

Sub-pixel centres (``subpixel="fourier"``, the default): the fractional part ``f = c - ci`` (in
[-0.5, 0.5)) is removed by Fourier-shifting a window around the kept square by ``+f`` (content moves
by ``+f``; :func:`ptychopinn.physics.forward.fourier_shift`), so the kept values are the patch
interpolated *at* the integer pixels ``ci - crop//2 + j``. The window is the crop plus a margin
``pad`` on each side (default: up to the N/2 support of the network output, at least 4 px where the
patch allows), mirror-extended to twice its size so that its periodic continuation has no jump; on a
smooth test object this brings the interpolation error to ~1e-3 of the signal (vs ~3e-2 without the
mirror and ~2e-1 for rounding).
``subpixel="round"`` skips the shift and places the patch at the nearest integer pixel (up to half
a pixel of misplacement, faster). Integer centres give identical results in both modes.

Accumulation is a vectorised scatter-add (``scatter_add_`` on flat canvas indices, float64) of the kept pixels
and of their counts; the object is the sum divided by the counts (pixels never covered are 0 and
have count 0). Canvas pixel ``(i, j)`` is object pixel ``(origin[0] + i, origin[1] + j)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ptychopinn.errors import ConfigError
from ptychopinn.physics.forward import fourier_shift

SUBPIXEL_MODES = ("fourier", "round")


def default_crop(n: int) -> int:
    """Default kept square: 20 px at N=64, scaled with N (``round(N * 20 / 64)``, at least 1)."""
    return max(1, round(n * 20 / 64))


def nearest_pixel(centres_yx: np.ndarray) -> np.ndarray:
    """Nearest integer pixel (halves rounded up: ``floor(c + 0.5)``) as int64."""
    return np.floor(np.asarray(centres_yx, dtype=np.float64) + 0.5).astype(np.int64)


def check_crop(n: int, crop: int) -> int:
    """Validate a stitch crop against the patch size n (1 <= crop <= n)."""
    crop = int(crop)
    if not 1 <= crop <= n:
        raise ConfigError(f"stitch crop must be between 1 and the patch size {n}; got {crop}")
    return crop


@dataclass(frozen=True)
class CanvasGeometry:
    """Where the canvas lies in object pixels: ``origin`` (y0, x0) int and ``shape`` (H, W)."""

    origin: tuple[int, int]
    shape: tuple[int, int]

    @classmethod
    def from_centres(cls, centres_yx: np.ndarray, crop: int) -> CanvasGeometry:
        """Smallest canvas holding the kept ``crop x crop`` square of every patch."""
        c = np.asarray(centres_yx, dtype=np.float64).reshape(-1, 2)
        if c.shape[0] == 0:
            raise ConfigError("cannot stitch zero patches")
        if not np.all(np.isfinite(c)):
            raise ConfigError("patch centres contain NaN or Inf")
        ci = nearest_pixel(c)
        lo = ci.min(axis=0) - crop // 2
        hi = ci.max(axis=0) - crop // 2 + crop
        return cls(origin=(int(lo[0]), int(lo[1])), shape=(int(hi[0] - lo[0]), int(hi[1] - lo[1])))


class Stitcher:
    """Streaming scatter-add accumulator: ``add`` patches chunk by chunk, then ``result``.

    Holds only the canvas sums and counts (on ``device``), never the patches.
    """

    def __init__(
        self,
        geometry: CanvasGeometry,
        n: int,
        crop: int,
        *,
        subpixel: str = "fourier",
        pad: int | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        if subpixel not in SUBPIXEL_MODES:
            raise ConfigError(f"subpixel must be one of {SUBPIXEL_MODES}; got {subpixel!r}")
        self.geometry = geometry
        self.n = int(n)
        self.crop = check_crop(self.n, crop)
        self.subpixel = subpixel
        self.device = torch.device(device)
        start = self.n // 2 - self.crop // 2
        # margin for the Fourier shift: up to the N/2 support, at least 4 px where the patch allows
        avail = min(start, self.n - start - self.crop)
        want = max(4, (self.n // 2 - self.crop) // 2) if pad is None else int(pad)
        self.pad = max(0, min(avail, want))
        self._start = start
        h, w = geometry.shape
        self._w = w
        # float64 sums: exact for repeated identical values (integer-position stitching is exact)
        self._sum = torch.zeros(2 * h * w, dtype=torch.float64, device=self.device)  # (re, im) pairs
        self._cnt = torch.zeros(h * w, dtype=torch.float32, device=self.device)
        ar = torch.arange(self.crop, device=self.device, dtype=torch.int64)
        self._offs = (ar[:, None] * w + ar[None, :]).reshape(-1)  # (crop*crop,) flat pixel offsets
        self._offs2 = torch.stack([2 * self._offs, 2 * self._offs + 1], dim=1).reshape(-1)  # (re, im)

    @classmethod
    def for_centres(cls, centres_yx: np.ndarray, n: int, crop: int | None = None, **kw) -> Stitcher:
        crop = default_crop(n) if crop is None else check_crop(n, crop)
        return cls(CanvasGeometry.from_centres(centres_yx, crop), n, crop, **kw)

    def kept_pixels(self, patches: Tensor, centres_yx: np.ndarray) -> Tensor:
        """The (B, crop, crop) values each patch contributes at its integer pixels."""
        s, c = self._start, self.crop
        frac = np.asarray(centres_yx, dtype=np.float64) - nearest_pixel(centres_yx)
        if self.subpixel == "round" or not np.any(frac):
            return patches[:, s:s + c, s:s + c]
        p = self.pad
        win = patches[:, s - p:s + c + p, s - p:s + c + p]
        if not torch.is_complex(win):
            win = win.to(torch.complex64)
        # even (mirror) extension makes the window periodic without a jump at its edges, so the
        # Fourier shift rings ~30x less than on the bare window
        win = torch.cat([win, win.flip(-1)], dim=-1)
        win = torch.cat([win, win.flip(-2)], dim=-2)
        f = torch.as_tensor(frac, dtype=win.real.dtype, device=win.device)
        return fourier_shift(win, f)[:, p:p + c, p:p + c]

    def add(self, patches: Tensor | np.ndarray, centres_yx: np.ndarray) -> None:
        """Accumulate (B, N, N) complex patches predicted at ``centres_yx`` (B, 2)."""
        patches = torch.as_tensor(patches, device=self.device)
        if patches.ndim != 3 or patches.shape[-2:] != (self.n, self.n):
            raise ConfigError(f"patches must be (B, {self.n}, {self.n}); got {tuple(patches.shape)}")
        centres_yx = np.asarray(centres_yx, dtype=np.float64).reshape(-1, 2)
        if centres_yx.shape[0] != patches.shape[0]:
            raise ConfigError(f"{patches.shape[0]} patches but {centres_yx.shape[0]} centres")
        if patches.shape[0] == 0:
            return
        kept = self.kept_pixels(patches, centres_yx).to(torch.complex64)
        top = nearest_pixel(centres_yx) - self.crop // 2 - np.asarray(self.geometry.origin)
        h, w = self.geometry.shape
        if np.any(top < 0) or np.any(top[:, 0] + self.crop > h) or np.any(top[:, 1] + self.crop > w):
            raise ConfigError("a patch centre lies outside the canvas geometry")
        base = torch.as_tensor(top[:, 0] * w + top[:, 1], device=self.device)
        idx = (base[:, None] + self._offs[None, :]).reshape(-1)
        idx2 = (2 * base[:, None] + self._offs2[None, :]).reshape(-1)
        vals = torch.view_as_real(kept.contiguous()).reshape(-1).to(torch.float64)
        # flat 1-D scatter_add_ is the fastest vectorised accumulation on CPU (>10x index_add_ on (n, 2))
        self._sum.scatter_add_(0, idx2, vals)
        self._cnt.scatter_add_(0, idx, torch.ones(idx.shape[0], dtype=torch.float32, device=self.device))

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(canvas complex64 (H, W), origin float64 (2,) [y0, x0], counts int32 (H, W))."""
        h, w = self.geometry.shape
        cnt = self._cnt
        avg = self._sum.reshape(h * w, 2) / cnt.clamp_min(1.0).to(torch.float64)[:, None]
        canvas = torch.view_as_complex(avg.contiguous()).reshape(h, w).cpu().numpy().astype(np.complex64)
        counts = cnt.reshape(h, w).cpu().numpy().astype(np.int32)
        return canvas, np.asarray(self.geometry.origin, dtype=np.float64), counts


def stitch(
    patches: Tensor | np.ndarray,
    centres_yx: np.ndarray,
    crop: int | None = None,
    *,
    subpixel: str = "fourier",
    batch_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Stitch (M, n, n) complex patches at ``centres_yx`` (M, 2) (y, x object pixels).

    Keeps the central ``crop x crop`` (default :func:`default_crop`) of each patch, scatter-adds it
    at its global position and divides by the overlap counts. Returns ``(canvas complex64 (H, W),
    origin float64 [y0, x0])`` with canvas pixel (i, j) == object pixel (y0 + i, x0 + j).
    """
    patches = torch.as_tensor(patches)
    if patches.ndim == 4 and patches.shape[-1] == 1:
        patches = patches[..., 0]
    if patches.ndim != 3 or patches.shape[1] != patches.shape[2]:
        raise ConfigError(f"patches must be (M, n, n); got {tuple(patches.shape)}")
    centres_yx = np.asarray(centres_yx, dtype=np.float64).reshape(-1, 2)
    st = Stitcher.for_centres(centres_yx, patches.shape[-1], crop, subpixel=subpixel, device=patches.device)
    for i in range(0, patches.shape[0], batch_size):
        st.add(patches[i:i + batch_size], centres_yx[i:i + batch_size])
    canvas, origin, _ = st.result()
    return canvas, origin

