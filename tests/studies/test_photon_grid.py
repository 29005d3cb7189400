import hashlib
import json

import numpy as np
import pytest

from ptychopinn.cli.main import main
from ptychopinn.studies.photon_grid import dose_label


def test_dose_label():
    assert dose_label(1e5) == "p1e5" and dose_label(1e9) == "p1e9" and dose_label(2.5e4) == "p2.5e4"


def test_photon_grid_shares_object_and_scan_and_hits_each_dose(tmp_path):
    root = tmp_path / "grid"
    assert main(["photon-grid", "-o", str(root), "--doses", "1e4,1e6,1e9", "--n-images", "200",
                 "--N", "64", "--object-size", "128", "--quiet"]) == 0
    files = {d: root / f"data_p1e{d}.npz" for d in (4, 6, 9)}
    z = {d: dict(np.load(p)) for d, p in files.items()}
    for d, a in z.items():
        assert a["diff3d"].shape == (200, 64, 64) and a["diff3d"].dtype == np.float32
        assert a["probeGuess"].dtype == np.complex128 and a["objectGuess"].dtype == np.complex128
        assert a["ground_truth_patches"].shape == (200, 64, 64, 1) and a["ground_truth_patches"].dtype == np.complex64
        assert a["scan_index"].dtype == np.int64
        tot = (a["diff3d"].astype(np.float64) ** 2).sum(axis=(1, 2)).mean()
        assert abs(tot / 10.0 ** d - 1) < 0.02
    for key in ("xcoords", "ycoords", "objectGuess", "probeGuess"):
        np.testing.assert_array_equal(z[4][key], z[9][key])
    a9, a4 = (z[d]["diff3d"].astype(np.float64) for d in (9, 4))
    # RMS amplitude scales exactly as sqrt(dose ratio) = 316
    rms_ratio = np.sqrt((a9 ** 2).mean() / (a4 ** 2).mean())
    assert rms_ratio == pytest.approx(np.sqrt(1e5), rel=0.02)
    # the plain mean amplitude ratio is ~316 too, biased upward because E[sqrt(k)] < sqrt(lam)
    # for the many low-count pixels at 1e4 photons (Jensen); measured ~389 here
    mean_ratio = a9.mean() / a4.mean()
    assert np.sqrt(1e5) < mean_ratio < 1.4 * np.sqrt(1e5)
    manifest = json.loads((root / "manifest.json").read_text())
    assert [e["file"] for e in manifest["datasets"]] == ["data_p1e4.npz", "data_p1e6.npz", "data_p1e9.npz"]
    for e in manifest["datasets"]:
        assert e["sha256"] == hashlib.sha256((root / e["file"]).read_bytes()).hexdigest()
        assert e["size_bytes"] == (root / e["file"]).stat().st_size
    assert "SHA-256" in (root / "manifest.md").read_text()
    import zipfile

    for d, p in files.items():  # written deflate-compressed, smaller than the raw arrays
        with zipfile.ZipFile(p) as zf:
            assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_DEFLATED}
        assert p.stat().st_size < sum(v.nbytes for v in z[d].values())


def _grid(root, doses):
    assert main(["photon-grid", "-o", str(root), "--doses", doses, "--n-images", "40", "--N", "16",
                 "--object-size", "40", "--quiet"]) == 0
    return {p.name: p.read_bytes() for p in sorted(root.glob("data_*.npz"))}


def test_photon_grid_files_are_byte_identical_and_independent_of_the_sweep(tmp_path):
    first = _grid(tmp_path / "a", "1e3,1e5")
    again = _grid(tmp_path / "b", "1e3,1e5")
    assert list(first) == ["data_p1e3.npz", "data_p1e5.npz"] and first == again  # no wall-clock time inside
    alone = _grid(tmp_path / "c", "1e5")
    reordered = _grid(tmp_path / "d", "1e7,1e5")
    assert alone["data_p1e5.npz"] == first["data_p1e5.npz"] == reordered["data_p1e5.npz"]
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert all(e["seconds"] >= 0 for e in manifest["datasets"])
