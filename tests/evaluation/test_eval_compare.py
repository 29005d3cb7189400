"""``compare`` library function and ``ptychopinn compare`` CLI on a tiny synthetic dataset."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import ndimage

from ptychopinn.cli.main import main
from ptychopinn.data.contract import PtychoDataset
from ptychopinn.errors import ConfigError, DataError
from ptychopinn.evaluation.compare import CompareConfig, compare, load_reconstruction

N = 32


def _object(n=96, seed=0):
    rng = np.random.default_rng(seed)
    amp = 0.8 + 0.15 * ndimage.gaussian_filter(rng.standard_normal((n, n)), 2.0, mode="wrap") / 0.15
    ph = 0.6 * ndimage.gaussian_filter(rng.standard_normal((n, n)), 3.0, mode="wrap") / 0.094
    return (amp * np.exp(1j * ph)).astype(np.complex128)


@pytest.fixture()
def dataset(tmp_path):
    obj = _object()
    c = np.array([28.0, 48.0, 68.0])
    yy, xx = np.meshgrid(c, c, indexing="ij")
    m = yy.size
    ds = PtychoDataset(
        diff3d=np.ones((m, N, N), np.float32), probe=np.ones((N, N), np.complex64),
        xcoords=xx.ravel(), ycoords=yy.ravel(), object=obj,
    )
    path = tmp_path / "test.npz"
    ds.save(path)
    return path, obj


def _write_recons(tmp_path, obj):
    # our format: an exact crop of the ground truth at a known origin
    crop = obj[20:80, 18:78]
    ours = tmp_path / "reconstruction.npz"
    np.savez(ours, object=crop.astype(np.complex64), amplitude=np.abs(crop).astype(np.float32),
             phase=np.angle(crop).astype(np.float32), origin=np.array([20.0, 18.0]))
    # pty-chi format: full frame, displaced by (0.4, -0.6) px, scaled 0.8, phase offset 0.5
    ky = np.fft.fftfreq(obj.shape[0])[:, None]
    kx = np.fft.fftfreq(obj.shape[1])[None, :]
    moved = np.fft.ifft2(np.fft.fft2(obj) * np.exp(-2j * np.pi * (ky * 0.4 + kx * -0.6)))
    ptychi = tmp_path / "ptychi_reconstruction.npz"
    np.savez(ptychi, reconstructed_object=(0.8 * np.exp(0.5j) * moved)[None].astype(np.complex64))
    return ours, ptychi


def _read_metrics(path):
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return {(r["model"], r["metric"]): (float(r["amplitude"]), float(r["phase"])) for r in rows}, rows


def test_cli_compare_writes_outputs_and_scores_perfect_arm(dataset, tmp_path, capsys):
    data, obj = dataset
    ours, ptychi = _write_recons(tmp_path, obj)
    out = tmp_path / "cmp"
    rc = main(["compare", "--data", str(data), "--recon", f"PtychoPINN={ours}",
               "--recon", f"PtyChi={ptychi}", "-o", str(out)])
    assert rc == 0
    for name in ("comparison_metrics.csv", "frc_curves.csv", "reconstructions_aligned.npz",
                 "comparison_plot.png", "comparison.json"):
        assert (out / name).is_file(), name
    metrics, rows = _read_metrics(out / "comparison_metrics.csv")
    assert list(rows[0]) == ["model", "metric", "amplitude", "phase"]
    assert {r["model"] for r in rows} == {"PtychoPINN", "PtyChi"}
    for comp in (0, 1):
        assert metrics[("PtychoPINN", "ssim")][comp] == pytest.approx(1.0, abs=1e-5)
        assert metrics[("PtychoPINN", "ms_ssim")][comp] == pytest.approx(1.0, abs=1e-5)
        assert metrics[("PtychoPINN", "mae")][comp] == pytest.approx(0.0, abs=1e-5)
        assert metrics[("PtyChi", "ssim")][comp] > 0.95
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["scanned_region_y0_y1_x0_x1"] == [28, 69, 28, 69]
    al = summary["models"]["PtyChi"]["alignment"]
    assert al["shift_yx"] == [pytest.approx(-0.4, abs=0.05), pytest.approx(0.6, abs=0.05)]
    assert al["amplitude_scale"] == pytest.approx(1.25, rel=0.01)
    assert al["phase_offset"] == pytest.approx(-0.5, abs=0.01)
    assert summary["rim"] == 3 and summary["scored_shape"] == [35, 35]
    z = np.load(out / "reconstructions_aligned.npz")
    for key in ("ground_truth_amplitude", "ground_truth_phase", "PtychoPINN_amplitude", "PtychoPINN_phase",
                "PtyChi_amplitude", "PtyChi_phase"):
        assert z[key].shape == (35, 35)
    assert np.allclose(z["ground_truth_amplitude"], np.abs(obj[31:66, 31:66]), atol=1e-6)
    with open(out / "frc_curves.csv") as fh:
        frows = list(csv.DictReader(fh))
    assert list(frows[0]) == ["model", "component", "frequency", "frc"]
    assert {(r["model"], r["component"]) for r in frows} == {
        (m, c) for m in ("PtychoPINN", "PtyChi") for c in ("amplitude", "phase")}
    assert "PtychoPINN" in capsys.readouterr().out


def test_compare_library_with_arrays_and_legacy_psnr(dataset, tmp_path):
    data, obj = dataset
    res = compare(str(data), {"Baseline": (obj[10:90, 10:90] * 2.0, (10.0, 10.0))}, tmp_path / "o",
                  psnr_convention="legacy255", plot=False, register=False)
    assert res.alignments["Baseline"].amplitude_scale == pytest.approx(0.5, rel=1e-12)
    m = res.metrics["Baseline"]["amplitude"]
    assert "psnr_legacy255" in m and "psnr" not in m
    metrics, _ = _read_metrics(tmp_path / "o" / "comparison_metrics.csv")
    assert metrics[("Baseline", "psnr_legacy255")][0] == float("inf")
    assert not (tmp_path / "o" / "comparison_plot.png").exists()
    assert res.alignments["Baseline"].crop_box == (28, 69, 28, 69)


def test_bad_recon_file_is_one_line_error_and_writes_nothing(dataset, tmp_path, capsys):
    data, _ = dataset
    bad = tmp_path / "bad.npz"
    np.savez(bad, something=np.zeros((4, 4)))
    out = tmp_path / "cmp"
    rc = main(["compare", "--data", str(data), "--recon", f"PtychoPINN={bad}", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "bad.npz" in err and "object" in err
    assert not out.exists()
    rc = main(["compare", "--data", str(data), "--recon", str(bad), "-o", str(out)])
    assert rc == 2 and "LABEL=PATH" in capsys.readouterr().err


def test_non_overlapping_canvas_and_missing_ground_truth(dataset, tmp_path):
    data, obj = dataset
    with pytest.raises(DataError, match="origin"):
        compare(str(data), {"PtyChi": (obj[:20, :20], (0.0, 0.0))}, tmp_path / "x")
    ds = PtychoDataset(diff3d=np.ones((1, N, N), np.float32), probe=np.ones((N, N), np.complex64),
                       xcoords=np.array([48.0]), ycoords=np.array([48.0]))
    with pytest.raises(DataError, match="objectGuess"):
        compare(ds, {"PtyChi": obj}, tmp_path / "y")
    with pytest.raises(ConfigError):
        compare(str(data), {"ground_truth": obj}, tmp_path / "z")
    with pytest.raises(ConfigError):
        CompareConfig(psnr_convention="opencv")
    nan_outside = obj.copy()
    nan_outside[:5] = np.nan  # outside the scanned region: allowed
    assert compare(str(data), {"PtyChi": nan_outside}, tmp_path / "ok", plot=False).metrics["PtyChi"]
    nan_inside = obj.copy()
    nan_inside[40, 40] = np.nan
    with pytest.raises(DataError, match="NaN"):
        compare(str(data), {"PtyChi": nan_inside}, tmp_path / "w")
    with pytest.raises(DataError, match="2-D"):
        load_reconstruction(np.zeros((2, 4, 4)), "PtyChi")
    assert not any((tmp_path / d).exists() for d in ("w", "x", "y", "z"))


def test_config_round_trip():
    cfg = CompareConfig(psnr_convention="legacy255", phase_plane=True, rim=4)
    assert CompareConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError):
        CompareConfig.from_dict({"nope": 1})
