"""Metrics against independent oracles: analytic cases, scikit-image, a direct MS-SSIM
reference written from the published formula, and (if installed) pytorch-msssim."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import structural_similarity

from ptychopinn.evaluation import metrics as M


def _smooth(shape, seed, sigma=2.0):
    rng = np.random.default_rng(seed)
    a = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return (a - a.min()) / (a.max() - a.min())


# --- reference MS-SSIM: direct 2-D sliding window, written from Wang et al. (2003) ----------------
def _ref_ssim_terms(x, y, L, sigma=1.5, size=11, k1=0.01, k2=0.03):
    r = np.arange(size) - size // 2
    g2 = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma**2))
    g2 /= g2.sum()
    wx = np.lib.stride_tricks.sliding_window_view(x, (size, size))
    wy = np.lib.stride_tricks.sliding_window_view(y, (size, size))
    mx = np.einsum("ijkl,kl->ij", wx, g2)
    my = np.einsum("ijkl,kl->ij", wy, g2)
    sxx = np.einsum("ijkl,kl->ij", (wx - mx[..., None, None]) ** 2, g2)
    syy = np.einsum("ijkl,kl->ij", (wy - my[..., None, None]) ** 2, g2)
    sxy = np.einsum("ijkl,kl->ij", (wx - mx[..., None, None]) * (wy - my[..., None, None]), g2)
    c1, c2 = (k1 * L) ** 2, (k2 * L) ** 2
    lum = (2 * mx * my + c1) / (mx**2 + my**2 + c1)
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    return float(np.mean(lum * cs)), float(np.mean(cs))


def _ref_ms_ssim(x, y, L, scales, sigma=1.5):
    w = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])[:scales]
    w = w / w.sum()
    val = 1.0
    for j in range(scales):
        s, cs = _ref_ssim_terms(x, y, L, sigma)
        if j == scales - 1:
            val *= max(s, 0) ** w[j]
        else:
            val *= max(cs, 0) ** w[j]
            h, v = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
            x = x[:h, :v].reshape(h // 2, 2, v // 2, 2).mean(axis=(1, 3))
            y = y[:h, :v].reshape(h // 2, 2, v // 2, 2).mean(axis=(1, 3))
    return val


def test_identical_images_are_perfect():
    a = _smooth((96, 80), 0)
    assert M.ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert M.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-12)
    assert M.mae(a, a) == 0.0 and M.mse(a, a) == 0.0
    assert M.psnr(a, a) == math.inf
    assert M.pearson_r(a, a) == pytest.approx(1.0, abs=1e-12)
    for window in ("hann", "none"):
        f, c, _n = M.frc_curve(a, a, window=window)
        assert np.allclose(c, 1.0, atol=1e-12)
        assert f[0] == pytest.approx(1 / 80) and f[-1] == pytest.approx(0.5)
        r = M.frc(a, a, window=window)
        assert not r.frc50_crossed and r.frc50 == pytest.approx(0.5)


def test_frc_of_independent_noise_is_near_zero():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((2, 128, 128))
    for window in ("none", "hann"):
        r = M.frc(a, b, window=window)
        # each ring's FRC is ~ N(0, 1/n_pixels) for independent images
        z = r.frc * np.sqrt(r.n_pixels)
        assert np.all(np.abs(z) < 4.5)
        assert np.sqrt(np.mean(z**2)) < 1.6
        assert abs(np.mean(z)) < 0.5
        assert np.mean(np.abs(r.frc[r.n_pixels >= 200])) < 0.1


@pytest.mark.parametrize("window", ["hann", "none"])
def test_frc50_of_low_pass_pair_falls_at_cutoff(window):
    n, cutoff = 256, 0.2
    rng = np.random.default_rng(5)
    fr = np.hypot(np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :])
    common = np.fft.fft2(rng.standard_normal((n, n)))
    imgs = [np.fft.ifft2(np.where(fr <= cutoff, common, np.fft.fft2(rng.standard_normal((n, n))))).real
            for _ in range(2)]
    r = M.frc(imgs[0], imgs[1], window=window)
    assert r.frc50_crossed
    assert abs(r.frc50 - cutoff) <= 1.0 / n
    assert r.frc50_resolution == pytest.approx(1 / r.frc50)


def test_threshold_crossing_interpolates_linearly():
    f = np.array([0.1, 0.2, 0.3, 0.4])
    c = np.array([1.0, 0.8, 0.4, 0.1])
    assert M.threshold_crossing(f, c, 0.5) == (pytest.approx(0.275), True)
    assert M.threshold_crossing(f, c, 0.05) == (pytest.approx(0.4), False)


def test_psnr_and_ssim_match_scikit_image():
    rng = np.random.default_rng(7)
    for shape in [(64, 64), (70, 53)]:
        a = _smooth(shape, 1) * 1.3 + 0.2
        b = a + 0.05 * rng.standard_normal(shape)
        dr = a.max() - a.min()
        # a constant error c gives MSE c^2: PSNR = 20 log10(range / c), by hand
        assert M.psnr(a, a + 0.05) == pytest.approx(20 * np.log10(dr / 0.05), rel=1e-12)
        assert M.mse(a, b) == pytest.approx(np.mean((b - a) ** 2), rel=1e-12)
        # phases: an error of 2 pi - 0.1 is an error of 0.1
        assert M.mse(a, a + 2 * np.pi - 0.1, phase=True) == pytest.approx(0.01, rel=1e-9)
        ref = structural_similarity(a, b, data_range=dr, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False)
        assert M.ssim(a, b) == pytest.approx(ref, abs=1e-10)
        # the MS-SSIM building block (this package's own SSIM) agrees with scikit-image
        own = M._ssim_and_cs(a, b, dr, M.gaussian_window(11, 1.5), 0.01, 0.03)[0]
        assert own == pytest.approx(ref, abs=1e-10)


def test_legacy255_psnr_reproduces_reference_convention():
    # the reference implementation reported psnr 71.32 dB for amplitude MSE 0.00480 (peak 255)
    assert M.psnr_from_mse(0.00480, 255.0) == pytest.approx(71.32, abs=0.01)
    a = _smooth((32, 32), 2)
    b = a + 0.01
    assert M.psnr(a, b, convention="legacy255") == pytest.approx(10 * np.log10(255**2 / 1e-4))
    with pytest.raises(ValueError):
        M.psnr(a, b, convention="opencv")


def test_ms_ssim_matches_reference_formula_five_scales():
    rng = np.random.default_rng(11)
    a = _smooth((192, 176), 4, sigma=3.0)
    b = ndimage.gaussian_filter(a, 0.8) + 0.03 * rng.standard_normal(a.shape)
    assert M.ms_ssim_n_scales(a.shape) == 5
    ref = _ref_ms_ssim(a, b, a.max() - a.min(), 5)
    assert M.ms_ssim(a, b) == pytest.approx(ref, abs=1e-3)
    assert 0.3 < ref < 0.999  # a non-trivial case
    # MS-SSIM sigma option follows the same formula
    assert M.ms_ssim(a, b, sigma=1.0) == pytest.approx(_ref_ms_ssim(a, b, a.max() - a.min(), 5, 1.0), abs=1e-3)


def test_ms_ssim_small_images_use_fewer_renormalised_scales():
    rng = np.random.default_rng(12)
    a = _smooth((64, 50), 6)
    b = a + 0.05 * rng.standard_normal(a.shape)
    assert M.ms_ssim_n_scales(a.shape) == 3  # 50 -> 25 -> 12 (>= 11), next 6 < 11
    assert M.ms_ssim(a, b) == pytest.approx(_ref_ms_ssim(a, b, a.max() - a.min(), 3), abs=1e-3)
    assert M.ms_ssim_n_scales((10, 40)) == 0
    assert math.isnan(M.ms_ssim(a[:10], b[:10]))


def test_ms_ssim_matches_pytorch_msssim():
    torch = pytest.importorskip("torch")
    pm = pytest.importorskip("pytorch_msssim")
    rng = np.random.default_rng(13)
    a = _smooth((256, 256), 8, sigma=2.5)
    b = a + 0.05 * rng.standard_normal(a.shape)
    t = lambda x: torch.tensor(x, dtype=torch.float64)[None, None]
    ref = float(pm.ms_ssim(t(a), t(b), data_range=float(a.max() - a.min())))
    assert M.ms_ssim(a, b) == pytest.approx(ref, abs=1e-3)


def test_phase_differences_are_wrapped_and_pearson_is_analytic():
    a = np.full((4, 4), 3.1)
    b = np.full((4, 4), -3.1)
    assert M.mae(a, b, phase=True) == pytest.approx(2 * np.pi - 6.2)
    assert M.mae(a, b) == pytest.approx(6.2)
    assert M.wrap_phase(np.array([np.pi, -np.pi, 3 * np.pi]))[0] == pytest.approx(np.pi)
    assert np.all(M.wrap_phase(np.array([-np.pi, 3 * np.pi])) == pytest.approx(np.pi))
    x = _smooth((20, 20), 9)
    assert M.pearson_r(x, 2 * x + 1) == pytest.approx(1.0)
    assert M.pearson_r(x, -x) == pytest.approx(-1.0)
    assert math.isnan(M.pearson_r(np.ones((5, 5)), x[:5, :5]))


def test_component_metrics_flat_phase_uses_2pi_range():
    a = np.zeros((40, 40))
    b = 0.01 * np.random.default_rng(0).standard_normal((40, 40))
    m, _fr, info = M.component_metrics(a, b, phase=True)
    assert info["data_range"] == pytest.approx(2 * np.pi) and info["data_range_source"] == "phase_2pi_fallback"
    assert m["psnr"] == pytest.approx(10 * np.log10((2 * np.pi) ** 2 / np.mean(b * b)))
    assert set(m) == set(M.METRIC_NAMES)
