"""Alignment against exact constructions: known sub-pixel shifts, offsets, planes and scales."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ptychopinn.evaluation import align as A


def _object(n=160, seed=0):
    """Smooth periodic complex object: amplitude 1 +- 0.15, phase +- 0.8 rad (std)."""
    rng = np.random.default_rng(seed)
    amp = 1.0 + 0.15 * ndimage.gaussian_filter(rng.standard_normal((n, n)), 2.0, mode="wrap") / 0.15
    ph = 0.8 * ndimage.gaussian_filter(rng.standard_normal((n, n)), 3.0, mode="wrap") / 0.094
    return amp * np.exp(1j * ph)


def _shifted_crop(obj, shift, box):
    """Crop of the object translated by ``shift`` (exact band-limited translation of the big
    object, then a non-periodic crop)."""
    f = np.fft.fft2(obj)
    ky = np.fft.fftfreq(obj.shape[0])[:, None]
    kx = np.fft.fftfreq(obj.shape[1])[None, :]
    moved = np.fft.ifft2(f * np.exp(-2j * np.pi * (ky * shift[0] + kx * shift[1])))
    y0, y1, x0, x1 = box
    return moved[y0:y1, x0:x1]


@pytest.mark.parametrize("register_on", ["amplitude", "complex"])
def test_registration_recovers_known_subpixel_shift(register_on):
    obj = _object()
    box = (40, 120, 36, 116)
    gt = obj[box[0]:box[1], box[2]:box[3]]
    # recon = object displaced by (2.3, -1.7) px, scaled and with a phase offset
    rc = _shifted_crop(obj, (2.3, -1.7), box) * 0.6 * np.exp(1j * 0.9)
    al = A.align(gt, rc, box=box, register_on=register_on)
    # registering means shifting the recon back by (-2.3, +1.7)
    assert al.shift[0] == pytest.approx(-2.3, abs=0.05)
    assert al.shift[1] == pytest.approx(1.7, abs=0.05)
    assert al.rim == 5
    assert al.recon.shape == (70, 70) and al.crop_box == (45, 115, 41, 111)
    assert al.amplitude_scale == pytest.approx(1 / 0.6, rel=0.02)
    assert al.phase_offset == pytest.approx(-0.9, abs=0.02)


def test_estimate_shift_sign_matches_fourier_shift_image():
    obj = _object(96, seed=1)
    moved = A.fourier_shift_image(obj, (2.3, -1.7))  # periodic: exact
    s = A.estimate_shift(np.abs(obj), np.abs(moved))
    assert s == (pytest.approx(-2.3, abs=0.01), pytest.approx(1.7, abs=0.01))
    back = A.fourier_shift_image(moved, s)
    assert np.max(np.abs(back - obj)) < 0.05


def test_fourier_shift_integer_equals_roll():
    a = _object(32, seed=2)
    assert np.allclose(A.fourier_shift_image(a, (3, -5)), np.roll(a, (3, -5), axis=(0, 1)), atol=1e-10)
    r = np.abs(a)
    out = A.fourier_shift_image(r, (1, 2))
    assert not np.iscomplexobj(out) and np.allclose(out, np.roll(r, (1, 2), axis=(0, 1)))


def test_constant_phase_offset_and_amplitude_scale_removed_exactly():
    gt = _object(64, seed=3)
    rc = gt * 0.37 * np.exp(-1j * 2.5)
    al = A.align(gt, rc, register=False)
    assert al.shift == (0.0, 0.0) and al.rim == 0
    assert al.phase_offset == pytest.approx(2.5, abs=1e-12)
    assert al.amplitude_scale == pytest.approx(1 / 0.37, rel=1e-12)
    assert np.allclose(al.recon, gt, atol=1e-12)
    assert np.allclose(al.recon_phase, al.gt_phase, atol=1e-12)
    # an offset that wraps around pi is still removed exactly
    al2 = A.align(gt, gt * np.exp(1j * 3.0), register=False, scale_amplitude=False)
    assert al2.phase_offset == pytest.approx(-3.0, abs=1e-12) and al2.amplitude_scale == 1.0
    assert np.allclose(al2.recon_phase, np.angle(gt), atol=1e-12)


def test_phase_plane_removed_exactly():
    gt = _object(64, seed=4)
    yy, xx = np.mgrid[0:64, 0:64].astype(float)
    ramp = 0.3 + 0.21 * yy - 0.13 * xx  # wraps several times across the image
    rc = gt * np.exp(1j * ramp)
    al = A.align(gt, rc, register=False, phase_plane=True)
    assert al.phase_plane == (pytest.approx(-0.21, abs=1e-10), pytest.approx(0.13, abs=1e-10))
    assert np.allclose(al.recon, gt, atol=1e-9)
    # without the plane option only the constant part is fitted and residual error remains
    al0 = A.align(gt, rc, register=False)
    assert al0.phase_plane is None and np.max(np.abs(al0.recon - gt)) > 0.5


def test_boxes_and_canvas_crop():
    assert A.scanned_region(np.array([20.0, 40.4]), np.array([10.6, 30.0]), (64, 64)) == (20, 42, 10, 31)
    assert A.scanned_region(np.array([-3.0, 70.0]), np.array([5.0, 6.0]), (64, 64)) == (0, 64, 5, 7)
    obj = np.arange(64 * 64).reshape(64, 64)
    canvas = obj[10:50, 5:45]
    assert A.canvas_box((10.0, 5.0), canvas.shape) == (10, 50, 5, 45)
    box = A.intersect_boxes((20, 42, 10, 31), A.canvas_box((10.0, 5.0), canvas.shape))
    assert np.array_equal(A.crop_canvas(canvas, (10.0, 5.0), box), obj[20:42, 10:31])
    with pytest.raises(ValueError):
        A.intersect_boxes((0, 10, 0, 10), (20, 30, 0, 10))
    assert A.auto_rim([(0.0, 0.0)]) == 0 and A.auto_rim([(0.2, -2.3), (1.0, 0.0)]) == 5


def test_rim_too_large_raises():
    gt = _object(16, seed=5)
    with pytest.raises(ValueError):
        A.align(gt, gt, rim=8)
