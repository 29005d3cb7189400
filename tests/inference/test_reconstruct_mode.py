"""``ptychopinn reconstruct``: fit on the scan itself, from scratch and from a bundle."""

from __future__ import annotations

import json

import numpy as np

from ptychopinn.cli.main import main
from ptychopinn.data.simulate import simulate


def test_reconstruct_command_fits_and_writes_a_reconstruction(tmp_path) -> None:
    data = tmp_path / "scan.npz"
    simulate(n_images=80, N=32, object_size=64, nphotons=1e6, seed=2).save(data)
    out = tmp_path / "fit"
    assert main(["reconstruct", str(data), "-o", str(out), "--epochs", "1", "--threads", "1", "-q"]) == 0
    with np.load(out / "reconstruction.npz", allow_pickle=False) as z:
        assert np.isfinite(z["object"]).all() and np.abs(z["object"]).max() > 0
    cfg = json.loads((out / "model" / "config.json").read_text())
    assert cfg["model"]["gridsize"] == 2 and cfg["init_from"] is None
    out2 = tmp_path / "fine"
    assert main(["reconstruct", str(data), "-o", str(out2), "--epochs", "1", "--from-bundle", str(out / "model"),
                 "--threads", "1", "-q"]) == 0
    cfg2 = json.loads((out2 / "model" / "config.json").read_text())
    assert cfg2["init_from"]["path"] == str(out / "model")
    assert main(["reconstruct", str(data), "-o", str(out2), "--epochs", "1", "-q"]) == 2  # exists: --overwrite
