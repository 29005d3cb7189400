"""D0 parity logger (seed 004): pure helpers against numpy / hand-computed oracles, CLI outputs,
exit codes and the scripts/tools wrapper."""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ptychopinn.cli.main import main as cli_main
from ptychopinn.errors import DataError, DependencyError
from ptychopinn.telemetry.parity_log import (
    git_sha,
    load_params,
    parse_photon_dose,
    sha256_file,
    summarize_array,
    summarize_grouped,
    summarize_probe,
)

REPO = Path(__file__).resolve().parents[2]
DOSES = ("1e3", "1e6", "1e9")
M, N = 50, 16
OUTPUTS = ("dose_parity_log.json", "dose_parity_log.md", "probe_stats.csv")


def _probe(n: int = N) -> np.ndarray:
    y, x = np.mgrid[:n, :n] - n // 2
    return (np.exp(-(x**2 + y**2) / (2 * 3.0**2)) * np.exp(1j * 0.05 * (x**2 + y**2))).astype(np.complex128)


def _write_dataset(path: Path, dose: float, seed: int, key: str = "diff3d") -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    probe = _probe()
    far = np.fft.fftshift(np.fft.fft2(probe))
    inten = np.abs(far) ** 2
    inten = inten / inten.sum() * dose
    counts = rng.poisson(np.broadcast_to(inten, (M, N, N)))
    diff = np.sqrt(counts).astype(np.float32)
    scan_index = np.repeat(np.arange(10), 5)[rng.permutation(M)].astype(np.int64)  # 10 scans x 5
    xc = rng.uniform(10, 20, M)
    arrays = {
        key: diff, "probeGuess": probe, "objectGuess": np.ones((40, 40), np.complex128),
        "xcoords": xc, "ycoords": xc[::-1].copy(), "xcoords_start": xc, "ycoords_start": xc[::-1].copy(),
        "scan_index": scan_index, "_metadata": np.array(json.dumps({"nphotons": dose})),
    }
    np.savez(path, **arrays)
    return arrays


def _write_params(path: Path) -> dict:
    import dill

    params = {
        "N": 16, "gridsize": 1, "nimgs_train": 9, "nimgs_test": 3, "batch_size": 16, "nepochs": 50,
        "mae_weight": 0.0, "nll_weight": 1.0, "realspace_weight": np.float64(0.0),
        "probe.trainable": False, "probe.mask": np.bool_(False), "intensity_scale.trainable": True,
        "intensity_scale": np.float32(988.21), "timestamp": "08/26/2025, 16:38:17", "label": "baseline_gs1",
        "nphotons": 1e9, "default_probe_scale": 0.7,
        "mae": (0.00956, 5.38e-07), "ms_ssim": (np.float64(0.9248), np.float64(0.9206)),
        "psnr": np.array([71.32, 158.06]), "mse": [0.0048, 1.02e-11], "frc50": (np.int64(12), np.int64(30)),
        "probe": np.zeros((64, 64), np.complex64), "c": 1 + 2j,
    }
    with open(path, "wb") as fh:
        dill.dump(params, fh)
    return params


@pytest.fixture
def grid(tmp_path: Path) -> Path:
    root = tmp_path / "photon_grid"
    root.mkdir()
    for i, d in enumerate(DOSES):
        _write_dataset(root / f"data_p{d}.npz", float(d), seed=i)
    (root / "notes.txt").write_text("not a dataset")
    (root / "other.npz").write_bytes(b"not matched by the data_p*.npz glob")
    _write_params(tmp_path / "params.dill")
    return root


def _run(*argv: str) -> int:
    return cli_main(["parity-log", *argv])


# ---------------------------------------------------------------------------------------------
# pure helpers
# ---------------------------------------------------------------------------------------------
def test_sha256_file_known_vector(tmp_path: Path) -> None:
    p = tmp_path / "abc.bin"
    p.write_bytes(b"abc")
    assert sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    big = tmp_path / "big.bin"
    payload = bytes(range(256)) * 5000
    big.write_bytes(payload)
    assert sha256_file(big, chunk_size=777) == hashlib.sha256(payload).hexdigest()


