"""Alignment of a reconstruction to the ground truth before scoring (DESIGN section 7).

Steps (docs/evaluation.md): crop both to a common box in object pixels, estimate the sub-pixel
shift (windowed phase cross-correlation with upsampling, refined by least squares), apply it
with a Fourier shift, drop a rim so wrap-around does not count, remove the global phase offset
(optionally a phase plane), scale the amplitude by least squares.

Boxes are ``(y0, y1, x0, x1)`` in object pixels, half-open. A canvas with ``origin = (oy, ox)``
holds object pixel ``(oy + i, ox + j)`` at canvas index ``(i, j)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Box = tuple[int, int, int, int]

#: accepted values of ``register_on``
REGISTER_ON: tuple[str, ...] = ("auto", "amplitude", "complex", "phase")


# ---------------------------------------------------------------------------------------------
# boxes
# ---------------------------------------------------------------------------------------------
def scanned_region(ycoords: np.ndarray, xcoords: np.ndarray, object_shape: tuple[int, int]) -> Box:
    """Bounding box of the patch centres (floor of the minimum to ceil of the maximum,
    inclusive), clipped to the object."""
    y = np.asarray(ycoords, dtype=np.float64)
    x = np.asarray(xcoords, dtype=np.float64)
    if y.size == 0:
        raise ValueError("no scan positions")
    h, w = object_shape
    y0 = max(0, math.floor(y.min()))
    y1 = min(h, math.ceil(y.max()) + 1)
    x0 = max(0, math.floor(x.min()))
    x1 = min(w, math.ceil(x.max()) + 1)
    return (y0, y1, x0, x1)


def canvas_box(origin: Sequence[float], shape: tuple[int, int]) -> Box:
    """Object-pixel box covered by a canvas whose origin is rounded to whole pixels."""
    oy, ox = (round(float(o)) for o in origin)
    return (oy, oy + int(shape[0]), ox, ox + int(shape[1]))


def intersect_boxes(*boxes: Box) -> Box:
    """Intersection of boxes; raises ValueError when it is empty."""
    y0 = max(b[0] for b in boxes)
    y1 = min(b[1] for b in boxes)
    x0 = max(b[2] for b in boxes)
    x1 = min(b[3] for b in boxes)
    if y1 <= y0 or x1 <= x0:
        raise ValueError(f"boxes do not overlap: {list(boxes)}")
    return (y0, y1, x0, x1)


def crop_canvas(canvas: np.ndarray, origin: Sequence[float], box: Box) -> np.ndarray:
    """The part of ``canvas`` (placed at the rounded ``origin``) that covers object box ``box``."""
    oy, ox = (round(float(o)) for o in origin)
    y0, y1, x0, x1 = box
    if y0 - oy < 0 or x0 - ox < 0 or y1 - oy > canvas.shape[0] or x1 - ox > canvas.shape[1]:
        raise ValueError(f"box {box} is not inside the canvas at origin ({oy}, {ox}) of shape {canvas.shape}")
    return canvas[y0 - oy:y1 - oy, x0 - ox:x1 - ox]


def shrink_box(box: Box, rim: int) -> Box:
    y0, y1, x0, x1 = box
    return (y0 + rim, y1 - rim, x0 + rim, x1 - rim)


# ---------------------------------------------------------------------------------------------
# registration
# ---------------------------------------------------------------------------------------------
def fourier_shift_image(image: np.ndarray, shift: Sequence[float]) -> np.ndarray:
    """Shift ``image`` by ``shift = (dy, dx)`` pixels (content moves towards +y, +x for positive
    values) with a Fourier phase ramp (periodic: content wraps around the edges). Real input
    gives real output."""
    from scipy.ndimage import fourier_shift

    a = np.asarray(image)
    if float(shift[0]) == 0.0 and float(shift[1]) == 0.0:
        return a.copy()
    out = np.fft.ifft2(fourier_shift(np.fft.fft2(a), (float(shift[0]), float(shift[1]))))
    return out if np.iscomplexobj(a) else out.real


def registration_signal(gt: np.ndarray, recon: np.ndarray, register_on: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(reference, moving, resolved mode) for registration: amplitudes, the complex objects, or
    unit phasors. ``"auto"`` = amplitude unless the ground-truth amplitude is flat (complex)."""
    if register_on not in REGISTER_ON:
        raise ValueError(f"unknown register_on {register_on!r}; choose from {REGISTER_ON}")
    mode = register_on
    if mode == "auto":
        amp = np.abs(gt)
        mean = float(amp.mean())
        mode = "amplitude" if mean > 0 and float(amp.std()) > 1e-3 * mean else "complex"
    if mode == "amplitude":
        return np.abs(gt).astype(np.float64), np.abs(recon).astype(np.float64), mode
    if mode == "phase":
        return np.exp(1j * np.angle(gt)), np.exp(1j * np.angle(recon)), mode
    return np.asarray(gt, dtype=np.complex128), np.asarray(recon, dtype=np.complex128), mode


