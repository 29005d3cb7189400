"""Image-quality metrics for reconstructions against ground truth (DESIGN section 7).

Conventions (see docs/evaluation.md):

* every function takes ``(reference, image)``; the reference (ground truth) sets the data range;
* PSNR peak = ground-truth data range (``convention="range"``); ``"legacy255"`` reproduces the
  reference implementation's OpenCV-style peak of 255 on O(1) data (inflated by ~48 dB);
* SSIM: Wang et al. (2004) with an 11-tap Gaussian window (sigma 1.5), K1 = 0.01, K2 = 0.03,
  population covariances, mean over the "valid" region (identical to scikit-image with
  ``gaussian_weights=True, use_sample_covariance=False``);
* MS-SSIM: Wang, Simoncelli & Bovik (2003), weights :data:`MS_SSIM_WEIGHTS`, 2x2 average-pool
  downsampling; images too small for five scales use fewer scales with renormalised weights;
* FRC: rings of width 1/min(H, W) cycles/pixel, threshold crossings by linear interpolation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from skimage.metrics import (
    mean_squared_error,
    peak_signal_noise_ratio,
    structural_similarity,
)

#: Wang et al. (2003) scale weights, finest scale first
MS_SSIM_WEIGHTS: tuple[float, ...] = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: accepted PSNR conventions
PSNR_CONVENTIONS: tuple[str, ...] = ("range", "legacy255")
#: accepted FRC windows
FRC_WINDOWS: tuple[str, ...] = ("hann", "none")
#: the FRC 1/7 threshold
FRC_1_7 = 1.0 / 7.0


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _pair(reference: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(image, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: reference {a.shape} vs image {b.shape}")
    return a, b


def wrap_phase(x: np.ndarray | float) -> np.ndarray:
    """Wrap angles to (-pi, pi]."""
    w = np.mod(np.asarray(x, dtype=np.float64) + np.pi, 2 * np.pi) - np.pi
    return np.where(w <= -np.pi, np.pi, w)


def value_range(reference: np.ndarray) -> float:
    """max - min of the reference."""
    a = np.asarray(reference, dtype=np.float64)
    return float(a.max() - a.min())


# ---------------------------------------------------------------------------------------------
# pixel-wise metrics
# ---------------------------------------------------------------------------------------------
def mae(reference: np.ndarray, image: np.ndarray, *, phase: bool = False) -> float:
    """Mean absolute error; ``phase=True`` wraps differences to (-pi, pi] first."""
    a, b = _pair(reference, image)
    d = wrap_phase(b - a) if phase else b - a
    return float(np.mean(np.abs(d)))


def _wrapped(reference: np.ndarray, image: np.ndarray, phase: bool) -> tuple[np.ndarray, np.ndarray]:
    """(reference, image), the image moved by whole turns to within pi of the reference for phases."""
    a, b = _pair(reference, image)
    return a, (a + wrap_phase(b - a)) if phase else b


def mse(reference: np.ndarray, image: np.ndarray, *, phase: bool = False) -> float:
    """Mean squared error (scikit-image); ``phase=True`` wraps differences to (-pi, pi] first."""
    return float(mean_squared_error(*_wrapped(reference, image, phase)))


def psnr_from_mse(mse_value: float, peak: float) -> float:
    """10 log10(peak^2 / MSE) in dB (inf for MSE = 0)."""
    if mse_value <= 0:
        return math.inf
    return float(10.0 * np.log10(peak * peak / mse_value))


def psnr(
    reference: np.ndarray, image: np.ndarray, *, data_range: float | None = None,
    convention: str = "range", phase: bool = False,
) -> float:
    """Peak signal-to-noise ratio in dB (scikit-image; inf for identical images).

    ``convention="range"``: peak = ``data_range`` (default: max - min of the reference).
    ``convention="legacy255"``: peak = 255 regardless of the data (reference implementation).
    """
    if convention not in PSNR_CONVENTIONS:
        raise ValueError(f"unknown PSNR convention {convention!r}; choose from {PSNR_CONVENTIONS}")
    a, b = _wrapped(reference, image, phase)
    peak = 255.0 if convention == "legacy255" else value_range(a) if data_range is None else float(data_range)
    if peak <= 0:
        raise ValueError("PSNR needs a positive data range (the reference is constant)")
    if not np.any(a != b):
        return math.inf
    return float(peak_signal_noise_ratio(a, b, data_range=peak))


def pearson_r(reference: np.ndarray, image: np.ndarray) -> float:
    """Pearson correlation coefficient of the pixel values (NaN if either is constant)."""
    a, b = _pair(reference, image)
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    den = math.sqrt(float(np.dot(a, a)) * float(np.dot(b, b)))
    if den == 0.0:
        return math.nan
    return float(np.dot(a, b) / den)


# ---------------------------------------------------------------------------------------------
# SSIM / MS-SSIM
# ---------------------------------------------------------------------------------------------
def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian of ``size`` taps centred on the middle tap."""
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(r * r) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable correlation with ``g`` along both axes, keeping the 'valid' part only."""
    y = np.lib.stride_tricks.sliding_window_view(x, g.size, axis=0) @ g
    return np.lib.stride_tricks.sliding_window_view(y, g.size, axis=1) @ g


def _ssim_and_cs(
    a: np.ndarray, b: np.ndarray, peak: float, g: np.ndarray, k1: float, k2: float,
) -> tuple[float, float]:
    """Mean SSIM and mean contrast-structure term over the valid region."""
    c1 = (k1 * peak) ** 2
    c2 = (k2 * peak) ** 2
    mu_a = _filter_valid(a, g)
    mu_b = _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a * mu_a
    var_b = _filter_valid(b * b, g) - mu_b * mu_b
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    cs_map = (2.0 * cov + c2) / (var_a + var_b + c2)
    lum = (2.0 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1)
    return float(np.mean(lum * cs_map)), float(np.mean(cs_map))


def _peak(reference: np.ndarray, given: float | None) -> float:
    peak = value_range(reference) if given is None else float(given)
    if not peak > 0:
        raise ValueError("SSIM needs a positive data range (the reference is constant)")
    return peak


def ssim(
    reference: np.ndarray, image: np.ndarray, *, data_range: float | None = None,
    win_size: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
) -> float:
    """Mean structural similarity (Wang et al. 2004), Gaussian window, valid region.

    scikit-image's ``structural_similarity`` (Gaussian weights, population covariance) when its
    window (2 round(3.5 sigma) + 1 taps) is ``win_size`` (the default 11 with sigma 1.5); this
    module's implementation (the MS-SSIM building block) otherwise. NaN when the image is
    smaller than the window.
    """
    a, b = _pair(reference, image)
    if a.ndim != 2:
        raise ValueError(f"SSIM needs 2-D images; got shape {a.shape}")
    if min(a.shape) < win_size:
        return math.nan
    peak = _peak(a, data_range)
    if 2 * int(3.5 * sigma + 0.5) + 1 == win_size:
        return float(structural_similarity(a, b, data_range=peak, gaussian_weights=True, sigma=sigma,
                                           use_sample_covariance=False, K1=k1, K2=k2))
    return _ssim_and_cs(a, b, peak, gaussian_window(win_size, sigma), k1, k2)[0]


def ms_ssim_n_scales(shape: tuple[int, ...], win_size: int = 11, max_scales: int = 5) -> int:
    """Number of MS-SSIM scales for an image: the largest M <= ``max_scales`` with
    min(H, W) // 2**(M-1) >= ``win_size`` (0 if even the full-resolution image is too small)."""
    side = int(min(shape))
    m = 0
    while m < max_scales and side // (2 ** m) >= win_size:
        m += 1
    return m


