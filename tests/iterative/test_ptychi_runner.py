"""pty-chi runner: position convention (exact forward-model oracle and a tiny reconstruction),
outputs, torch global state, CLI, and the missing-dependency path."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from ptychopinn.cli.main import main as cli_main
from ptychopinn.data.contract import PtychoDataset
from ptychopinn.errors import ConfigError, DataError, DependencyError
from ptychopinn.iterative import ptychi_runner as R

needs_ptychi = pytest.mark.skipif(
    __import__("importlib").util.find_spec("ptychi") is None, reason="pty-chi not installed")


# ---------------------------------------------------------------------------------------------
# pure helpers
# ---------------------------------------------------------------------------------------------
def test_config_validation_and_round_trip():
    cfg = R.PtychiConfig(algorithm="epie", epochs=3, probe_fixed=True, seed=None)
    assert cfg.algorithm == "EPIE"
    assert R.PtychiConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in ({"algorithm": "RAAR"}, {"device": "tpu"}, {"epochs": 0}, {"batch_size": 0},
                {"object_init": "random"}, {"margin": 1}):
        with pytest.raises(ConfigError):
            R.PtychiConfig(**bad)


def test_positions_formula_by_hand():
    # centre 32 with N = 64 in a 128-px buffer: window top-left 0, pty-chi pos = 0 - (128-64)/2
    pos = R.ptychi_positions(np.array([[32.0, 40.0], [95.0, 96.0]]), 64, (128, 130))
    np.testing.assert_array_equal(pos, [[-32.0, 8.0 - 33.0], [31.0, 64.0 - 33.0]])
    # a buffer starting at object pixel (-2, -2) moves every window 2 px down/right
    pos2 = R.ptychi_positions(np.array([[32.0, 40.0]]), 64, (128, 130), (-2, -2))
    np.testing.assert_array_equal(pos2, pos[:1] + 2)


def _dataset(n: int, shape: tuple[int, int], m: int, seed: int, with_object: bool = True) -> tuple[PtychoDataset, np.ndarray]:
    """Random complex object/probe, integer centres, diffraction from a numpy oracle."""
    rng = np.random.default_rng(seed)
    h, w = shape
    obj = rng.uniform(0.5, 1.5, shape) * np.exp(1j * rng.uniform(-1, 1, shape))
    yy, xx = np.mgrid[:n, :n] - n // 2
    probe = np.exp(-(yy**2 + xx**2) / (2 * (n / 5) ** 2)) * np.exp(1j * 0.1 * xx)
    cy = rng.integers(n // 2, h - (n - n // 2) + 1, m).astype(np.float64)
    cx = rng.integers(n // 2, w - (n - n // 2) + 1, m).astype(np.float64)
    inten = _oracle_intensity(obj, probe, cy, cx)
    diff = np.sqrt(np.fft.fftshift(inten, axes=(-2, -1))).astype(np.float32)  # DC at N//2
    ds = PtychoDataset(diff3d=diff, probe=probe, xcoords=cx, ycoords=cy, object=obj if with_object else None)
    return ds, obj


def _oracle_intensity(obj, probe, cy, cx):
    n = probe.shape[0]
    out = []
    for y, x in zip(cy, cx):
        t, l = int(y) - n // 2, int(x) - n // 2
        out.append(np.abs(np.fft.fft2(probe * obj[t:t + n, l:l + n])) ** 2)  # DC at 0, unnormalised
    return np.array(out)


def test_geometry_without_object_is_the_window_bounding_box():
    ds, _ = _dataset(16, (40, 50), 10, seed=3, with_object=False)
    g = R.plan_geometry(ds, margin=2)
    y0 = int(ds.ycoords.min()) - 8
    x0 = int(ds.xcoords.min()) - 8
    assert g.canvas_origin == (y0, x0)
    assert g.canvas_shape == (int(ds.ycoords.max()) + 8 - y0, int(ds.xcoords.max()) + 8 - x0)
    hb, wb = g.buffer_shape
    assert (hb - 16) % 2 == 0 and (wb - 16) % 2 == 0 and hb >= g.canvas_shape[0] + 4


# ---------------------------------------------------------------------------------------------
# convention: pty-chi's own forward model against the numpy oracle (exact)
# ---------------------------------------------------------------------------------------------
@needs_ptychi
@pytest.mark.parametrize("n,shape", [(16, (41, 50)), (15, (40, 47))])
def test_ptychi_forward_model_matches_numpy_oracle(n, shape):
    ds, obj = _dataset(n, shape, 12, seed=1)
    cfg = R.PtychiConfig(object_init="dataset", device="cpu", epochs=1)
    inputs = R.prepare_inputs(ds, cfg)
    assert inputs.probe_scale_factor == pytest.approx(1.0, rel=1e-6)  # data made with |fft2|^2
    pc = R.import_ptychi()
    with R.preserved_torch_state():
        task = R.build_task(pc, inputs, cfg, "cpu")
        pred = task.reconstructor.forward_model(torch.arange(ds.n_patterns)).detach().cpu().numpy()
    pred = pred / inputs.probe_scale_factor**2
    ref = _oracle_intensity(obj, ds.probe, ds.ycoords, ds.xcoords)
    scale = ref.max()
    assert np.abs(pred - ref).max() / scale < 1e-5
    # a one-pixel error in either axis would be visible
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        ok = ((ds.ycoords + dy - n // 2 >= 0) & (ds.ycoords + dy - n // 2 + n <= shape[0])
              & (ds.xcoords + dx - n // 2 >= 0) & (ds.xcoords + dx - n // 2 + n <= shape[1]))
        wrong = _oracle_intensity(obj, ds.probe, ds.ycoords[ok] + dy, ds.xcoords[ok] + dx)
        assert np.abs(pred[ok] - wrong).max() / scale > 1e-2


@needs_ptychi
def test_subpixel_positions_have_the_simulators_sign():
    """Random (sub-pixel) centres: pty-chi shifts the probe, our simulator interpolates the object;
    the intensities agree closely, and mirroring the fractional parts would not."""
    import dataclasses

    from ptychopinn.data.simulate import SimulationConfig, simulate

    ds = simulate(SimulationConfig(n_images=40, N=32, object_size=72, object_kind="grf", scan="random",
                                   noiseless=True, nphotons=1e6, seed=3))
    assert np.any(np.abs(ds.xcoords - np.round(ds.xcoords)) > 0.2)
    cfg = R.PtychiConfig(object_init="dataset", device="cpu", epochs=1)
    pc = R.import_ptychi()

    def predicted(d: PtychoDataset) -> np.ndarray:
        inputs = R.prepare_inputs(d, cfg)
        with R.preserved_torch_state():
            task = R.build_task(pc, inputs, cfg, "cpu")
            return task.reconstructor.forward_model(torch.arange(d.n_patterns)).detach().cpu().numpy()

    measured = R.prepare_inputs(ds, cfg).intensities
    rel = np.linalg.norm(predicted(ds) - measured) / np.linalg.norm(measured)
    fy, fx = ds.ycoords - np.round(ds.ycoords), ds.xcoords - np.round(ds.xcoords)
    mirrored = dataclasses.replace(ds, ycoords=ds.ycoords - 2 * fy, xcoords=ds.xcoords - 2 * fx)
    rel_mirrored = np.linalg.norm(predicted(mirrored) - measured) / np.linalg.norm(measured)
    assert rel < 2e-3 and rel_mirrored > 10 * rel


# ---------------------------------------------------------------------------------------------
# a tiny noiseless reconstruction (position convention end to end, outputs, global state)
# ---------------------------------------------------------------------------------------------
def _illuminated(ds: PtychoDataset, fraction: float) -> np.ndarray:
    n = ds.N
    illum = np.zeros(ds.object.shape)
    for y, x in ds.positions_yx:
        t, l = round(y) - n // 2, round(x) - n // 2
        illum[t:t + n, l:l + n] += np.abs(ds.probe) ** 2
    return illum > fraction * illum.max()


def nrmse_after_global_factor(rec: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> float:
    a, b = rec[mask], ref[mask]
    c = np.vdot(a, b) / np.vdot(a, a)  # least-squares complex factor
    return float(np.linalg.norm(c * a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def tiny():
    from ptychopinn.data.simulate import SimulationConfig, simulate

    pytest.importorskip("ptychi")
    ds = simulate(SimulationConfig(n_images=100, N=32, object_size=64, scan="raster", step=4,
                                   noiseless=True, nphotons=1e6, seed=1))
    prev_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # must survive the run
    try:
        res = R.run_ptychi(ds, R.PtychiConfig(epochs=20, probe_fixed=True, device="cpu", seed=0), progress=False)
        after = (torch.get_default_dtype(), torch.get_default_device(), torch.empty(1).dtype)
    finally:
        torch.set_default_dtype(prev_dtype)
    return ds, res, after


@needs_ptychi
def test_tiny_reconstruction_is_registered_to_the_ground_truth(tiny):
    from skimage.registration import phase_cross_correlation

    ds, res, _ = tiny
    assert res.object.shape == ds.object.shape and res.origin == (0.0, 0.0)
    mask = _illuminated(ds, 0.5)
    shift = phase_cross_correlation(np.where(mask, ds.object, 0), np.where(mask, res.object, 0),
                                    upsample_factor=20)[0]
    np.testing.assert_allclose(shift, 0.0, atol=0.1)
    err = nrmse_after_global_factor(res.object, ds.object, mask)
    shifted = min(nrmse_after_global_factor(res.object, np.roll(ds.object, d, axis=(0, 1)), mask)
                  for d in ((1, 0), (-1, 0), (0, 1), (0, -1)))
    assert err < 0.02 and shifted > 5 * err
    # probe fixed: returned in the input probe's units, unchanged
    np.testing.assert_allclose(res.probe, ds.probe.astype(np.complex64), rtol=0, atol=1e-5)
    assert len(res.loss_history) == 20 and res.loss_history[-1] < 0.1 * res.loss_history[0]


@needs_ptychi
def test_run_restores_torch_defaults(tiny):
    _, _, after = tiny
    assert after == (torch.float64, torch.device("cpu"), torch.float64)


@needs_ptychi
def test_saved_outputs(tiny, tmp_path):
    _, res, _ = tiny
    written = R.save_result(res, tmp_path / "out")
    assert written["png"].stat().st_size > 0
    with np.load(written["npz"], allow_pickle=False) as z:
        assert z["reconstructed_object"].dtype == np.complex64
        assert z["reconstructed_object"].shape == res.object.shape
        assert z["reconstructed_probe"].shape == (32, 32)
        assert str(z["algorithm"]) == "LSQML" and int(z["epochs"]) == 20
        assert z["origin"].dtype == np.float64 and list(z["origin"]) == [0.0, 0.0]
        assert z["loss_history"].shape == (20,)
        assert float(z["computation_time_seconds"]) == pytest.approx(res.computation_time_seconds)
        meta = json.loads(str(z["_metadata"]))
    assert isinstance(meta["torchvision_stub_used"], bool)
    assert meta["config"]["probe_fixed"] is True and meta["ptychi_version"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]  # no temporaries


@needs_ptychi
@pytest.mark.parametrize("algorithm", ["epie", "DM"])
def test_cli_end_to_end(tmp_path, capsys, algorithm):
    ds, _ = _dataset(16, (40, 44), 30, seed=4)
    data = tmp_path / "d.npz"
    ds.save(data)
    rc = cli_main(["iterative", "--data", str(data), "-o", str(tmp_path / "o"), "--algorithm", algorithm,
                   "--epochs", "2", "--batch-size", "8", "--device", "cpu", "-q", "--no-plot"])
    assert rc == 0
    with np.load(tmp_path / "o" / R.OUTPUT_NPZ, allow_pickle=False) as z:
        assert str(z["algorithm"]) == algorithm.upper() and z["loss_history"].shape == (2,)
        assert np.all(np.isfinite(z["reconstructed_object"]))
    assert f"pty-chi {algorithm.upper()}" in capsys.readouterr().out


def test_missing_ptychi_is_a_dependency_error(monkeypatch, tmp_path, capsys):
    ds, _ = _dataset(16, (40, 44), 5, seed=5)
    data = tmp_path / "d.npz"
    ds.save(data)
    monkeypatch.setitem(sys.modules, "ptychi", None)  # "import ptychi" -> ModuleNotFoundError
    with pytest.raises(DependencyError, match=r"pty-chi is not installed: pip install -c constraints.txt"):
        R.run_ptychi(ds, R.PtychiConfig(epochs=1, device="cpu"), progress=False)
    rc = cli_main(["iterative", "--data", str(data), "-o", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == ("ptychopinn iterative: error: pty-chi is not installed: "
                           "pip install -c constraints.txt 'ptychopinn[ptychi]'")
    assert not (tmp_path / "o").exists()


def test_bad_inputs_are_typed_errors(tmp_path):
    ds, _ = _dataset(16, (40, 44), 5, seed=6, with_object=False)
    with pytest.raises(DataError, match="objectGuess"):
        R.prepare_inputs(ds, R.PtychiConfig(object_init="dataset"))
    rc = cli_main(["iterative", "--data", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "o")])
    assert rc == 2 and not (tmp_path / "o").exists()


@needs_ptychi
@pytest.mark.slow
def test_position_correction_moves_positions_towards_the_truth(tmp_path):
    """1.5 px RMS random position errors (N=32, 200 patterns, 1e6 photons); 40 LSQML epochs with
    pty-chi's position correction from epoch 5. Measured (1 thread, ~11 s): RMS error 1.36 -> 1.08 px
    with the default step 0.3, -> 0.90 px with --position-step-size 1 (mean offset removed: a
    common shift is not measurable). The refined positions are written beside the reconstruction."""
    import dataclasses

    from ptychopinn.cli.main import main
    from ptychopinn.data.simulate import simulate

    ds = simulate(n_images=200, N=32, object_size=80, nphotons=1e6, seed=5, border=4)
    err = np.random.default_rng(1).normal(0, 1.5 / np.sqrt(2), (ds.n_patterns, 2))
    rec = dataclasses.replace(ds, xcoords=ds.xcoords + err[:, 1], ycoords=ds.ycoords + err[:, 0],
                              xcoords_start=None, ycoords_start=None)
    rec.save(tmp_path / "rec.npz")

    def rms(p):
        d = p - ds.positions_yx
        d = d - d.mean(axis=0)
        return float(np.sqrt(np.mean(np.sum(d ** 2, axis=1))))

    before = rms(rec.positions_yx)
    assert main(["iterative", "--data", str(tmp_path / "rec.npz"), "-o", str(tmp_path / "out"), "--epochs", "40",
                 "--position-correction", "--position-step-size", "1", "--device", "cpu", "--threads", "1",
                 "--no-plot", "-q"]) == 0
    with np.load(tmp_path / "out" / "refined_positions.npz") as z:
        after = rms(np.stack([z["ycoords"], z["xcoords"]], axis=1))
    print(f"position RMS error: recorded {before:.3f} px, refined {after:.3f} px")
    assert before == pytest.approx(1.36, abs=0.02)
    assert after < 0.8 * before
