"""Physics layers against independent oracles: numpy slicing / analytic objects (round trip),
numpy FFTs (forward model), constant patches (merge normalisation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ptychopinn.data.grouping import make_groups
from ptychopinn.model import build_model
from ptychopinn.model import physics_layers as ph
from ptychopinn.model.config import ModelConfig
from ptychopinn.physics.forward import extract_patches
from ptychopinn.physics.probe import default_probe


def _analytic(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A smooth complex object that can be evaluated exactly at sub-pixel coordinates."""
    amp = 1 + 0.3 * np.sin(2 * np.pi * (y / 23 + x / 31)) + 0.2 * np.cos(2 * np.pi * (x / 17 - y / 29))
    return amp * np.exp(1j * 0.4 * np.sin(2 * np.pi * x / 19 + 0.3))


def _exact_patches(centres: np.ndarray, n: int) -> torch.Tensor:
    q = np.arange(n)
    y = centres[..., 0, None, None] - n // 2 + q[:, None]
    x = centres[..., 1, None, None] - n // 2 + q[None, :]
    return torch.from_numpy(_analytic(y, x).astype(np.complex64))


def _numpy_patches(obj: np.ndarray, centres: np.ndarray, n: int) -> np.ndarray:
    """Cut patches by plain numpy slicing at integer centres (the DESIGN convention)."""
    out = np.empty(centres.shape[:-1] + (n, n), dtype=obj.dtype)
    for idx in np.ndindex(*centres.shape[:-1]):
        cy, cx = (int(v) for v in centres[idx])
        out[idx] = obj[cy - n // 2: cy - n // 2 + n, cx - n // 2: cx - n // 2 + n]
    return out


def test_support_mask_is_central_half() -> None:
    m = ph.support_mask(64)
    assert m.sum() == 32 * 32
    assert m[16, 16] == 1 and m[47, 47] == 1 and m[15, 16] == 0 and m[48, 47] == 0


def test_round_trip_integer_offsets_gridsize2() -> None:
    n = 64
    rng = np.random.default_rng(0)
    obj = (rng.standard_normal((160, 160)) + 1j * rng.standard_normal((160, 160))).astype(np.complex64)
    centroids = np.array([[80, 80], [70, 95]])
    offs = np.array([[[-3, -5], [-2, 6], [4, -3], [1, 2]], [[-6, 0], [0, 7], [5, -3], [1, -4]]])
    assert np.all(offs.sum(axis=1) == 0)  # integer centroid
    centres = centroids[:, None, :] + offs
    mask = ph.support_mask(n).numpy()
    patches = _numpy_patches(obj, centres, n) * mask
    t = torch.from_numpy(patches)
    off = torch.from_numpy(offs.astype(np.float32))
    back = ph.reextract_patches(t, off).numpy()
    np.testing.assert_allclose(back, patches, atol=1e-5)
    # the group canvas equals the object around each centroid wherever some member covers it
    canvas = ph.merge_patches(t, off).numpy()
    truth = _numpy_patches(obj, centroids, n)
    for g in range(2):
        cov = np.zeros((n, n), bool)
        for o in offs[g]:
            cov |= np.roll(mask.astype(bool), tuple(o), axis=(0, 1))
        np.testing.assert_allclose(canvas[g][cov], truth[g][cov], atol=1e-5)
        assert np.all(canvas[g][~cov] == 0)


def test_round_trip_subpixel_offsets_gridsize2() -> None:
    n = 32
    rng = np.random.default_rng(1)
    pos = rng.uniform(n, 120 - n, size=(60, 2))
    groups = make_groups(pos, gridsize=2, neighbor_count=7, seed=0)
    centres = pos[groups.indices]
    assert np.any(np.abs(groups.offsets - np.round(groups.offsets)) > 0.1)
    mask = ph.support_mask(n)
    off = torch.from_numpy(groups.offsets.astype(np.float32))
    exact = _exact_patches(centres, n) * mask
    back = ph.reextract_patches(exact, off)
    assert float((back - exact).abs().max()) < 0.02  # amplitude ~1: Fourier interpolation error
    # same with the library's own sub-pixel extraction of a sampled object as the oracle
    yy, xx = np.mgrid[0:120, 0:120].astype(np.float64)
    obj = torch.from_numpy(_analytic(yy, xx).astype(np.complex64))
    cut = extract_patches(obj, torch.from_numpy(centres.reshape(-1, 2)), n).reshape(exact.shape) * mask
    back2 = ph.reextract_patches(cut, off)
    assert float((back2 - cut).abs().max()) < 0.02
    # the group canvas matches the object around the centroid where the members cover it fully
    canvas = ph.merge_patches(exact, off)
    truth = _exact_patches(groups.centres, n)
    w = ph.support_weights(off, n).sum(dim=1)
    sel = w >= 1
    assert float((canvas - truth)[sel].abs().max()) < 0.03


def test_merge_normalisation_does_not_inflate_borders() -> None:
    n = 64
    rng = np.random.default_rng(2)
    offs = torch.from_numpy(rng.uniform(-8, 8, size=(3, 4, 2)).astype(np.float32))
    ones = ph.support_mask(n).to(torch.complex64).expand(3, 4, n, n).clone()
    canvas = ph.merge_patches(ones, offs)
    covered = ph.support_weights(offs, n).sum(dim=1) > 0
    vals = canvas.abs()
    assert float(vals.max()) <= 1 + 1e-5
    np.testing.assert_allclose(vals[covered].numpy(), 1.0, atol=1e-5)
    assert float(vals[~covered].max()) == 0.0
    back = ph.reextract_patches(ones, offs)
    np.testing.assert_allclose(back.abs().numpy(), ph.support_mask(n).expand(3, 4, n, n).numpy(), atol=1e-5)


def test_batch_groups_merge_separately() -> None:
    n = 32
    offs = torch.tensor([[[-2.0, -3.0], [2.0, 3.0]], [[-2.0, -3.0], [2.0, 3.0]]])  # same geometry
    m = ph.support_mask(n).to(torch.complex64)
    patches = torch.stack([m.expand(2, n, n), 5 * m.expand(2, n, n)])  # group 0: 1, group 1: 5
    canvas = ph.merge_patches(patches, offs)
    cov = ph.support_weights(offs[0], n).sum(dim=0) > 0
    np.testing.assert_allclose(canvas[0].abs()[cov].numpy(), 1.0, atol=1e-5)
    np.testing.assert_allclose(canvas[1].abs()[cov].numpy(), 5.0, atol=1e-5)
    back = ph.reextract_patches(patches, offs)
    np.testing.assert_allclose(back[0].abs().numpy(), m.abs().expand(2, n, n).numpy(), atol=1e-5)
    np.testing.assert_allclose(back[1].abs().numpy(), 5 * m.abs().expand(2, n, n).numpy(), atol=1e-5)


@pytest.mark.parametrize("gridsize", [1, 2])
def test_network_forward_model_equals_numpy(gridsize: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Known object patches through the model's physics vs fftshift(fft2(P*O, ortho)) in numpy."""
    n, c = 64, gridsize * gridsize
    rng = np.random.default_rng(3)
    obj = (0.5 + rng.random((150, 150))) * np.exp(1j * rng.uniform(-1, 1, (150, 150)))
    probe = default_probe(n, defocus=0.7)
    s = 37.5
    model = build_model(ModelConfig(N=n, gridsize=gridsize, n_filters_scale=1), probe, s)
    offs = np.array([[0, 0]]) if c == 1 else np.array([[-3, -4], [-2, 5], [4, -2], [1, 1]])
    centroid = np.array([75, 75])
    centres = centroid + offs
    mask = ph.support_mask(n).numpy()
    patches = _numpy_patches(obj, centres, n)  # (C, N, N)
    amp_in = torch.from_numpy(np.abs(patches * mask)[None].astype(np.float32))
    ph_in = torch.from_numpy((np.angle(patches) * mask)[None].astype(np.float32))
    monkeypatch.setattr(model, "object_patches", lambda x: (amp_in, ph_in))
    out = model(torch.zeros(1, c, n, n), torch.from_numpy(offs[None].astype(np.float32)))
    factor = (n / 2) / math.sqrt(float(np.sum(np.abs(probe) ** 2)))  # sum|P|^2 = (N/2)^2
    expect = s * np.abs(np.fft.fftshift(np.fft.fft2(probe * factor * patches, norm="ortho"), axes=(-2, -1)))
    got = out["amplitude"][0].detach().numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-4 * expect.max())
    np.testing.assert_allclose(out["intensity"][0].detach().numpy(), expect ** 2, rtol=0, atol=3e-4 * expect.max() ** 2)
    assert model.probe_factor == pytest.approx(factor)


def test_round_trip_full_support_integer_offsets() -> None:
    """Border-branch geometry: whole N x N patches, members partly outside each other's frames."""
    n = 32
    rng = np.random.default_rng(4)
    obj = (rng.standard_normal((100, 100)) + 1j * rng.standard_normal((100, 100))).astype(np.complex64)
    offs = np.array([[[-5, -6], [-2, 7], [6, -3], [1, 2]]])
    centres = np.array([[50, 50]])[:, None, :] + offs
    patches = _numpy_patches(obj, centres, n)
    back = ph.reextract_patches(torch.from_numpy(patches), torch.from_numpy(offs.astype(np.float32)), full=True)
    np.testing.assert_allclose(back.numpy(), patches, atol=1e-5)
