"""Hand-off to pty-chi: a reconstruction placed on pty-chi's object buffer by its origin."""

from __future__ import annotations

import numpy as np
import pytest

from ptychopinn.errors import DataError
from ptychopinn.iterative.ptychi_runner import PtychiGeometry, load_init_probe, place_object


def test_place_object_puts_each_pixel_at_its_object_coordinate() -> None:
    geom = PtychiGeometry(canvas_shape=(40, 40), canvas_origin=(0, 0), margin=2, n=16)
    assert geom.buffer_top_left == (-2, -2)
    src = (np.arange(30).reshape(5, 6) + 1).astype(np.complex64) * np.exp(0.3j)
    out = place_object((src, (10.0, 12.0)), geom)
    # buffer pixel (i, j) is object pixel (i - 2, j - 2): object (10, 12) -> buffer (12, 14)
    np.testing.assert_allclose(out[12:17, 14:20], src.astype(np.complex64), rtol=1e-6)
    rest = np.ones(out.shape, bool)
    rest[12:17, 14:20] = False
    np.testing.assert_allclose(out[rest], src.mean(), rtol=1e-6)


def test_place_object_fills_unscanned_pixels_and_refuses_disjoint_or_empty_input() -> None:
    geom = PtychiGeometry(canvas_shape=(20, 20), canvas_origin=(0, 0), margin=2, n=8)
    src = np.full((4, 4), 2.0, np.complex64)
    src[0, 0] = np.nan
    src[1, 1] = 0
    out = place_object((src, (0.0, 0.0)), geom)
    assert out[2, 2] == 2.0 and out[3, 3] == 2.0 and np.isfinite(out).all()
    with pytest.raises(DataError, match="does not overlap"):
        place_object((src, (500.0, 500.0)), geom)
    with pytest.raises(DataError, match="no finite"):
        place_object((np.zeros((4, 4), np.complex64), (0.0, 0.0)), geom)


def test_load_init_probe_takes_the_first_mode_and_checks_the_size(tmp_path) -> None:
    p = (np.random.default_rng(0).normal(size=(2, 8, 8)) + 0j).astype(np.complex64)
    np.savez(tmp_path / "p.npz", reconstructed_probe=p[None])
    np.testing.assert_array_equal(load_init_probe(tmp_path / "p.npz", 8), p[0])
    with pytest.raises(DataError, match="reconstructed_probe"):
        load_init_probe(tmp_path / "p.npz", 16)