def test_git_sha_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # git must not look above tmp_path
    assert git_sha(tmp_path) == "unknown"


def test_parse_photon_dose() -> None:
    assert parse_photon_dose("data_p1e5.npz") == 1e5
    assert parse_photon_dose("/x/y/data_p5e4.npz") == 5e4
    assert parse_photon_dose("data_p2.5e+3.npz") == 2500.0
    assert parse_photon_dose("data_p1000.npz") == 1000.0
    assert parse_photon_dose("train.npz") is None
    assert parse_photon_dose("data_p1e5.npz.bak") is None


def test_summarize_array_percentiles_analytic() -> None:
    a = np.arange(101, dtype=np.float32).reshape(1, 101)  # p-th percentile of 0..100 is p
    s = summarize_array(a)
    assert list(s) == ["min", "max", "mean", "std", "median", "p01", "p10", "p90", "p99", "nonzero_fraction"]
    assert (s["min"], s["max"], s["median"], s["p01"], s["p10"], s["p90"], s["p99"]) == (0, 100, 50, 1, 10, 90, 99)
    assert s["mean"] == pytest.approx(50.0)
    assert s["std"] == pytest.approx(np.sqrt((101**2 - 1) / 12.0))  # population std of 0..n-1
    assert s["nonzero_fraction"] == pytest.approx(100 / 101)
    z = summarize_array(np.array([[0.0, 0.0], [1.0, 2.0]]))
    assert z["nonzero_fraction"] == 0.5
    assert z["median"] == 0.5 and z["mean"] == 0.75


def test_summarize_array_matches_numpy_chunked() -> None:
    rng = np.random.default_rng(3)
    a = rng.gamma(2.0, 3.0, size=(7, 9, 11)).astype(np.float32)
    a[a < 2.0] = 0.0
    ref = a.astype(np.float64).ravel()
    s = summarize_array(a, chunk_elems=50)  # many chunks, last one partial
    q = np.percentile(ref, [1, 10, 50, 90, 99])
    got = [s[k] for k in ("p01", "p10", "median", "p90", "p99")]
    np.testing.assert_allclose(got, q, rtol=1e-6)
    assert s["mean"] == pytest.approx(ref.mean(), rel=1e-12)
    assert s["std"] == pytest.approx(ref.std(), rel=1e-10)
    assert s["nonzero_fraction"] == pytest.approx(np.mean(ref != 0))
    assert (s["min"], s["max"]) == (0.0, pytest.approx(ref.max()))
    with pytest.raises(DataError):
        summarize_array(np.zeros((0, 3)))
    with pytest.raises(DataError):
        summarize_array(np.ones(3, complex))


def test_summarize_grouped_repeated_scan_indices() -> None:
    # frame i is constant c_i, so its pixel mean is c_i
    c = np.array([1.0, 3.0, 10.0, 2.0, 4.0, 6.0, 7.0])
    si = np.array([5, 5, 9, 2, 2, 2, 9])
    diff = np.broadcast_to(c[:, None, None], (7, 3, 3)).astype(np.float32)
    g = summarize_grouped(diff, si)
    # by hand: scan 2 -> (2+4+6)/3 = 4 ; scan 5 -> (1+3)/2 = 2 ; scan 9 -> (10+7)/2 = 8.5
    per_scan = np.array([4.0, 2.0, 8.5])
    assert g["n_unique_scans"] == 3 and g["n_patterns"] == 7
    assert (g["patterns_per_scan_min"], g["patterns_per_scan_max"]) == (2, 3)
    assert g["min"] == 2.0 and g["max"] == 8.5 and g["median"] == 4.0
    assert g["mean"] == pytest.approx(14.5 / 3)
    assert g["std"] == pytest.approx(np.sqrt(np.mean((per_scan - 14.5 / 3) ** 2)))
    assert g["p10"] == pytest.approx(2.0 + 0.2 * 2.0)  # linear interpolation between 2 and 4
    # negative indices and float-stored integers are fine; a length mismatch is not
    g2 = summarize_grouped(diff, si.astype(np.float64) - 6)
    assert g2["n_unique_scans"] == 3 and g2["max"] == 8.5
    with pytest.raises(DataError):
        summarize_grouped(diff, si[:-1])


