"""Simulator against statistical and exact oracles (DESIGN §2)."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ptychopinn.data.contract import load_dataset
from ptychopinn.data.simulate import SimulationConfig, simulate, simulate_patterns
from ptychopinn.physics.probe import default_probe

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "Run1084_recon3_postPC.npz"


@pytest.fixture(scope="module")
def ds200():
    return simulate(n_images=200, nphotons=1e5, N=64, object_size=128, seed=3)


def test_dose_and_integer_counts(ds200):
    d = ds200.diff3d.astype(np.float64)
    total = (d ** 2).sum(axis=(1, 2))
    assert abs(total.mean() / 1e5 - 1) < 0.02
    k = d ** 2
    # float32 amplitudes of integer counts: integer up to float32 rounding (2 eps relative)
    assert np.all(np.abs(k - np.round(k)) <= 2.5e-7 * k + 1e-6)
    assert ds200.diff3d.dtype == np.float32
    assert ds200.metadata["nphotons_measured"] == pytest.approx(total.mean())


def test_poisson_moments_over_repeated_draws():
    # fixed object/probe/positions; 300 independent noise draws -> var/mean == 1 per pixel
    probe = default_probe(16)
    obj = np.ones((40, 40), complex) * 0.8
    pos = np.array([[20.0, 20.0]])
    lam_amp, _, _ = simulate_patterns(obj, probe, pos, 2e4, rng=None)
    lam = lam_amp[0].astype(np.float64) ** 2
    rng = np.random.default_rng(11)
    draws = np.stack([simulate_patterns(obj, probe, pos, 2e4, rng)[0][0] for _ in range(300)]).astype(np.float64) ** 2
    sel = lam > 20  # pixels with enough counts for a stable ratio
    mean = draws.mean(0)[sel]
    var = draws.var(0, ddof=1)[sel]
    np.testing.assert_allclose(mean, lam[sel], rtol=0.05)
    ratio = var.sum() / mean.sum()
    assert abs(ratio - 1) < 0.05


def test_noiseless_parseval_against_patches():
    ds = simulate(n_images=20, nphotons=1e6, N=32, object_size=64, noiseless=True, seed=1)
    s = ds.metadata["dose_scale"]
    psi = ds.probe * ds.ground_truth_patches[..., 0].astype(np.complex128)
    e_real = (np.abs(psi) ** 2).sum(axis=(1, 2)) * s * s
    e_far = (ds.diff3d.astype(np.float64) ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(e_far, e_real, rtol=2e-6)


def test_seeds_reproducible_and_streams_independent():
    a = simulate(n_images=50, nphotons=1e4, N=32, object_size=64, seed=7)
    b = simulate(n_images=50, nphotons=1e4, N=32, object_size=64, seed=7)
    np.testing.assert_array_equal(a.diff3d, b.diff3d)
    np.testing.assert_array_equal(a.xcoords, b.xcoords)
    seeds = a.metadata["seeds"]
    c = simulate(n_images=50, nphotons=1e4, N=32, object_size=64, seed=7, noise_seed=seeds["noise_seed"] + 1)
    np.testing.assert_array_equal(a.xcoords, c.xcoords)
    np.testing.assert_array_equal(a.ycoords, c.ycoords)
    np.testing.assert_array_equal(a.object, c.object)
    assert not np.array_equal(a.diff3d, c.diff3d)
    # another dose with the same object/scan seeds shares object and trajectory
    d = simulate(n_images=50, nphotons=1e8, N=32, object_size=64, seed=99,
                 object_seed=seeds["object_seed"], scan_seed=seeds["scan_seed"])
    np.testing.assert_array_equal(a.object, d.object)
    np.testing.assert_array_equal(a.ycoords, d.ycoords)


def test_scan_kinds_and_ground_truth_patches_match_object_slices():
    ds = simulate(n_images=30, nphotons=1e4, N=32, object_size=80, scan="raster", step=8, seed=0)
    assert np.allclose(ds.xcoords, np.round(ds.xcoords))
    n = 32
    for i in (0, 7, 29):
        y, x = int(ds.ycoords[i]), int(ds.xcoords[i])
        want = ds.object[y - n // 2:y - n // 2 + n, x - n // 2:x - n // 2 + n]
        np.testing.assert_allclose(ds.ground_truth_patches[i, ..., 0], want, rtol=1e-6, atol=1e-6)
    j = simulate(n_images=30, nphotons=1e4, N=32, object_size=80, scan="jitter", step=8, seed=0)
    assert not np.allclose(j.xcoords, np.round(j.xcoords))
    for kind in ("grf", "siemens"):
        o = simulate(n_images=5, nphotons=1e4, N=32, object_size=64, object_kind=kind, seed=0)
        assert np.isfinite(o.diff3d).all() and o.object.shape == (64, 64)


def test_save_round_trip_and_metadata_json(tmp_path, ds200):
    p = ds200.save(tmp_path / "sim.npz")
    with np.load(p, allow_pickle=False) as z:
        assert set(z.files) >= {"diff3d", "probeGuess", "objectGuess", "xcoords", "ycoords",
                                "xcoords_start", "ycoords_start", "scan_index", "ground_truth_patches", "_metadata"}
        assert z["ground_truth_patches"].shape == (200, 64, 64, 1)
        assert z["scan_index"].dtype == np.int64
        meta = json.loads(str(z["_metadata"]))
    assert meta["nphotons_requested"] == 1e5 and "noise_seed" in meta["seeds"]
    back = load_dataset(p)
    np.testing.assert_array_equal(back.diff3d, ds200.diff3d)
    assert [f.name for f in tmp_path.iterdir()] == ["sim.npz"]  # no temporary left behind


def test_config_round_trips_json():
    cfg = SimulationConfig(n_images=10, nphotons=3e4, scan="jitter", seed=5, noise_seed=9)
    assert SimulationConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.skipif(not REAL.exists(), reason=f"real probe/object file absent: {REAL}")
def test_simulate_with_real_probe_and_object():
    ds = simulate(n_images=64, nphotons=1e6, N=64, object_from=str(REAL), probe_from=str(REAL), seed=0)
    with np.load(REAL) as z:
        np.testing.assert_array_equal(ds.object, z["objectGuess"])
        np.testing.assert_allclose(ds.probe, z["probeGuess"])
    assert abs(ds.photons_per_pattern() / 1e6 - 1) < 0.02
    assert ds.object.shape == (227, 226)


def test_simulate_cli(tmp_path):
    from ptychopinn.cli.main import main

    out = tmp_path / "a.npz"
    assert main(["simulate", "-o", str(out), "--n-images", "40", "--N", "32", "--object-size", "64",
                 "--nphotons", "1e4", "--scan", "jitter", "--seed", "2"]) == 0
    assert load_dataset(out).n_patterns == 40
    assert main(["simulate", "-o", str(tmp_path / "b.npz"), "--N", "64", "--object-size", "50"]) == 2
    assert not os.path.exists(tmp_path / "b.npz")


def test_noise_draws_do_not_depend_on_threads_or_chunking():
    probe = default_probe(16)
    obj = np.ones((64, 64), complex)
    pos = np.random.default_rng(0).uniform(10, 54, (600, 2))
    a = simulate_patterns(obj, probe, pos, 1e4, 123, chunk=1024, threads=1)[0]
    b = simulate_patterns(obj, probe, pos, 1e4, 123, chunk=100, threads=2)[0]
    np.testing.assert_array_equal(a, b)
    c = simulate_patterns(obj, probe, pos, 1e4, 124, threads=2)[0]
    assert not np.array_equal(a, c)
