"""Dose-response study (seed 001) on the quick preset."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from ptychopinn.cli.main import main
from ptychopinn.studies import _common as C
from ptychopinn.studies.dose_response import (
    PRESETS,
    SUMMARY_FILES,
    DoseResponseConfig,
    dose_comparison_figure,
    dose_gain,
)

ARMS = ("high_nll", "high_mae", "low_nll", "low_mae")
pytestmark = pytest.mark.slow


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_file_exists_and_parses(dose_response_quick):
    root, _ = dose_response_quick
    for name in SUMMARY_FILES:
        assert (root / name).is_file(), name
    assert not (root / "dose_gain.png").exists()  # two doses: no sweep figure
    import matplotlib.image as mpimg

    for png in ("dose_comparison.png", "frc_curves.png"):
        img = mpimg.imread(root / png)
        assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 200 and img.std() > 0
    for arm in ARMS:  # every arm is a bundle under DIR/<arm>/, reconstructed from disk
        for f in ("model.safetensors", "config.json", "probe.npz", "history.json"):
            assert (root / arm / f).is_file()
        with np.load(root / "infer" / arm / "reconstruction.npz") as z:
            amp = z["amplitude"]
            assert amp.ndim == 2 and amp.size > 0 and np.all(np.isfinite(amp)) and amp.max() > 0
    rows = _rows(root / "metrics.csv")
    assert set(rows[0]) == {"arm", "metric", "amplitude", "phase"}
    assert {r["arm"] for r in rows} == set(ARMS)
    ssim = {r["arm"]: float(r["amplitude"]) for r in rows if r["metric"] == "ssim"}
    assert all(-1 <= v <= 1 for v in ssim.values())
    md = (root / "summary.md").read_text()
    assert all(a in md for a in ARMS) and "RMS amplitude ratio" in md


def test_sanity_ratio_is_sqrt_of_dose_ratio(dose_response_quick):
    root, _ = dose_response_quick
    cfg = PRESETS["quick"]
    z = {t: np.load(root / "data" / t / "train.npz") for t in ("high", "low")}
    rms = {t: float(np.sqrt(np.mean(z[t]["diff3d"].astype(np.float64) ** 2))) for t in z}
    expected = math.sqrt(max(cfg.doses) / min(cfg.doses))
    assert abs(rms["high"] / rms["low"] / expected - 1) < 0.02
    s = json.loads((root / "sanity.json").read_text())
    assert s["rms_amplitude_ratio_high_over_low"] == pytest.approx(rms["high"] / rms["low"], rel=1e-9)
    assert s["expected_sqrt_dose_ratio"] == pytest.approx(316.227766, rel=1e-6)
    # identical trajectories across doses; the noise differs
    np.testing.assert_array_equal(z["high"]["xcoords"], z["low"]["xcoords"])
    np.testing.assert_array_equal(z["high"]["ycoords"], z["low"]["ycoords"])
    assert s["identical_trajectories_across_doses"] is True
    # amplitude-only ground truth in [0.5, 1.5]
    obj = z["high"]["objectGuess"]
    assert np.all(obj.imag == 0) and obj.real.min() >= 0.5 - 1e-12 and obj.real.max() <= 1.5 + 1e-12


def test_training_history_and_convergence_flags(dose_response_quick):
    root, _ = dose_response_quick
    th = json.loads((root / "training_history.json").read_text())
    summary = json.loads((root / "summary.json").read_text())
    assert set(th) == set(ARMS)
    for arm in ARMS:
        hist = json.loads((root / arm / "history.json").read_text())  # the trainer's own record
        assert th[arm]["train_loss"] == [h["train_loss"] for h in hist]
        assert th[arm]["val_loss"] == [h["val_loss"] for h in hist]
        assert len(hist) == PRESETS["quick"].epochs
        f = summary["training"][arm]
        assert f["loss_fell"] == (hist[-1]["train_loss"] < hist[0]["train_loss"])
        # 2 epochs cannot show a 5-epoch plateau: never called converged, and the summary says so
        assert arm in summary["not_converged"] and f["converged"] is False
        assert f["convergence"]["epochs"] == 2 and "needs at least 6" in f["convergence"]["reason"]
        assert f["convergence"]["deviance_ratio"] == pytest.approx(hist[-1]["diagnostics"]["deviance_ratio"])
    md = (root / "summary.md").read_text()
    assert md.count("NOT converged") == len(ARMS) and "training protocol 'modern'" in md


def test_dose_comparison_has_the_seeds_six_panels(dose_response_quick):
    root, _ = dose_response_quick
    cfg = PRESETS["quick"]
    metrics = json.loads((root / "summary.json").read_text())["metrics"]
    fig = dose_comparison_figure(root, cfg, metrics)
    assert C.image_panels(fig) == 6
    assert len(fig.axes) == 12  # a colour bar per panel
    diff = [ax for ax in fig.axes if ax.images and "diffraction" in ax.get_title()]
    assert len(diff) == 2 and diff[0].images[0].get_clim() == diff[1].images[0].get_clim()  # one shared range
    titles = [ax.get_title() for ax in fig.axes]  # metrics in the panel titles (package plotting style)
    assert sum("SSIM" in t and "PSNR" in t and "FRC50" in t for t in titles) == 4
    assert "1e+09" in fig.get_suptitle() and "1e+04" in fig.get_suptitle() and "epochs" in fig.get_suptitle()


def test_dose_gain_ratio_on_a_known_grid():
    # MAE reaches FRC50 0.1*log10(d) - 0.2; NLL reaches MAE's value at 10x lower dose
    cfg = DoseResponseConfig(doses=(1e3, 1e4, 1e5, 1e6), N=32, object_size=64)
    metrics = {}
    for d in cfg.doses:
        t = f"p1e{round(math.log10(d))}"
        for loss, shift in (("mae", -0.2), ("nll", -0.1)):
            v = 0.1 * math.log10(d) + shift
            metrics[f"{t}_{loss}"] = {"frc50": {"amplitude": v}, "ssim": {"amplitude": v}}
    g = dose_gain(cfg, metrics)
    r = g["mae_dose_ratio_to_match_nll_frc50"]
    assert [r[k] for k in ("1e+03", "1e+04", "1e+05")] == pytest.approx([10.0, 10.0, 10.0])
    assert math.isnan(r["1e+06"])  # NLL's FRC50 there is beyond MAE's best on this grid


def test_dose_sweep_writes_dose_gain(tmp_path):
    out = tmp_path / "sweep"
    assert main(["study", "dose-response", "-o", str(out), "--preset", "quick", "--doses", "1e3,1e4,1e5",
                 "--epochs", "1", "--quiet"]) == 0
    g = json.loads((out / "dose_gain.json").read_text())
    assert g["doses"] == [1e3, 1e4, 1e5] and set(g["curves"]) == {"nll", "mae"}
    summary = json.loads((out / "summary.json").read_text())  # per-dose convergence, as summary.md calls it
    assert g["converged"]["nll"] == [summary["training"][f"p1e{k}_nll"]["converged"] for k in (3, 4, 5)]
    # independent oracle: the rule never calls an arm converged on fewer than 6 epochs (this run has 1)
    assert g["converged"] == {"nll": [False] * 3, "mae": [False] * 3}
    assert (out / "dose_gain.png").is_file() and (out / "p1e3_nll" / "model.safetensors").is_file()
    arms = {r["arm"] for r in _rows(out / "metrics.csv")}
    assert arms == {f"p1e{k}_{loss}" for k in (3, 4, 5) for loss in ("nll", "mae")}
    s = json.loads((out / "sanity.json").read_text())
    assert abs(s["rms_amplitude_ratio_high_over_low"] / 10.0 - 1) < 0.02  # sqrt(1e5 / 1e3)


def test_dry_run_lists_what_would_be_reused_and_changes_nothing(dose_response_quick, capsys):
    root, _ = dose_response_quick
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert main(["study", "dose-response", "-o", str(root), "--preset", "quick", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "0 jobs to run, 14 to reuse" in out
    assert main(["study", "dose-response", "-o", str(root), "--preset", "quick", "--epochs", "3", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    plan = {line.split()[1]: line.split()[0] for line in lines[:-1]}
    assert {k for k, v in plan.items() if v == "reuse"} == {"data/high", "data/low", "sanity"}
    assert plan["high_nll"] == "run" and "high_nll  [GPU]" in "\n".join(lines)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()} == before


def test_seed_preset_draws_the_seeds_400_lines_and_trains_by_the_seed_protocol():
    from ptychopinn.studies.dose_response import build_jobs, ground_truth

    cfg = PRESETS["seed"]
    assert cfg.n_lines == 400 and cfg.protocol == "seed" and cfg.epochs == 50
    jobs = {j.id: j for j in build_jobs(cfg)}
    assert jobs["data/high"].params["n_lines"] == 400
    t, m = jobs["high_nll"].params["training"], jobs["high_nll"].params["model"]
    assert (t["protocol"], t["patience"], t["val_fraction"], t["restore_best"], t["epochs"]) == ("seed", 0, 0.0, False, 50)
    assert m["intensity_scale_trainable"] is True
    # more lines cover more of the object: the fraction of pixels above the amplitude midpoint grows
    few, _ = ground_truth(32, 128, 0)
    many, _ = ground_truth(32, 128, 0, n_lines=400)
    assert not np.array_equal(few, many)
    assert np.mean(np.abs(many) > 1.0) > np.mean(np.abs(few) > 1.0)


def test_study_arms_train_todays_network_with_the_chosen_norm():
    """A study's model dict is not a legacy bundle: its PINN arms get the library's default network
    (the unet), not the 'classic' that ModelConfig.from_dict assumes for bundles without 'arch'."""
    import dataclasses

    from ptychopinn.model.config import ModelConfig
    from ptychopinn.studies.dose_response import build_jobs

    assert ModelConfig().arch == "unet"
    jobs = {j.id: j for j in build_jobs(dataclasses.replace(PRESETS["seed"], norm="group"))}
    for arm in ("high_nll", "high_mae", "low_nll", "low_mae"):
        assert jobs[arm].params["model"]["arch"] == "unet"
        assert jobs[arm].params["model"]["norm"] == "group"