def _avg_pool2(x: np.ndarray) -> np.ndarray:
    """2x2 average pooling (a trailing odd row/column is dropped)."""
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    x = x[:h, :w]
    return 0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2])


def ms_ssim(
    reference: np.ndarray, image: np.ndarray, *, data_range: float | None = None,
    win_size: int = 11, sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03,
    weights: tuple[float, ...] = MS_SSIM_WEIGHTS,
) -> float:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003).

    MS-SSIM = prod_{j<M} cs_j^{w_j} * ssim_M^{w_M}, where cs_j is the mean contrast-structure
    term at scale j, ssim_M the mean SSIM at the coarsest scale, scales made by 2x2 average
    pooling. Negative terms are clipped to 0 (as in common implementations). When the image is
    too small for ``len(weights)`` scales (see :func:`ms_ssim_n_scales`) the first M weights are
    used, renormalised to sum 1. Returns NaN when the image is smaller than the window.
    """
    a, b = _pair(reference, image)
    if a.ndim != 2:
        raise ValueError(f"MS-SSIM needs 2-D images; got shape {a.shape}")
    n = ms_ssim_n_scales(a.shape, win_size, len(weights))
    if n == 0:
        return math.nan
    w = np.asarray(weights[:n], dtype=np.float64)
    w = w / w.sum()
    peak = _peak(a, data_range)
    g = gaussian_window(win_size, sigma)
    result = 1.0
    for j in range(n):
        s, cs = _ssim_and_cs(a, b, peak, g, k1, k2)
        if j == n - 1:
            result *= max(s, 0.0) ** w[j]
        else:
            result *= max(cs, 0.0) ** w[j]
            a, b = _avg_pool2(a), _avg_pool2(b)
    return float(result)


# ---------------------------------------------------------------------------------------------
# Fourier ring correlation
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FRCResult:
    """An FRC curve. ``frequency`` in cycles/pixel (ring k of an image with short side n is
    centred at k/n); ``n_pixels`` counts Fourier pixels per ring. Crossings are in cycles/pixel;
    ``*_crossed`` is False when the curve never drops below the threshold (the value is then
    the highest frequency, i.e. a lower bound)."""

    frequency: np.ndarray
    frc: np.ndarray
    n_pixels: np.ndarray
    frc50: float
    frc50_crossed: bool
    frc_1_7: float
    frc_1_7_crossed: bool
    window: str = "hann"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def frc50_resolution(self) -> float:
        """Resolution (pixels per cycle) at the FRC 0.5 crossing."""
        return 1.0 / self.frc50 if self.frc50 > 0 else math.inf

    @property
    def frc_1_7_resolution(self) -> float:
        """Resolution (pixels per cycle) at the FRC 1/7 crossing."""
        return 1.0 / self.frc_1_7 if self.frc_1_7 > 0 else math.inf


def threshold_crossing(frequency: np.ndarray, curve: np.ndarray, threshold: float) -> tuple[float, bool]:
    """First frequency where ``curve`` drops below ``threshold``, linearly interpolated between
    the two rings around the drop. NaN rings are skipped. If the first ring is already below,
    its frequency is returned; if the curve never drops, the last frequency (and False)."""
    f = np.asarray(frequency, dtype=np.float64)
    c = np.asarray(curve, dtype=np.float64)
    ok = np.isfinite(c)
    f, c = f[ok], c[ok]
    if f.size == 0:
        return math.nan, False
    below = np.flatnonzero(c < threshold)
    if below.size == 0:
        return float(f[-1]), False
    k = int(below[0])
    if k == 0:
        return float(f[0]), True
    c0, c1 = c[k - 1], c[k]
    t = (c0 - threshold) / (c0 - c1)
    return float(f[k - 1] + t * (f[k] - f[k - 1])), True


def frc_curve(
    reference: np.ndarray, image: np.ndarray, *, window: str = "hann",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, frc, n_pixels) for rings k = 1 .. min(H, W)//2.

    Both images have their mean removed and, with ``window="hann"``, are multiplied by a 2-D Hann
    window (suppresses edge artefacts of non-periodic crops). FRC_k = Re sum F1 F2* /
    sqrt(sum |F1|^2 sum |F2|^2) over ring k (NaN where a ring has zero power).
    """
    a, b = _pair(reference, image)
    if a.ndim != 2:
        raise ValueError(f"FRC needs 2-D images; got shape {a.shape}")
    if window not in FRC_WINDOWS:
        raise ValueError(f"unknown FRC window {window!r}; choose from {FRC_WINDOWS}")
    h, w = a.shape
    a = a - a.mean()
    b = b - b.mean()
    if window == "hann":
        win = np.outer(np.hanning(h), np.hanning(w))
        a, b = a * win, b * win
    fa, fb = np.fft.fft2(a), np.fft.fft2(b)
    n = min(h, w)
    fr = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    ring = np.rint(fr * n).astype(np.int64).ravel()
    nk = n // 2 + 1
    keep = ring < nk
    ring = ring[keep]
    num = np.bincount(ring, (fa * np.conj(fb)).real.ravel()[keep], minlength=nk)
    pa = np.bincount(ring, (np.abs(fa) ** 2).ravel()[keep], minlength=nk)
    pb = np.bincount(ring, (np.abs(fb) ** 2).ravel()[keep], minlength=nk)
    cnt = np.bincount(ring, minlength=nk)
    den = np.sqrt(pa * pb)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    k = np.arange(1, nk)
    return k / n, curve[1:], cnt[1:]