def _refine_shift(reference: np.ndarray, moving: np.ndarray, start: np.ndarray, max_size: int) -> np.ndarray:
    """Least-squares refinement: the shift minimising ||g*shift(moving) + c - reference||^2 over
    the interior (gain g and offset c fitted in closed form at every trial shift)."""
    from scipy import optimize

    h, w = reference.shape
    # bound the cost: refine on a centred block of at most max_size x max_size
    sy, sx = min(h, max_size), min(w, max_size)
    cy, cx = (h - sy) // 2, (w - sx) // 2
    ref = reference[cy:cy + sy, cx:cx + sx]
    mov_f = np.fft.fft2(moving[cy:cy + sy, cx:cx + sx])
    rim = math.ceil(float(np.max(np.abs(start)))) + 3
    if 2 * rim >= min(sy, sx) - 4:
        return start
    inner = (slice(rim, sy - rim), slice(rim, sx - rim))
    r = ref[inner].ravel()
    r = r - r.mean()
    rr = float(np.vdot(r, r).real)
    cplx = np.iscomplexobj(ref) or np.iscomplexobj(moving)

    ky = -2j * np.pi * np.fft.fftfreq(sy)
    kx = -2j * np.pi * np.fft.fftfreq(sx)

    def cost(s: np.ndarray) -> float:
        ramp = np.exp(ky * s[0])[:, None] * np.exp(kx * s[1])[None, :]
        m = np.fft.ifft2(mov_f * ramp)
        m = (m if cplx else m.real)[inner].ravel()
        m = m - m.mean()
        mm = float(np.vdot(m, m).real)
        # residual of the best gain + offset fit, in closed form
        return rr - (abs(np.vdot(m, r)) ** 2 / mm if mm > 0 else 0.0)

    opt = optimize.minimize(cost, np.asarray(start, dtype=np.float64), method="Nelder-Mead",
                            options={"xatol": 1e-3, "fatol": 1e-14, "maxiter": 400})
    step = np.asarray(opt.x) - start
    # a refinement that runs away (more than one pixel) is not trusted
    return np.asarray(opt.x) if float(np.max(np.abs(step))) <= 1.0 else start


def estimate_shift(
    reference: np.ndarray, moving: np.ndarray, *, upsample_factor: int = 100, refine: bool = True,
    refine_max_size: int = 256,
) -> tuple[float, float]:
    """Shift ``(dy, dx)`` that registers ``moving`` onto ``reference`` when applied with
    :func:`fourier_shift_image`.

    Coarse: ``skimage.registration.phase_cross_correlation`` (upsampled by ``upsample_factor``)
    on mean-subtracted, Hann-windowed images. Fine (``refine=True``): least-squares fit of the
    shift over the interior, which removes the bias of non-periodic image edges. Rounded to
    1e-3 px. Works with real or complex images of the same shape.
    """
    from skimage.registration import phase_cross_correlation

    ref = np.asarray(reference)
    mov = np.asarray(moving)
    if ref.shape != mov.shape or ref.ndim != 2:
        raise ValueError(f"registration needs two 2-D images of one shape; got {ref.shape} and {mov.shape}")
    win = np.outer(np.hanning(ref.shape[0]), np.hanning(ref.shape[1]))
    coarse = phase_cross_correlation(
        (ref - ref.mean()) * win, (mov - mov.mean()) * win, upsample_factor=upsample_factor,
        normalization=None,
    )[0]
    shift = np.asarray(coarse, dtype=np.float64)
    if refine:
        shift = _refine_shift(ref, mov, shift, refine_max_size)
    shift = np.round(shift, 3) + 0.0  # + 0.0 turns -0.0 into 0.0
    return (float(shift[0]), float(shift[1]))


