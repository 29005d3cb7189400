"""Physics core against independent oracles: explicit DFT sums, exact slices, analytic overlap."""

import math

import numpy as np
import pytest
import torch

from ptychopinn.physics.forward import extract_patches, far_field, fourier_shift
from ptychopinn.physics.probe import (
    default_probe,
    normalise_probe_energy,
    resample_probe,
)
from ptychopinn.physics.scan import disc_overlap


def _dft_oracle(psi: np.ndarray) -> np.ndarray:
    """Direct O(N^4) unitary DFT with the zero frequency at index N//2 (no FFT involved)."""
    n = psi.shape[0]
    k = np.arange(n) - n // 2  # frequency index of output row/col
    r = np.arange(n)
    w = np.exp(-2j * np.pi * np.outer(k, r) / n)
    return w @ psi @ w.T / n


@pytest.mark.parametrize("n", [8, 9, 16])
def test_far_field_matches_direct_dft_and_centres_dc(n):
    rng = np.random.default_rng(1)
    psi = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    got = far_field(torch.from_numpy(psi)).numpy()
    np.testing.assert_allclose(got, _dft_oracle(psi), rtol=1e-10, atol=1e-10)
    flat = np.ones((n, n), complex)
    dc = far_field(torch.from_numpy(flat)).numpy()
    assert np.argmax(np.abs(dc)) == (n // 2) * n + n // 2


def test_parseval_noiseless_field():
    rng = np.random.default_rng(2)
    psi = torch.from_numpy(rng.standard_normal((5, 64, 64)) + 1j * rng.standard_normal((5, 64, 64)))
    e_in = psi.abs().square().sum(dim=(-2, -1))
    e_out = far_field(psi).abs().square().sum(dim=(-2, -1))
    assert torch.max(torch.abs(e_out / e_in - 1)) < 1e-6


def test_integer_extraction_equals_slice():
    rng = np.random.default_rng(3)
    obj = rng.standard_normal((50, 60)) + 1j * rng.standard_normal((50, 60))
    n = 16
    centres = np.array([[8, 8], [20, 31], [41, 51], [25.0, 8]])
    got = extract_patches(torch.from_numpy(obj), torch.from_numpy(centres), n).numpy()
    for p, (y, x) in zip(got, centres.astype(int)):
        np.testing.assert_array_equal(p, obj[y - n // 2:y - n // 2 + n, x - n // 2:x - n // 2 + n])


def _bandlimited(n, rng, kmax=0.25):
    f = np.fft.fftfreq(n)
    mask = (np.abs(f)[:, None] < kmax) & (np.abs(f)[None, :] < kmax)
    spec = (rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))) * mask
    return np.fft.ifft2(spec)


def test_half_pixel_shift_round_trip_restores_bandlimited_patch():
    rng = np.random.default_rng(4)
    img = torch.from_numpy(_bandlimited(32, rng))
    fwd = fourier_shift(img, torch.tensor([0.5, 0.5], dtype=torch.float64))
    back = fourier_shift(fwd, torch.tensor([-0.5, -0.5], dtype=torch.float64))
    rel = torch.linalg.norm(back - img) / torch.linalg.norm(img)
    assert rel < 1e-3
    assert torch.linalg.norm(fwd - img) / torch.linalg.norm(img) > 0.05  # it did move


def test_fourier_shift_integer_is_roll_and_sign_convention():
    rng = np.random.default_rng(5)
    img = rng.standard_normal((12, 10))
    got = fourier_shift(torch.from_numpy(img), torch.tensor([2.0, -3.0], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, np.roll(img, (2, -3), axis=(0, 1)), atol=1e-12)


def test_subpixel_extraction_of_smooth_object_matches_analytic_samples():
    # object = smooth analytic function; a patch at a fractional centre must sample it there
    h = w = 64
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    f = lambda y, x: np.exp(1j * (0.2 * y + 0.15 * x)) * (1 + 0.3 * np.cos(0.1 * x))  # noqa: E731
    obj = f(yy, xx)
    n = 16
    c = np.array([[30.3, 25.6]])
    got = extract_patches(torch.from_numpy(obj), torch.from_numpy(c), n).numpy()[0]
    ty, tx = c[0] - n // 2
    iy, ix = np.mgrid[0:n, 0:n].astype(float)
    want = f(ty + iy, tx + ix)
    # Keys cubic convolution: third-order accurate for smooth objects, no edge ringing
    assert np.abs(got - want).max() < 1e-3


def test_disc_overlap_analytic_values():
    d = 10.0
    assert disc_overlap(0.0, d) == pytest.approx(1.0)
    # at d = R: 2/3 - sqrt(3)/(2 pi) = 0.3910
    assert disc_overlap(5.0, d) == pytest.approx(2 / 3 - math.sqrt(3) / (2 * math.pi), abs=1e-12)
    assert disc_overlap(5.0, d) == pytest.approx(0.391, abs=1e-3)
    assert disc_overlap(10.0, d) == 0.0 and disc_overlap(15.0, d) == 0.0
    vals = disc_overlap(np.linspace(0, 10, 50), d)
    assert np.all(np.diff(vals) <= 0)


def test_default_probe_shape_and_disk_size():
    p = default_probe(64)
    assert p.shape == (64, 64) and p.dtype == np.complex128
    assert np.abs(p).max() == pytest.approx(1.0)
    area = np.count_nonzero(np.abs(p) > 0.5)
    assert area == pytest.approx(math.pi * (64 / 6) ** 2, rel=0.15)  # diameter ~ N/3
    assert np.allclose(np.angle(p[np.abs(p) > 0.1]), 0)
    pd = default_probe(64, defocus=1.0)
    assert np.ptp(np.angle(pd[np.abs(pd) > 0.5])) > 0.5


def test_probe_resample_and_energy_normalisation():
    p = default_probe(32)
    r = resample_probe(p, 64)
    assert r.shape == (64, 64)
    assert np.sum(np.abs(r) ** 2) == pytest.approx(np.sum(np.abs(p) ** 2), rel=1e-9)
    q, f = normalise_probe_energy(p)
    assert np.sum(np.abs(q) ** 2) == pytest.approx(16.0 ** 2)
    assert f == pytest.approx(16.0 / np.sqrt(np.sum(np.abs(p) ** 2)))


@pytest.mark.parametrize("n", [16, 15])
def test_diffraction_intensity_equals_centred_far_field(n):
    from ptychopinn.physics.forward import diffraction_intensity

    rng = np.random.default_rng(6)
    probe = torch.from_numpy(rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n)))
    patches = torch.from_numpy(rng.standard_normal((3, n, n)) + 1j * rng.standard_normal((3, n, n)))
    want = np.abs(np.stack([_dft_oracle(probe.numpy() * p) for p in patches.numpy()])) ** 2
    np.testing.assert_allclose(diffraction_intensity(probe, patches).numpy(), want, rtol=1e-9, atol=1e-12)
