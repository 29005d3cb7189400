"""The experimental probe workflow on the command line: iterative --save-probe, train/infer
--probe-from, train --probe-from-ptychi (the probe swap happens at the CLI / dataset level)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from ptychopinn.cli.main import main
from ptychopinn.data.contract import load_dataset
from ptychopinn.data.simulate import simulate
from ptychopinn.errors import DataError

needs_ptychi = pytest.mark.skipif(
    __import__("importlib").util.find_spec("ptychi") is None, reason="pty-chi not installed")

TINY = ["--epochs", "1", "--n-filters-scale", "1", "--quiet", "--device", "cpu", "--patience", "0"]


@pytest.fixture()
def tiny(tmp_path):
    ds = simulate(n_images=24, N=32, object_size=64, nphotons=1e5, seed=2, object_kind="siemens")
    ds.save(tmp_path / "d.npz")
    return tmp_path


def test_train_probe_from_replaces_probe_and_records_source(tiny, capsys):
    other = (np.ones((32, 32)) * np.exp(0.3j)).astype(np.complex64)
    np.savez(tiny / "p.npz", probeGuess=other)
    assert main(["train", "--train", str(tiny / "d.npz"), "-o", str(tiny / "run"), *TINY,
                 "--probe-from", str(tiny / "p.npz")]) == 0
    cfg = json.loads((tiny / "run" / "config.json").read_text())
    assert cfg["probe"]["source"] == f"{tiny / 'p.npz'}: probeGuess"
    assert cfg["data"]["train"]["sha256"] is not None
    with np.load(tiny / "run" / "probe.npz") as z:
        np.testing.assert_array_equal(z["source_probe"], other)  # trained with the swapped probe
    np.savez(tiny / "p8.npz", probeGuess=np.ones((8, 8), np.complex64))
    assert main(["train", "--train", str(tiny / "d.npz"), "-o", str(tiny / "run8"), *TINY,
                 "--probe-from", str(tiny / "p8.npz")]) == 2
    assert "p8.npz: probeGuess: probe shape (8, 8) does not match" in capsys.readouterr().err
    assert not (tiny / "run8").exists()


def test_infer_reads_a_probe_less_cxi_with_the_bundle_probe(tiny, capsys):
    assert main(["train", "--train", str(tiny / "d.npz"), "-o", str(tiny / "run"), *TINY]) == 0
    assert main(["convert", str(tiny / "d.npz"), "-o", str(tiny / "d.cxi"), "--energy-ev", "8000",
                 "--distance-m", "2", "--detector-pixel-m", "75e-6"]) == 0
    with h5py.File(tiny / "d.cxi", "a") as f:
        del f["entry_1/image_1"]
    assert main(["infer", "--model", str(tiny / "run"), "--data", str(tiny / "d.cxi"), "-o", str(tiny / "a"),
                 "--no-progress", "--device", "cpu"]) == 0
    assert main(["infer", "--model", str(tiny / "run"), "--data", str(tiny / "d.npz"), "-o", str(tiny / "b"),
                 "--no-progress", "--device", "cpu"]) == 0
    with np.load(tiny / "a" / "reconstruction.npz") as a, np.load(tiny / "b" / "reconstruction.npz") as b:
        np.testing.assert_allclose(a["object"], b["object"], atol=1e-5)  # same patterns, same positions
    from ptychopinn.inference.reconstruct import load_scan

    with pytest.raises(DataError, match="general-n64 reconstructs with the scan's own probe"):
        load_scan("general-n64", tiny / "d.cxi")  # the general model uses the probe: no placeholder
    assert main(["infer", "--model", "general-n64", "--data", str(tiny / "d.cxi"), "-o", str(tiny / "c"), "-q"]) == 2
    assert "own probe" in capsys.readouterr().err and not (tiny / "c").exists()


@needs_ptychi
def test_iterative_save_probe_then_train_probe_from(tiny):
    assert main(["iterative", "--data", str(tiny / "d.npz"), "-o", str(tiny / "it"), "--epochs", "3", "-q",
                 "--no-plot", "--device", "cpu", "--save-probe", str(tiny / "probe.npz")]) == 0
    with np.load(tiny / "probe.npz") as z, np.load(tiny / "it" / "ptychi_reconstruction.npz") as r:
        np.testing.assert_array_equal(z["probeGuess"], r["reconstructed_probe"])
        meta = json.loads(str(z["_metadata"]))
    assert meta["probe_source"].startswith("pty-chi LSQML 3 epochs")
    assert main(["train", "--train", str(tiny / "d.npz"), "-o", str(tiny / "run"), *TINY,
                 "--probe-from", str(tiny / "probe.npz")]) == 0
    ds = load_dataset(tiny / "d.npz")
    assert not np.allclose(ds.probe, np.load(tiny / "probe.npz")["probeGuess"])  # the refinement moved it


@needs_ptychi
@pytest.mark.slow
def test_train_probe_from_ptychi_on_a_probe_less_cxi(tiny):
    assert main(["convert", str(tiny / "d.npz"), "-o", str(tiny / "d.cxi"), "--energy-ev", "8000",
                 "--distance-m", "2", "--detector-pixel-m", "75e-6"]) == 0
    with h5py.File(tiny / "d.cxi", "a") as f:
        del f["entry_1/image_1"]
    assert main(["train", "--train", str(tiny / "d.cxi"), "-o", str(tiny / "run"), *TINY]) == 2  # no probe
    assert main(["train", "--train", str(tiny / "d.cxi"), "-o", str(tiny / "run"), *TINY,
                 "--probe-from-ptychi", "3"]) == 0
    cfg = json.loads((tiny / "run" / "config.json").read_text())
    assert cfg["probe"]["source"].startswith("pty-chi LSQML 3 epochs on")
    assert "estimated" in cfg["probe"]["source"]
    with np.load(tiny / "run" / "ptychi_probe.npz") as z, np.load(tiny / "run" / "probe.npz") as b:
        np.testing.assert_array_equal(b["source_probe"], z["probeGuess"])


@needs_ptychi
@pytest.mark.slow
def test_simulated_cxi_with_approximate_probe_end_to_end(tmp_path):
    """Hand-written CXI (counts, metres) with an approximate probe -> train --probe-from-ptychi ->
    infer. Oracle: the known true probe; the refined probe must be much closer to it."""
    from scipy import ndimage

    from ptychopinn.data.simulate import SimulationConfig
    from ptychopinn.physics.probe import default_probe

    true = default_probe(32, defocus=3.0)
    np.savez(tmp_path / "true.npz", probeGuess=true)
    sim = simulate(SimulationConfig(n_images=96, N=32, object_size=72, nphotons=1e6, seed=4, object_kind="siemens",
                                    probe_from=str(tmp_path / "true.npz")))
    approx = ndimage.gaussian_filter(np.abs(sim.probe), 1.5).astype(np.complex64)  # phase lost, blurred
    dx = 6.62607015e-34 * 299792458.0 / (8000 * 1.602176634e-19) * 2.0 / (32 * 75e-6)
    t = np.zeros((sim.n_patterns, 3))
    t[:, 0], t[:, 1] = sim.xcoords * dx, sim.ycoords * dx
    with h5py.File(tmp_path / "scan.cxi", "w") as f:
        f["entry_1/data_1/data"] = np.rint(sim.diff3d.astype(np.float64) ** 2).astype(np.uint32)
        f["entry_1/sample_1/geometry_1/translation"] = t
        f["entry_1/instrument_1/source_1/energy"] = 8000 * 1.602176634e-19
        f["entry_1/instrument_1/detector_1/distance"] = 2.0
        f["entry_1/instrument_1/detector_1/x_pixel_size"] = 75e-6
        f["entry_1/instrument_1/detector_1/y_pixel_size"] = 75e-6
        f["entry_1/image_1/data"] = approx
    assert main(["train", "--train", str(tmp_path / "scan.cxi"), "-o", str(tmp_path / "run"), *TINY,
                 "--probe-from-ptychi", "15"]) == 0
    assert main(["infer", "--model", str(tmp_path / "run"), "--data", str(tmp_path / "scan.cxi"),
                 "-o", str(tmp_path / "rec"), "--no-progress", "--device", "cpu"]) == 0

    def err(p):
        q = p * np.vdot(p, sim.probe) / np.vdot(p, p)
        return float(np.linalg.norm(q - sim.probe) / np.linalg.norm(sim.probe))

    refined = np.load(tmp_path / "run" / "ptychi_probe.npz")["probeGuess"]
    assert err(refined) < 0.8 * err(approx), (err(refined), err(approx))
    with np.load(tmp_path / "rec" / "reconstruction.npz") as z:
        assert np.isfinite(z["object"]).all() and z["object"].shape[0] > 32
