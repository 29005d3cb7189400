"""Stitching against independent oracles: numpy slicing at integer positions, a hand-computed
overlap case, a coordinate-encoding object and an analytic smooth object at sub-pixel positions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ptychopinn.errors import ConfigError
from ptychopinn.inference.stitch import Stitcher, default_crop, stitch


def _slice_patches(obj: np.ndarray, centres: np.ndarray, n: int) -> np.ndarray:
    """Oracle: plain numpy slices obj[c - n//2 : c - n//2 + n] at integer centres."""
    out = []
    for cy, cx in centres.astype(int):
        out.append(obj[cy - n // 2:cy - n // 2 + n, cx - n // 2:cx - n // 2 + n])
    return np.stack(out)


def _oracle_counts(centres: np.ndarray, crop: int, shape: tuple[int, int]) -> np.ndarray:
    cnt = np.zeros(shape, np.int64)
    for cy, cx in centres.astype(int):
        cnt[cy - crop // 2:cy - crop // 2 + crop, cx - crop // 2:cx - crop // 2 + crop] += 1
    return cnt


@pytest.mark.parametrize("n,crop", [(16, 8), (15, 5), (16, 5), (64, 20)])
def test_integer_positions_reproduce_object_exactly(n, crop):
    rng = np.random.default_rng(1)
    size = 3 * n
    obj = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))).astype(np.complex64)
    centres = rng.integers(n // 2, size - n // 2 - 1, size=(60, 2)).astype(np.float64)
    patches = _slice_patches(obj, centres, n)
    st = Stitcher.for_centres(centres, n, crop)
    for i in range(0, 60, 13):  # uneven chunks
        st.add(torch.from_numpy(patches[i:i + 13]), centres[i:i + 13])
    canvas, origin, counts = st.result()
    y0, x0 = origin.astype(int)
    h, w = canvas.shape
    oracle_cnt = _oracle_counts(centres, crop, obj.shape)[y0:y0 + h, x0:x0 + w]
    np.testing.assert_array_equal(counts, oracle_cnt)
    assert oracle_cnt.sum() == 60 * crop * crop  # canvas holds every kept pixel
    covered = counts > 0
    np.testing.assert_array_equal(canvas[covered], obj[y0:y0 + h, x0:x0 + w][covered])
    assert np.all(canvas[~covered] == 0)
    # stitch() (one call) gives the same object and origin
    canvas2, origin2 = stitch(patches, centres, crop)
    np.testing.assert_array_equal(canvas2, canvas)
    np.testing.assert_array_equal(origin2, origin)


def test_overlap_average_hand_computed():
    # N=4, crop=2: kept patch rows/cols 1..2 -> object pixels c-1 .. c
    n, crop = 4, 2
    centres = np.array([[2.0, 2.0], [2.0, 3.0], [3.0, 3.0]])
    vals = np.array([1.0, 3.0, 5.0j])
    patches = np.ones((3, n, n), np.complex64) * vals[:, None, None].astype(np.complex64)
    st = Stitcher.for_centres(centres, n, crop)
    st.add(patches, centres)
    canvas, origin, counts = st.result()
    np.testing.assert_array_equal(origin, [1.0, 1.0])
    np.testing.assert_array_equal(counts, [[1, 2, 1], [1, 3, 2], [0, 1, 1]])
    expected = np.array([
        [1, (1 + 3) / 2, 3],
        [1, (1 + 3 + 5j) / 3, (3 + 5j) / 2],
        [0, 5j, 5j],
    ], dtype=np.complex64)
    np.testing.assert_allclose(canvas, expected, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("subpixel", ["fourier", "round"])
def test_origin_convention(subpixel):
    # object pixel (y, x) holds y + i x: canvas (i, j) must read (origin_y + i) + i (origin_x + j)
    n, crop = 16, 6
    size = 70
    yy, xx = np.mgrid[0:size, 0:size]
    obj = (yy + 1j * xx).astype(np.complex64)
    centres = np.array([[9.0, 40.0], [30.0, 11.0], [55.0, 57.0], [20.0, 20.0]])
    canvas, origin = stitch(_slice_patches(obj, centres, n), centres, crop, subpixel=subpixel)
    np.testing.assert_array_equal(origin, [9 - 3, 11 - 3])  # min centre - crop//2 on each axis
    assert canvas.shape == (55 - 9 + crop, 57 - 11 + crop)
    ii, jj = np.nonzero(canvas)
    np.testing.assert_array_equal(canvas[ii, jj].real, origin[0] + ii)
    np.testing.assert_array_equal(canvas[ii, jj].imag, origin[1] + jj)
    # each patch's own centre pixel is where it should be
    for cy, cx in centres.astype(int):
        assert canvas[cy - int(origin[0]), cx - int(origin[1])] == cy + 1j * cx


def _smooth(y, x):
    return ((1 + 0.3 * np.sin(2 * np.pi * y / 23 + 0.4) * np.cos(2 * np.pi * x / 17))
            * np.exp(1j * 0.8 * np.sin(2 * np.pi * (x + y) / 29)))


def test_subpixel_positions_small_error():
    rng = np.random.default_rng(2)
    n, crop, m = 64, 20, 200
    centres = rng.uniform(40, 160, size=(m, 2))
    k = np.arange(n)
    # oracle: the analytic object evaluated at the patch pixels O(c - N//2 + k)
    ys = centres[:, 0, None] - n // 2 + k
    xs = centres[:, 1, None] - n // 2 + k
    patches = _smooth(ys[:, :, None], xs[:, None, :]).astype(np.complex64)
    errs = {}
    for mode in ("fourier", "round"):
        canvas, origin = stitch(patches, centres, crop, subpixel=mode)
        h, w = canvas.shape
        truth = _smooth(origin[0] + np.arange(h)[:, None], origin[1] + np.arange(w)[None, :])
        cov = canvas != 0
        errs[mode] = np.abs(canvas - truth)[cov]
    assert errs["fourier"].max() < 2e-3
    assert errs["fourier"].mean() < 2e-4
    # rounding misplaces by up to half a pixel: larger, but bounded by 0.5 * sqrt(2) * max|grad O|
    assert errs["round"].mean() > 20 * errs["fourier"].mean()
    assert errs["round"].max() < 0.5 * np.sqrt(2) * 0.6


def test_integer_centres_identical_in_both_modes():
    rng = np.random.default_rng(3)
    n = 32
    patches = (rng.normal(size=(20, n, n)) + 1j * rng.normal(size=(20, n, n))).astype(np.complex64)
    centres = rng.integers(20, 80, size=(20, 2)).astype(np.float64)
    a, oa = stitch(patches, centres, 10, subpixel="fourier")
    b, ob = stitch(patches, centres, 10, subpixel="round")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(oa, ob)


def test_default_crop_and_validation():
    assert default_crop(64) == 20
    assert default_crop(128) == 40
    assert default_crop(32) == 10
    patches = np.zeros((2, 16, 16), np.complex64)
    centres = np.array([[10.0, 10.0], [12.0, 12.0]])
    with pytest.raises(ConfigError):
        stitch(patches, centres, 17)
    with pytest.raises(ConfigError):
        stitch(patches, centres, 0)
    with pytest.raises(ConfigError):
        stitch(patches, centres, 4, subpixel="bilinear")
    with pytest.raises(ConfigError):
        stitch(patches, centres[:1], 4)
