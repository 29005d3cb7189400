"""Synthetic objects (complex transmission; an object read from an NPZ:
:func:`ptychopinn.data.contract.load_object`). Every random choice takes a
seed or generator; nothing is hard-coded."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def _rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _map_range(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    a = a - a.min()
    m = a.max()
    return np.full_like(a, (lo + hi) / 2) if m == 0 else lo + (hi - lo) * a / m


def lines_object(
    size: int, seed: int | np.random.Generator | None, n_lines: int | None = None,
    amp_range: tuple[float, float] = (0.5, 1.5), phase_scale: float = 0.5,
) -> np.ndarray:
    """Random 1-px lines drawn on a 2x canvas, blurred g(1)+2g(5)+5g(10), centre-cropped.

    Amplitude is mapped to ``amp_range``; the phase is derived from the same pattern
    (``phase_scale`` radians across the range; 0 gives a pure amplitude object).
    """
    rng = _rng(seed)
    big = 2 * size
    n_lines = n_lines if n_lines is not None else max(8, int(round(0.4 * size)))
    canvas = np.zeros((big, big), dtype=np.float64)
    # each line: random point and direction, drawn across the canvas with sub-sampled steps
    p0 = rng.uniform(0, big, size=(n_lines, 2))
    ang = rng.uniform(0, math.pi, size=n_lines)
    length = rng.uniform(0.2, 1.0, size=n_lines) * big
    t = np.linspace(-0.5, 0.5, 2 * big)[None, :]
    ys = p0[:, 0:1] + np.sin(ang)[:, None] * length[:, None] * t
    xs = p0[:, 1:2] + np.cos(ang)[:, None] * length[:, None] * t
    ok = (ys >= 0) & (ys < big) & (xs >= 0) & (xs < big)
    canvas[ys[ok].astype(int), xs[ok].astype(int)] = 1.0
    blurred = (ndimage.gaussian_filter(canvas, 1) + 2 * ndimage.gaussian_filter(canvas, 5)
               + 5 * ndimage.gaussian_filter(canvas, 10))
    c0 = (big - size) // 2
    crop = blurred[c0:c0 + size, c0:c0 + size]
    amp = _map_range(crop, *amp_range)
    phase = phase_scale * (amp - amp_range[0]) / max(amp_range[1] - amp_range[0], 1e-12)
    phase -= phase.mean() if phase_scale else 0.0
    return amp * np.exp(1j * phase)


def grf_object(
    size: int, seed: int | np.random.Generator | None, power: float = 3.0,
    amp_range: tuple[float, float] = (0.5, 1.0), phase_range: float = 1.0,
) -> np.ndarray:
    """Gaussian random field with power spectrum ~ 1/|k|^power; independent amplitude and phase fields."""
    rng = _rng(seed)
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    k = np.sqrt(fy ** 2 + fx ** 2)
    k[0, 0] = np.inf
    filt = k ** (-power / 2.0)

    def field() -> np.ndarray:
        noise = rng.standard_normal((size, size))
        return np.real(np.fft.ifft2(np.fft.fft2(noise) * filt))

    amp = _map_range(field(), *amp_range)
    ph = _map_range(field(), -phase_range / 2, phase_range / 2)
    return amp * np.exp(1j * ph)


def siemens_object(
    size: int, n_spokes: int = 36, amp_range: tuple[float, float] = (0.5, 1.0),
    phase_contrast: float = 0.5,
) -> np.ndarray:
    """Siemens star (binary angular spokes, anti-aliased by 4x supersampling) for resolution tests."""
    ss = 4
    c = (size * ss - 1) / 2.0
    yy, xx = np.mgrid[0:size * ss, 0:size * ss].astype(np.float64)
    theta = np.arctan2(yy - c, xx - c)
    r = np.hypot(yy - c, xx - c) / ss
    star = ((np.sin(n_spokes / 2.0 * theta) > 0) & (r < 0.48 * size)).astype(np.float64)
    star = star.reshape(size, ss, size, ss).mean(axis=(1, 3))
    amp = amp_range[0] + (amp_range[1] - amp_range[0]) * star
    return amp * np.exp(1j * phase_contrast * star)


def make_object(kind: str, size: int, seed: int | np.random.Generator | None) -> np.ndarray:
    """Dispatch on ``kind`` in {'lines', 'grf', 'siemens'}."""
    if kind == "lines":
        return lines_object(size, seed)
    if kind == "grf":
        return grf_object(size, seed)
    if kind == "siemens":
        return siemens_object(size)
    raise ValueError(f"unknown object kind {kind!r} (lines, grf, siemens)")