def auto_rim(shifts: Sequence[Sequence[float]]) -> int:
    """Rim (pixels) dropped after Fourier shifting: 0 when every shift is zero, else
    ceil(largest |shift component|) + 2 (the extra 2 px absorb interpolation ringing)."""
    m = max((abs(float(c)) for s in shifts for c in s), default=0.0)
    return 0 if m == 0.0 else math.ceil(m) + 2


# ---------------------------------------------------------------------------------------------
# phase and amplitude
# ---------------------------------------------------------------------------------------------
def _wrap(x: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * x))


def fit_phase(
    ground_truth: np.ndarray, recon: np.ndarray, *, plane: bool = False, iterations: int = 5,
) -> tuple[float, tuple[float, float] | None]:
    """Phase correction that best maps ``recon`` onto ``ground_truth``.

    Without ``plane``: the offset ``c = angle(sum(gt * conj(recon)))`` (amplitude-weighted
    circular mean of the phase difference). With ``plane``: ``c + gy*(y - yc) + gx*(x - xc)``
    (rad, rad/px, coordinates relative to the image centre), started from the peak of the
    zero-padded spectrum of ``gt * conj(recon)`` and refined by weighted least squares on the
    wrapped residual. Returns ``(c, (gy, gx) or None)``; apply with :func:`apply_phase`.
    """
    gt = np.asarray(ground_truth, dtype=np.complex128)
    rc = np.asarray(recon, dtype=np.complex128)
    d = gt * np.conj(rc)
    if not plane:
        s = d.sum()
        return (float(np.angle(s)) if abs(s) > 0 else 0.0), None
    h, w = d.shape
    yy, xx = _centred_grid(h, w)
    # coarse ramp from the spectrum peak (4x zero padding)
    pad = (4 * h, 4 * w)
    spec = np.abs(np.fft.fft2(d, s=pad))
    ky, kx = np.unravel_index(int(np.argmax(spec)), spec.shape)
    gy = 2 * np.pi * np.fft.fftfreq(pad[0])[ky]
    gx = 2 * np.pi * np.fft.fftfreq(pad[1])[kx]
    c = float(np.angle(np.sum(d * np.exp(-1j * (gy * yy + gx * xx)))))
    wts = np.sqrt(np.abs(d)).ravel()
    a = np.stack([np.ones(h * w), yy.ravel(), xx.ravel()], axis=1) * wts[:, None]
    phi = np.angle(d)
    for _ in range(iterations):
        res = _wrap(phi - (c + gy * yy + gx * xx)).ravel() * wts
        dc, dgy, dgx = np.linalg.lstsq(a, res, rcond=None)[0]
        c, gy, gx = c + dc, gy + dgy, gx + dgx
        if max(abs(dc), abs(dgy) * h, abs(dgx) * w) < 1e-13:
            break
    return float(_wrap(np.asarray(c))), (float(gy), float(gx))


def _centred_grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    yy = (np.arange(h, dtype=np.float64) - (h - 1) / 2.0)[:, None] * np.ones((1, w))
    xx = (np.arange(w, dtype=np.float64) - (w - 1) / 2.0)[None, :] * np.ones((h, 1))
    return yy, xx


def apply_phase(recon: np.ndarray, offset: float, plane: tuple[float, float] | None = None) -> np.ndarray:
    """``recon * exp(i (offset + gy*(y-yc) + gx*(x-xc)))``."""
    rc = np.asarray(recon, dtype=np.complex128)
    ph = np.full(rc.shape, float(offset))
    if plane is not None:
        yy, xx = _centred_grid(*rc.shape)
        ph = ph + plane[0] * yy + plane[1] * xx
    return rc * np.exp(1j * ph)


def amplitude_scale(gt_amplitude: np.ndarray, recon_amplitude: np.ndarray) -> float:
    """Least-squares factor s minimising ||gt - s * recon||^2 (1.0 for an all-zero recon)."""
    g = np.asarray(gt_amplitude, dtype=np.float64).ravel()
    r = np.asarray(recon_amplitude, dtype=np.float64).ravel()
    den = float(np.dot(r, r))
    return float(np.dot(g, r) / den) if den > 0 else 1.0