def test_summarize_probe_known_amplitude_and_phase() -> None:
    phi = np.linspace(-3.0, 3.0, 64).reshape(8, 8)
    probe = 2.0 * np.exp(1j * phi)
    s = summarize_probe(probe)
    assert s["shape"] == [8, 8] and s["dtype"] == "complex128"
    assert s["l2_norm"] == pytest.approx(2.0 * 8.0)
    for k in ("min", "max", "mean", "p01", "p50", "p99"):
        assert s["amplitude"][k] == pytest.approx(2.0)
    assert s["amplitude"]["std"] == pytest.approx(0.0, abs=1e-12)
    ph = s["phase"]
    assert ph["min"] == pytest.approx(-3.0) and ph["max"] == pytest.approx(3.0)
    assert ph["mean"] == pytest.approx(0.0, abs=1e-12)
    ref = np.percentile(phi.ravel(), [1, 5, 50, 95, 99])
    np.testing.assert_allclose([ph[k] for k in ("p01", "p05", "p50", "p95", "p99")], ref, rtol=1e-9, atol=1e-12)
    assert list(ph) == ["min", "max", "mean", "std", "p01", "p05", "p50", "p95", "p99"]


def test_load_params_plain_types(tmp_path: Path) -> None:
    _write_params(tmp_path / "params.dill")
    p = load_params(tmp_path / "params.dill")
    json.dumps(p)  # plain Python types only
    assert p["intensity_scale"] == pytest.approx(988.21, rel=1e-6)
    assert p["probe.mask"] is False and p["intensity_scale.trainable"] is True
    assert p["psnr"] == [71.32, 158.06] and p["frc50"] == [12, 30]
    assert p["probe"] == {"array_shape": [64, 64], "array_dtype": "complex64"}
    assert p["c"] == {"real": 1.0, "imag": 2.0}


