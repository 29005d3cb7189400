"""physics.dose against hand-made arrays (values computed by hand, not by the module's formula)."""

import math

import numpy as np
import pytest

from ptychopinn.physics import dose


def test_mean_total_counts_hand_made():
    # pattern 0: four pixels of amplitude 2 (16 photons); pattern 1: one pixel of amplitude 3 (9 photons)
    x = np.zeros((2, 4, 4), np.float32)
    x[0, :2, :2] = 2.0
    x[1, 3, 3] = 3.0
    assert dose.mean_total_counts(x) == 12.5
    # uint16 counts are cast before squaring (300^2 overflows uint16)
    u = np.full((3, 2, 2), 300, np.uint16)
    assert dose.mean_total_counts(u) == 4 * 90000.0
    # chunking does not change the result
    assert dose.mean_total(np.repeat(x, 5, axis=0), chunk=3) == 12.5


def test_scales_of_a_known_dose():
    # N = 8, every pattern carries 400 photons: r = sqrt(16/400) = 0.2, s = 5, closed form of 1e4 photons = 25
    x = np.zeros((6, 8, 8))
    x[:, 0, 0] = 20.0
    assert dose.input_scale(x) == pytest.approx(0.2, rel=1e-15)
    assert dose.intensity_scale(x) == pytest.approx(5.0, rel=1e-15)
    assert dose.closed_form_scale(1e4, 8) == 25.0
    with pytest.raises(ValueError, match="all zero"):
        dose.input_scale(np.zeros((2, 8, 8)))


def test_dose_scale_hits_the_requested_photons():
    inten = np.array([[[1.0, 3.0]], [[2.0, 2.0]]])  # mean total 4
    s = dose.dose_scale(inten, 100.0)
    assert s == 5.0 and math.isclose(np.mean(np.sum(s * s * inten, axis=(1, 2))), 100.0)
    with pytest.raises(ValueError):
        dose.dose_scale(np.zeros((2, 3, 3)), 10.0)
