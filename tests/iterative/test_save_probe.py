"""``iterative.save_probe``: the refined probe NPZ with its record, from Python (no pty-chi run:
a stand-in result; oracle: the NPZ read with plain numpy and through load_dataset's probe_from)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np

from ptychopinn.data.contract import load_dataset
from ptychopinn.data.cxi import InputOptions
from ptychopinn.data.simulate import simulate
from ptychopinn.iterative import PtychiConfig, save_probe


def test_save_probe_writes_the_probe_and_its_record(tmp_path):
    ds = simulate(n_images=8, N=16, object_size=40, nphotons=1e4, seed=1)
    ds.save(tmp_path / "d.npz")
    ds = load_dataset(tmp_path / "d.npz")
    probe = (np.arange(256).reshape(16, 16) * np.exp(0.2j)).astype(np.complex64)
    result = SimpleNamespace(probe=probe, loss_history=np.array([3.0, 2.5]), computation_time_seconds=1.5)
    save_probe(tmp_path / "p.npz", result, ds, PtychiConfig(algorithm="DM", epochs=2), name="scan.npz")
    with np.load(tmp_path / "p.npz") as z:
        np.testing.assert_array_equal(z["probeGuess"], probe)
        meta = json.loads(str(z["_metadata"]))
    assert meta["probe_source"] == "pty-chi DM 2 epochs on scan.npz"
    assert meta["initial_probe"] == "scan.npz: probeGuess"
    assert meta["seconds"] == 1.5 and meta["final_loss"] == 2.5
    back = load_dataset(tmp_path / "d.npz", options=InputOptions(probe_from=str(tmp_path / "p.npz")))
    np.testing.assert_array_equal(back.probe, probe)
