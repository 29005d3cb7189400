"""Telemetry of a real (tiny) simulate -> train -> infer -> compare run, validated against the
schema; a run whose input normalisation is applied twice is caught at grouped_X_full."""

import dataclasses
import json

import numpy as np
import pytest

from ptychopinn.cli.main import main
from ptychopinn.telemetry.recorder import validate_telemetry

pytestmark = pytest.mark.slow


def _pipeline(tmp_path, name, sim, pipeline=()):
    tel = tmp_path / f"{name}.json"
    run, rec, cmp = tmp_path / f"{name}_run", tmp_path / f"{name}_rec", tmp_path / f"{name}_cmp"
    assert main(["train", "--train", str(sim), "-o", str(run), "--epochs", "1", "--n-filters-scale", "1",
                 "--quiet", "--telemetry", str(tel), "--scenario", "gs1_tiny", *pipeline]) == 0
    assert main(["infer", "--model", str(run), "--data", str(sim), "-o", str(rec), "--no-progress",
                 "--telemetry", str(tel)]) == 0
    assert main(["compare", "--data", str(sim), "--recon", f"PtychoPINN={rec / 'reconstruction.npz'}",
                 "-o", str(cmp), "--no-plot", "--telemetry", str(tel)]) == 0
    return tel


def test_pipeline_telemetry_validates_and_parity_diff_finds_double_normalisation(tmp_path, monkeypatch, capsys):
    sim = tmp_path / "sim.npz"
    tel0 = tmp_path / "clean.json"
    assert main(["simulate", "-o", str(sim), "--n-images", "120", "--N", "32", "--object-size", "72",
                 "--nphotons", "1e6", "--scan", "jitter", "--telemetry", str(tel0)]) == 0
    tel0.rename(tmp_path / "sim_only.json")
    clean = _pipeline(tmp_path, "clean", sim, ("--pipeline", "sim_lines_4x"))
    doc = json.loads(clean.read_text())
    assert validate_telemetry(doc) is None
    assert doc["pipeline"] == "sim_lines_4x"  # set by train, kept by infer and compare
    # optional stages whose data exist: X[groups] before normalisation, and the intensity labels,
    # whose mean is E[Y_amp^2] = std^2 + mean^2 of the amplitude labels (population std)
    st = {s["name"]: s["stats"] for s in doc["intensity_stages"]}
    assert st["pre_normalization_diffraction"] == st["grouped_diffraction"]
    ya = st["training_labels_Y_amp"]
    assert st["training_labels_Y_I"]["mean"] == pytest.approx(ya["std"] ** 2 + ya["mean"] ** 2, rel=1e-4)
    names = [s["name"] for s in doc["intensity_stages"]]
    for stage in ("raw_diffraction", "grouped_diffraction", "grouped_X_full", "container_X",
                  "training_labels_Y_amp", "inference_prediction"):
        assert stage in names
    assert doc["training"]["epochs_completed"] == 1 and doc["inference"] and doc["comparison"]
    assert doc["intensity_scale"]["used_mode"] == "dataset_derived"
    # seed 003 names: scenario, loss weights, the stitched arrays, the probe normalisation block
    assert doc["scenario"] == "gs1_tiny"
    assert doc["configuration"]["loss_weights"] == {"nll_weight": 1.0, "mae_weight": 0.0,
                                                    "realspace_weight": 0.0, "tv_weight": 0.0}
    art = doc["inference"]["artifacts"]
    with np.load(art["reconstruction_npz"]) as z:
        np.testing.assert_array_equal(np.load(art["amplitude_npy"]), z["amplitude"])
        np.testing.assert_array_equal(np.load(art["phase_npy"]), z["phase"])
    norm = doc["probe"]["normalization"]
    assert norm["method"] == "normalise_probe_energy" and norm["probe_scale"] == 16.0  # N/2 at N = 32
    assert norm["probe_mask"] is False and norm["mask_stats"] is None and isinstance(norm["probe_big"], bool)
    post = doc["probe"]["post_normalization"]
    assert post["energy"] == pytest.approx(16.0 ** 2, rel=1e-6)  # sum|P|^2 = (N/2)^2
    assert post["amplitude"]["l2_norm"] == pytest.approx(norm["probe_scale"], rel=1e-6)
    # the normalised stage really is X * r: its mean over the raw mean is r = 1/s
    st = {s["name"]: s["stats"] for s in doc["intensity_stages"]}
    with np.load(sim) as z:  # r from the data file, computed here (not read back from the telemetry)
        d = z["diff3d"].astype(np.float64)
    r = np.sqrt((d.shape[-1] / 2) ** 2 / np.mean(np.sum(d * d, axis=(1, 2))))
    assert 1.0 / doc["intensity_scale"]["dataset_derived"]["computed_scale"] == pytest.approx(r, rel=1e-12)
    assert st["grouped_X_full"]["mean"] / st["grouped_diffraction"]["mean"] == pytest.approx(r, rel=1e-6)

    # same data, input normalisation deliberately applied twice (x = X r r)
    import ptychopinn.training.trainer as tr

    real = tr.choose_intensity_scale

    def twice(*a, **k):
        sc = real(*a, **k)
        return dataclasses.replace(sc, input_scale=sc.input_scale ** 2)

    monkeypatch.setattr(tr, "choose_intensity_scale", twice)
    broken = _pipeline(tmp_path, "broken", sim)
    assert validate_telemetry(json.loads(broken.read_text())) is None
    assert json.loads(broken.read_text())["pipeline"] == "ptychopinn"  # the default of a new file
    capsys.readouterr()
    assert main(["parity-diff", str(clean), str(broken)]) == 1
    out = capsys.readouterr().out
    assert "first divergent stage: grouped_x_full" in out.lower()
    assert main(["parity-diff", str(clean), str(clean)]) == 0
