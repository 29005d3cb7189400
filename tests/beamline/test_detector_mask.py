"""Detector masks (True = bad pixel) travel with the dataset and leave the physics."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch

from ptychopinn.cli.main import main
from ptychopinn.data.contract import PtychoDataset, load_dataset
from ptychopinn.data.simulate import simulate
from ptychopinn.model.losses import LossWeights, pinn_loss

needs_ptychi = pytest.mark.skipif(importlib.util.find_spec("ptychi") is None, reason="pty-chi not installed")


def _bad_pixels(n: int, rng: np.random.Generator) -> np.ndarray:
    """~5 % bad: a 5x5 block inside the diffraction disc plus scattered pixels."""
    bad = np.zeros((n, n), bool)
    bad[18:23, 9:14] = True
    free = np.flatnonzero(~bad.ravel())
    bad.ravel()[rng.choice(free, int(0.05 * n * n) - 25, replace=False)] = True
    return bad


def _garbage(ds: PtychoDataset, bad: np.ndarray, rng: np.random.Generator) -> PtychoDataset:
    g = ds.diff3d.copy()
    g[:, bad] = float(ds.diff3d.max()) * rng.uniform(0.5, 2.0, (ds.n_patterns, int(bad.sum())))
    return dataclasses.replace(ds, diff3d=g)


def test_masked_loss_is_the_mean_over_good_pixels():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0.5, 3.0, (3, 2, 8, 8))
    meas = rng.uniform(0.0, 3.0, (3, 2, 8, 8))
    bad = rng.random((8, 8)) < 0.2
    w = torch.from_numpy((~bad).astype(np.float32))
    got = pinn_loss({"amplitude": torch.from_numpy(pred)}, torch.from_numpy(meas), LossWeights(1.0, 2.0),
                    amplitude_unit=4.0, pixel_weight=w)
    lam = pred ** 2
    nll = (lam - meas ** 2 * np.log(lam))[..., ~bad].mean()  # numpy oracle over the good pixels
    mae = np.abs(pred - meas)[..., ~bad].mean() / 4.0
    assert float(got) == pytest.approx(nll + 2.0 * mae, rel=1e-6)
    # garbage on the bad pixels changes nothing
    meas2 = meas.copy()
    meas2[..., bad] = 1e6
    got2 = pinn_loss({"amplitude": torch.from_numpy(pred)}, torch.from_numpy(meas2), LossWeights(1.0, 2.0),
                     amplitude_unit=4.0, pixel_weight=w)
    assert float(got2) == pytest.approx(float(got), rel=1e-12)


def test_mask_travels_through_npz_cxi_and_mask_option(tmp_path, capsys):
    rng = np.random.default_rng(1)
    ds = simulate(n_images=20, N=16, object_size=40, nphotons=1e4, seed=1)
    bad = np.zeros((16, 16), bool)
    bad[2:4, 5:9] = True  # 8 pixels
    np.save(tmp_path / "mask.npy", bad)
    ds.save(tmp_path / "scan.npz")
    assert main(["convert", str(tmp_path / "scan.npz"), "-o", str(tmp_path / "m.npz"), "--mask",
                 str(tmp_path / "mask.npy"), "-q"]) == 0
    m = load_dataset(tmp_path / "m.npz")
    np.testing.assert_array_equal(m.mask, bad)
    # the good pixels are untouched, a bad one is the mean of its good 3x3 neighbours
    np.testing.assert_array_equal(m.diff3d[:, ~bad], ds.diff3d[:, ~bad])
    c = ds.diff3d.astype(np.float64) ** 2
    nb = [(1, 4), (1, 5), (1, 6), (2, 4), (3, 4)]  # good neighbours of (2, 5)
    np.testing.assert_allclose(m.diff3d[:, 2, 5].astype(np.float64) ** 2,
                               np.mean([c[:, i, j] for i, j in nb], axis=0), rtol=1e-5)
    assert main(["validate", str(tmp_path / "m.npz")]) == 0
    assert "8 bad pixel(s), 3.12 % masked" in capsys.readouterr().out
    # CXI round trip keeps it (detector_1/mask, nonzero = bad)
    assert main(["convert", str(tmp_path / "m.npz"), "-o", str(tmp_path / "m.cxi"), "--energy-ev", "8000",
                 "--distance-m", "2", "--detector-pixel-m", "75e-6", "-q"]) == 0
    np.testing.assert_array_equal(load_dataset(tmp_path / "m.cxi").mask, bad)
    # a wrong shape is refused with the file named
    np.save(tmp_path / "bad.npy", np.zeros((15, 16), bool))
    assert main(["validate", str(tmp_path / "scan.npz"), "--mask", str(tmp_path / "bad.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert "bad.npy" in err and "(15, 16)" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_masked_dead_pixels_reconstruct_like_the_clean_scan(tmp_path):
    """5 % dead pixels filled with garbage (hot values up to twice the brightest measured pixel).
    Measured (200 patterns, N=32, 8 epochs, 1 thread; see docs/reliability.md): the masked fit is
    within 0.08 amplitude SSIM of the clean one, the unmasked fit at least 0.2 below it."""
    from ptychopinn.evaluation.compare import compute_comparison
    from ptychopinn.inference.fit import DEFAULT_TRAIN, reconstruct_scan

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    ds = simulate(n_images=200, N=32, object_size=64, nphotons=1e6, seed=3)
    bad = _bad_pixels(32, rng)
    assert bad.mean() == pytest.approx(0.05, abs=0.002)
    dirty = _garbage(ds, bad, rng)
    tc = dataclasses.replace(DEFAULT_TRAIN, epochs=8, seed=0, device="cpu")
    ssim = {}
    for name, d in (("clean", ds), ("masked", dirty.with_mask(bad)), ("unmasked", dirty)):
        r = reconstruct_scan(d, tmp_path / name, train_config=tc, progress=False)
        ssim[name] = compute_comparison(ds, {"r": r.reconstruction}).metrics["r"]["amplitude"]["ssim"]
    print("amplitude SSIM", ssim)
    assert abs(ssim["clean"] - ssim["masked"]) < 0.08
    assert ssim["masked"] - ssim["unmasked"] > 0.2


@needs_ptychi
def test_ptychi_ignores_masked_pixels():
    """pty-chi (valid_pixel_mask) on garbage + mask lands where it lands on the clean data."""
    from ptychopinn.iterative.ptychi_runner import PtychiConfig, run_ptychi

    rng = np.random.default_rng(2)
    ds = simulate(n_images=120, N=32, object_size=64, nphotons=1e6, seed=4)
    bad = _bad_pixels(32, rng)
    dirty = _garbage(ds, bad, rng)
    cfg = PtychiConfig(epochs=10, device="cpu", probe_fixed=True)
    clean = run_ptychi(ds, cfg, progress=False).object
    masked = run_ptychi(dirty.with_mask(bad), cfg, progress=False).object
    unmasked = run_ptychi(dirty, cfg, progress=False).object
    sl = (slice(20, 44), slice(20, 44))
    err_m = np.linalg.norm(masked[sl] - clean[sl]) / np.linalg.norm(clean[sl])
    err_u = np.linalg.norm(unmasked[sl] - clean[sl]) / np.linalg.norm(clean[sl])
    print("relative difference to the clean run: masked", err_m, "unmasked", err_u)
    assert err_m < 0.05 and err_u > 3 * err_m