# ---------------------------------------------------------------------------------------------
# the whole alignment
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Alignment:
    """A reconstruction aligned to the ground truth on the same pixels.

    ``recon`` is the aligned complex reconstruction (shifted by ``shift`` = (dy, dx) px, rim
    dropped, multiplied by ``amplitude_scale * exp(i phase correction)``); ``ground_truth`` the
    complex ground truth on the same pixels, i.e. object box ``crop_box``.
    """

    recon: np.ndarray
    ground_truth: np.ndarray
    shift: tuple[float, float]
    phase_offset: float
    phase_plane: tuple[float, float] | None
    amplitude_scale: float
    crop_box: Box
    rim: int
    register_on: str

    @property
    def recon_amplitude(self) -> np.ndarray:
        return np.abs(self.recon)

    @property
    def gt_amplitude(self) -> np.ndarray:
        return np.abs(self.ground_truth)

    @property
    def gt_phase(self) -> np.ndarray:
        """Ground-truth phase in (-pi, pi]."""
        return np.angle(self.ground_truth)

    @property
    def recon_phase(self) -> np.ndarray:
        """Aligned recon phase on the ground truth's branch: gt_phase + wrap(recon - gt)."""
        return self.gt_phase + np.angle(self.recon * np.conj(self.ground_truth))

    def to_dict(self) -> dict[str, Any]:
        """The alignment factors (no arrays), JSON-ready."""
        return {
            "shift_yx": list(self.shift), "phase_offset": self.phase_offset,
            "phase_plane_gy_gx": None if self.phase_plane is None else list(self.phase_plane),
            "amplitude_scale": self.amplitude_scale, "crop_box_y0_y1_x0_x1": list(self.crop_box),
            "rim": self.rim, "register_on": self.register_on, "shape": list(self.recon.shape),
        }


def align(
    ground_truth: np.ndarray, recon: np.ndarray, *, box: Box | None = None,
    shift: Sequence[float] | None = None, register: bool = True, register_on: str = "auto",
    upsample_factor: int = 100, rim: int | None = None, phase_plane: bool = False,
    scale_amplitude: bool = True,
) -> Alignment:
    """Align ``recon`` to ``ground_truth`` (two complex arrays of one shape, already cropped to
    the common object box ``box``; default ``(0, H, 0, W)``).

    ``shift`` skips the estimate (a known shift); ``register=False`` means no shift at all.
    ``rim=None`` uses :func:`auto_rim` of this shift. Phase correction and amplitude scale are
    fitted on the rim-cropped pixels.
    """
    gt = np.asarray(ground_truth)
    rc = np.asarray(recon)
    if gt.shape != rc.shape or gt.ndim != 2:
        raise ValueError(f"ground truth {gt.shape} and recon {rc.shape} must be 2-D of one shape")
    h, w = gt.shape
    box = (0, h, 0, w) if box is None else tuple(int(b) for b in box)
    ref_sig, mov_sig, mode = registration_signal(gt, rc, register_on)
    if shift is not None:
        sh = (float(shift[0]), float(shift[1]))
    elif register:
        sh = estimate_shift(ref_sig, mov_sig, upsample_factor=upsample_factor)
    else:
        sh = (0.0, 0.0)
    rim_px = auto_rim([sh]) if rim is None else int(rim)
    if rim_px < 0 or 2 * rim_px >= min(h, w):
        raise ValueError(f"rim of {rim_px} px leaves nothing of a {h}x{w} region")
    moved = fourier_shift_image(rc.astype(np.complex128), sh)
    inner = (slice(rim_px, h - rim_px), slice(rim_px, w - rim_px))
    gt_c = np.asarray(gt[inner], dtype=np.complex128)
    rc_c = moved[inner]
    offset, plane = fit_phase(gt_c, rc_c, plane=phase_plane)
    rc_c = apply_phase(rc_c, offset, plane)
    scale = amplitude_scale(np.abs(gt_c), np.abs(rc_c)) if scale_amplitude else 1.0
    return Alignment(
        recon=rc_c * scale, ground_truth=gt_c, shift=sh, phase_offset=offset, phase_plane=plane,
        amplitude_scale=scale, crop_box=shrink_box(box, rim_px), rim=rim_px, register_on=mode,
    )