def frc(reference: np.ndarray, image: np.ndarray, *, window: str = "hann") -> FRCResult:
    """FRC curve plus FRC 0.5 and FRC 1/7 crossings (cycles/pixel, sub-ring interpolation)."""
    f, c, cnt = frc_curve(reference, image, window=window)
    f50, c50 = threshold_crossing(f, c, 0.5)
    f17, c17 = threshold_crossing(f, c, FRC_1_7)
    return FRCResult(frequency=f, frc=c, n_pixels=cnt, frc50=f50, frc50_crossed=c50,
                     frc_1_7=f17, frc_1_7_crossed=c17, window=window)


# ---------------------------------------------------------------------------------------------
# one component (amplitude or phase) at once
# ---------------------------------------------------------------------------------------------
#: metric names in output order (``psnr`` is renamed ``psnr_legacy255`` under that convention)
METRIC_NAMES: tuple[str, ...] = (
    "mae", "mse", "psnr", "ssim", "ms_ssim", "frc50", "frc50_resolution", "frc_1_7",
    "frc_1_7_resolution", "pearson_r",
)


def metric_names(psnr_convention: str = "range") -> tuple[str, ...]:
    """Metric row names for a PSNR convention."""
    if psnr_convention == "range":
        return METRIC_NAMES
    return tuple("psnr_" + psnr_convention if m == "psnr" else m for m in METRIC_NAMES)


