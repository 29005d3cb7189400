"""Probes: the default soft-edged disk, resampling and the energy normalisation (a probe read
from an NPZ: :func:`ptychopinn.data.contract.load_probe`).

Normalisation convention: generated probes have peak amplitude 1 (factor recorded as 1.0);
loaded probes are kept as stored unless resampled. The *model* rescales its probe copy so that
sum|P|^2 = (N/2)^2 (see :func:`normalise_probe_energy`) and records that factor in its bundle,
so that predicted amplitudes of an O(1) object match inputs normalised to sum X^2 = (N/2)^2.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from ptychopinn.errors import DataError


def default_probe(n: int, diameter: float | None = None, defocus: float = 0.0) -> np.ndarray:
    """Soft-edged disk probe (N, N) complex128, peak amplitude 1.

    A Gaussian of width ``diameter/2`` is thresholded at its value at radius ``diameter/2``
    (a binary disk), then blurred with a 1-px Gaussian. ``defocus`` adds a quadratic phase
    ``defocus * (r / (diameter/2))^2`` radians.
    """
    diameter = n / 3.0 if diameter is None else float(diameter)
    c = n // 2
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    r2 = (yy - c) ** 2 + (xx - c) ** 2
    radius = diameter / 2.0
    g = np.exp(-r2 / (2 * radius ** 2))
    disk = (g >= math.exp(-0.5)).astype(np.float64)
    amp = ndimage.gaussian_filter(disk, sigma=1.0)
    amp /= amp.max()
    phase = defocus * r2 / radius ** 2
    return (amp * np.exp(1j * phase)).astype(np.complex128)


def resample_probe(probe: np.ndarray, n: int) -> np.ndarray:
    """Resample a complex probe to (n, n) with cubic spline zoom of real and imaginary parts.

    The total energy sum|P|^2 is preserved (pixel size changes, photons do not)."""
    if probe.shape == (n, n):
        return probe.astype(np.complex128)
    zy, zx = n / probe.shape[0], n / probe.shape[1]
    re = ndimage.zoom(probe.real, (zy, zx), order=3)
    im = ndimage.zoom(probe.imag, (zy, zx), order=3)
    out = (re + 1j * im)[:n, :n]
    e0 = float(np.sum(np.abs(probe) ** 2))
    e1 = float(np.sum(np.abs(out) ** 2))
    if e1 > 0:
        out *= math.sqrt(e0 / e1)
    return out.astype(np.complex128)


def normalise_probe_energy(probe: np.ndarray) -> tuple[np.ndarray, float]:
    """Scale the probe so that sum|P|^2 = (N/2)^2; return (probe, factor)."""
    n = probe.shape[-1]
    e = float(np.sum(np.abs(probe) ** 2))
    if e <= 0:
        raise DataError("probe is all zero")
    factor = (n / 2.0) / math.sqrt(e)
    return probe * factor, factor
