"""Dose and intensity scale (DESIGN section 2): the one home of "mean over patterns of sum X^2".

Diffraction is stored as amplitudes X = sqrt(counts), so the dose of a file (mean photons per
pattern) is ``mean_patterns sum_xy X^2``. From it follow the input normalisation
``r = sqrt((N/2)^2 / dose)`` that brings network inputs to O(1), the intensity scale ``s = 1/r``
(= sqrt(dose)/(N/2)) and, for the nominal dose nphotons, the closed form ``sqrt(nphotons)/(N/2)``.
The simulator scales noiseless intensities I by :func:`dose_scale` so that the mean total
expected counts equal nphotons.
"""

from __future__ import annotations

import math

import numpy as np

CHUNK = 4096  # patterns per float64 chunk (bounded memory for large scans)


def mean_total(a: np.ndarray, *, squared: bool = True, chunk: int = CHUNK) -> float:
    """Mean over patterns (axis 0) of the sum over each pattern of ``a^2`` (``squared``, for
    amplitudes) or of ``a`` (for intensities), accumulated in float64 chunk by chunk."""
    a = np.asarray(a)
    m = a.shape[0]
    if m == 0:
        raise ValueError("no diffraction patterns")
    if not squared:  # per-pattern sums, then their mean
        return float(np.concatenate([a[i:i + chunk].reshape(min(chunk, m - i), -1).sum(axis=1, dtype=np.float64)
                                     for i in range(0, m, chunk)]).mean())
    total = 0.0
    for i in range(0, m, chunk):
        c = a[i:i + chunk].astype(np.float64).reshape(min(chunk, m - i), -1)
        total += float(np.einsum("mi,mi->", c, c))
    return total / m


def mean_total_counts(diff3d: np.ndarray) -> float:
    """The measured dose of amplitudes X: mean over patterns of sum(X^2) (photons per pattern)."""
    return mean_total(diff3d)


def input_scale(diff3d: np.ndarray) -> float:
    """r = sqrt((N/2)^2 / mean_patterns sum X^2): the factor that brings amplitudes to O(1).
    ValueError when the patterns are all zero or not finite."""
    mt = mean_total_counts(diff3d)
    if not (mt > 0 and math.isfinite(mt)):
        raise ValueError("diffraction patterns are all zero (or not finite); cannot normalise")
    return math.sqrt((np.asarray(diff3d).shape[-1] / 2.0) ** 2 / mt)


def intensity_scale(diff3d: np.ndarray) -> float:
    """s = 1/r = sqrt(mean_patterns sum X^2) / (N/2), the data-derived intensity scale."""
    return 1.0 / input_scale(diff3d)


def closed_form_scale(nphotons: float, n: int) -> float:
    """sqrt(nphotons) / (N/2): the intensity scale of the nominal dose."""
    return math.sqrt(float(nphotons)) / (n / 2.0)


def dose_scale(intensities: np.ndarray, nphotons: float) -> float:
    """Scalar s with mean over patterns of sum(s^2 I) == nphotons for noiseless intensities I.
    ValueError when the intensities are all zero."""
    mt = mean_total(intensities, squared=False)
    if not mt > 0:
        raise ValueError("noiseless intensities are all zero; cannot scale to a dose")
    return math.sqrt(float(nphotons) / mt)