def test_load_params_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "params.dill"
    bad.write_bytes(b"\x80\x04garbage, not a pickle")
    with pytest.raises(DataError, match="params.dill"):
        load_params(bad)
    with pytest.raises(DataError, match="not found"):
        load_params(tmp_path / "missing.dill")
    monkeypatch.setitem(sys.modules, "dill", None)  # import dill -> ImportError
    with pytest.raises(DependencyError, match="pip install dill"):
        load_params(bad)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def test_cli_emits_outputs(grid: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    params = tmp_path / "params.dill"
    rc = _run("--dataset-root", str(grid), "--baseline-params", str(params),
              "--scenario-id", "PGRID-TEST-P1E5", "--output", str(out))
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    log = json.loads((out / "dose_parity_log.json").read_text())

    md = log["metadata"]
    assert md["scenario_id"] == "PGRID-TEST-P1E5" and md["dataset_root"] == str(grid)
    assert md["baseline_params"] == str(params)
    assert md["timestamp"] and isinstance(md["git_sha"], str)
    assert md["git_sha"] == "unknown" or len(md["git_sha"]) == 40

    ds = log["datasets"]
    assert [d["filename"] for d in ds] == ["data_p1e3.npz", "data_p1e6.npz", "data_p1e9.npz"]
    assert [d["photon_dose"] for d in ds] == [1e3, 1e6, 1e9]
    for d in ds:
        f = grid / d["filename"]
        assert d["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
        assert d["size_bytes"] == f.stat().st_size
        assert d["arrays"]["diff3d"] == {"shape": [M, N, N], "dtype": "float32"}
        assert d["arrays"]["probeGuess"] == {"shape": [N, N], "dtype": "complex128"}
        assert d["arrays"]["scan_index"] == {"shape": [M], "dtype": "int64"}
        assert d["arrays"]["_metadata"]["shape"] == []
        with np.load(f) as z:
            x = z["diff3d"].astype(np.float64)
            si = z["scan_index"]
        raw = d["stage_stats"]["raw_diffraction"]
        np.testing.assert_allclose([raw["p01"], raw["p10"], raw["median"], raw["p90"], raw["p99"]],
                                   np.percentile(x, [1, 10, 50, 90, 99]), rtol=1e-6)
        assert raw["mean"] == pytest.approx(x.mean()) and raw["std"] == pytest.approx(x.std())
        assert raw["max"] == pytest.approx(x.max()) and raw["nonzero_fraction"] == pytest.approx(np.mean(x != 0))
        nrm = d["stage_stats"]["normalized_diffraction"]
        xn = x / (x.max() + 1e-12)
        assert nrm["max"] == pytest.approx(1.0, rel=1e-6)
        np.testing.assert_allclose([nrm["mean"], nrm["p90"], nrm["p99"]],
                                   [xn.mean(), *np.percentile(xn, [90, 99])], rtol=1e-5)
        grp = d["stage_stats"]["grouped_intensity"]
        per_scan = [x[si == k].mean() for k in np.unique(si)]  # equal-size groups: mean of frame means
        assert grp["n_unique_scans"] == 10 == d["grouped_counts"]["n_unique_scans"]
        assert d["grouped_counts"]["patterns_per_scan_min"] == d["grouped_counts"]["patterns_per_scan_max"] == 5
        assert grp["mean"] == pytest.approx(np.mean(per_scan)) and grp["max"] == pytest.approx(max(per_scan))
        pr = d["probe"]
        assert pr["l2_norm"] == pytest.approx(np.linalg.norm(_probe()))
        assert pr["amplitude"]["max"] == pytest.approx(1.0)
        assert pr["flags"] == {"probe.trainable": False, "probe.mask": False}
    # the dose is visible in the data: brighter files have larger raw means
    means = [d["stage_stats"]["raw_diffraction"]["mean"] for d in ds]
    assert means[0] < means[1] < means[2]

    ex = log["baseline"]["excerpt"]
    assert log["baseline"]["sha256"] == hashlib.sha256(params.read_bytes()).hexdigest()
    assert (ex["N"], ex["gridsize"], ex["nimgs_train"], ex["nimgs_test"], ex["batch_size"], ex["nepochs"]) == (
        16, 1, 9, 3, 16, 50)
    assert ex["loss_weights"] == {"mae_weight": 0.0, "nll_weight": 1.0, "realspace_weight": 0.0}
    assert ex["probe.trainable"] is False and ex["probe.mask"] is False
    assert ex["intensity_scale.trainable"] is True
    assert ex["intensity_scale_value"] == pytest.approx(988.21, rel=1e-6)
    assert ex["label"] == "baseline_gs1" and ex["timestamp"] == "08/26/2025, 16:38:17"
    assert ex["metrics"] == {"mae": [0.00956, 5.38e-07], "ms_ssim": [0.9248, 0.9206], "psnr": [71.32, 158.06],
                             "mse": [0.0048, 1.02e-11], "frc50": [12.0, 30.0]}
    assert ex["metrics_pair_order"] == ["train", "test"]

    text = (out / "dose_parity_log.md").read_text(encoding="utf-8")
    for needle in ("PGRID-TEST-P1E5", "Problem statement", "data_p1e6.npz", ds[1]["sha256"], "raw_diffraction",
                   "normalized_diffraction", "grouped_intensity", "| ms_ssim | 0.9248 | 0.9206 |", "988.21"):
        assert needle in text
    rows = list(csv.DictReader((out / "probe_stats.csv").read_text().splitlines()))
    assert len(rows) == 6 and {r["component"] for r in rows} == {"amplitude", "phase"}
    amp0 = next(r for r in rows if r["filename"] == "data_p1e3.npz" and r["component"] == "amplitude")
    assert float(amp0["p95"]) == ds[0]["probe"]["amplitude"]["p95"]
    assert float(amp0["l2_norm"]) == ds[0]["probe"]["l2_norm"]


def test_limit_datasets_filters_and_diffraction_alias(grid: Path, tmp_path: Path) -> None:
    _write_dataset(grid / "data_p1e4.npz", 1e4, seed=9, key="diffraction")
    out = tmp_path / "lim"
    assert _run("--dataset-root", str(grid), "--output", str(out),
                "--limit-datasets", " data_p1e9.npz, data_p1e4.npz ,data_p1e9.npz") == 0
    log = json.loads((out / "dose_parity_log.json").read_text())
    assert [d["filename"] for d in log["datasets"]] == ["data_p1e4.npz", "data_p1e9.npz"]
    assert log["datasets"][0]["diffraction_key"] == "diffraction"
    assert log["baseline"] is None and log["datasets"][0]["probe"]["flags"]["probe.trainable"] is None
    assert log["metadata"]["limit_datasets"] == ["data_p1e9.npz", "data_p1e4.npz"]
    # a listed file that does not exist is an input error naming it
    out2 = tmp_path / "lim2"
    assert _run("--dataset-root", str(grid), "--output", str(out2), "--limit-datasets", "data_p7e7.npz") == 2
    assert not out2.exists()


def test_no_dataset_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train.npz").write_bytes(b"")
    out = tmp_path / "out"
    assert _run("--dataset-root", str(empty), "--output", str(out)) == 1
    assert "no dataset found" in capsys.readouterr().err
    assert _run("--dataset-root", str(tmp_path / "missing"), "--output", str(out)) == 1
    assert not out.exists()


def test_corrupt_npz_exits_2_without_output(grid: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = grid / "data_p1e5.npz"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    out = tmp_path / "out"
    assert _run("--dataset-root", str(grid), "--output", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "data_p1e5.npz" in err
    assert not out.exists()


def test_object_array_refused_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "r"
    root.mkdir()
    arrays = _write_dataset(root / "data_p1e3.npz", 1e3, seed=0)
    np.savez(root / "data_p1e3.npz", **arrays, extra=np.array([{"a": 1}], dtype=object))
    out = tmp_path / "out"
    assert _run("--dataset-root", str(root), "--output", str(out)) == 2
    err = capsys.readouterr().err
    assert "extra" in err and "pickle" in err
    assert not out.exists()


def test_corrupt_params_exits_2_without_output(grid: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad_params.dill"
    bad.write_bytes(b"this is not a pickle")
    out = tmp_path / "out"
    out.mkdir()  # an existing output directory is left as it was
    assert _run("--dataset-root", str(grid), "--baseline-params", str(bad), "--output", str(out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad_params.dill" in err
    assert list(out.iterdir()) == []


def test_help_warns_about_unpickling(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["parity-log", "--help"])
    text = capsys.readouterr().out
    assert "unpickled" in text.lower() and "trust" in text.lower()


def test_script_wrapper_subprocess(grid: Path, tmp_path: Path) -> None:
    out = tmp_path / "script_out"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "tools" / "d0_parity_logger.py"), "--dataset-root", str(grid),
         "--baseline-params", str(tmp_path / "params.dill"), "--scenario-id", "S1", "--output", str(out),
         "--limit-datasets", "data_p1e3.npz"],
        check=False, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    log = json.loads((out / "dose_parity_log.json").read_text())
    assert log["metadata"]["scenario_id"] == "S1" and isinstance(log["metadata"]["git_sha"], str)
    assert [d["photon_dose"] for d in log["datasets"]] == [1e3]