def component_data_range(reference: np.ndarray, *, phase: bool) -> tuple[float, str]:
    """Data range used for PSNR/SSIM/MS-SSIM and where it came from.

    Normally max - min of the reference ("ground_truth_range"). A (near-)constant reference
    (e.g. the zero phase of an amplitude-only object) falls back to 2*pi for phase
    ("phase_2pi_fallback") and to max|reference| (or 1) for amplitude ("amplitude_max_fallback").
    """
    a = np.asarray(reference, dtype=np.float64)
    r = float(a.max() - a.min())
    scale = max(1.0, float(np.max(np.abs(a))))
    if r > 1e-9 * scale:
        return r, "ground_truth_range"
    if phase:
        return 2.0 * math.pi, "phase_2pi_fallback"
    m = float(np.max(np.abs(a)))
    return (m if m > 0 else 1.0), "amplitude_max_fallback"


def component_metrics(
    reference: np.ndarray, image: np.ndarray, *, phase: bool = False,
    psnr_convention: str = "range", ms_ssim_sigma: float = 1.5, frc_window: str = "hann",
    data_range: float | None = None,
) -> tuple[dict[str, float], FRCResult, dict[str, Any]]:
    """All metrics for one component. Returns (metrics, FRC result, info) where info records the
    data range, its source and the number of MS-SSIM scales. For ``phase=True`` MAE/MSE/PSNR use
    differences wrapped to (-pi, pi]."""
    a, b = _pair(reference, image)
    if data_range is None:
        rng, src = component_data_range(a, phase=phase)
    else:
        rng, src = float(data_range), "given"
    if psnr_convention not in PSNR_CONVENTIONS:
        raise ValueError(f"unknown PSNR convention {psnr_convention!r}; choose from {PSNR_CONVENTIONS}")
    m = mse(a, b, phase=phase)
    peak = 255.0 if psnr_convention == "legacy255" else rng
    fr = frc(a, b, window=frc_window)
    names = metric_names(psnr_convention)
    values = [
        mae(a, b, phase=phase), m, psnr_from_mse(m, peak), ssim(a, b, data_range=rng),
        ms_ssim(a, b, data_range=rng, sigma=ms_ssim_sigma), fr.frc50, fr.frc50_resolution,
        fr.frc_1_7, fr.frc_1_7_resolution, pearson_r(a, b),
    ]
    info = {
        "data_range": rng, "data_range_source": src, "psnr_peak": peak,
        "ms_ssim_scales": ms_ssim_n_scales(a.shape), "frc50_crossed": fr.frc50_crossed,
        "frc_1_7_crossed": fr.frc_1_7_crossed,
    }
    return dict(zip(names, values)), fr, info
