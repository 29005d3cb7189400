"""tike's layout (data not fftshifted, scan = top-left corners (y, x)) read by convert."""

from __future__ import annotations

import bz2
import io
from pathlib import Path

import numpy as np
import pytest

from ptychopinn.cli.main import main
from ptychopinn.data.contract import load_dataset

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "tike_siemens-star-small.npz.bz2"


def _write_tike(path: Path, data, probe, scan) -> None:
    buf = io.BytesIO()
    np.savez(buf, data=data, probe=probe, scan=scan)
    path.write_bytes(bz2.compress(buf.getvalue()))


def test_tike_round_trip_positions_and_pattern(tmp_path):
    m, n = 3, 8
    data = np.zeros((1, m, n, n), np.float32)
    data[0, :, 0, 0] = [100.0, 400.0, 900.0]  # zero frequency in the corner (tike, not fftshifted)
    data[0, 1, 0, 1] = 16.0  # one step +x from DC
    probe = (np.arange(n * n).reshape(n, n) + 1j).astype(np.complex64)[None, None, None, None]
    scan = np.array([[[0.0, 0.0], [2.5, 3.0], [5.0, 1.25]]], np.float32)  # top-left (y, x)
    _write_tike(tmp_path / "t.npz.bz2", data, probe, scan)
    assert main(["convert", "--from", "tike", str(tmp_path / "t.npz.bz2"), "-o", str(tmp_path / "c.npz"), "-q"]) == 0
    ds = load_dataset(tmp_path / "c.npz")
    np.testing.assert_allclose(ds.ycoords, [4.0, 6.5, 9.0])  # top-left + N//2
    np.testing.assert_allclose(ds.xcoords, [4.0, 7.0, 5.25])
    np.testing.assert_allclose(ds.diff3d[:, 4, 4], [10.0, 20.0, 30.0])  # sqrt(counts) at N//2
    assert ds.diff3d[1, 4, 5] == pytest.approx(4.0)  # +x neighbour stays +x
    assert ds.diff3d.sum() == pytest.approx(60.0 + 4.0)
    np.testing.assert_array_equal(ds.probe, probe[0, 0, 0, 0])
    # a file without 'scan' is refused with the key named
    _write_tike(tmp_path / "bad.npz.bz2", data, probe, scan)
    buf = io.BytesIO()
    np.savez(buf, data=data, probe=probe)
    (tmp_path / "bad.npz.bz2").write_bytes(bz2.compress(buf.getvalue()))
    assert main(["convert", str(tmp_path / "bad.npz.bz2"), "-o", str(tmp_path / "d.npz"), "-q"]) == 2
    assert not (tmp_path / "d.npz").exists()


@pytest.mark.skipif(not REAL.exists(), reason=f"experimental data not present ({REAL})")
def test_real_tike_siemens_star_converts(tmp_path, capsys):
    assert main(["convert", "--from", "tike", str(REAL), "-o", str(tmp_path / "star.npz"), "-q"]) == 0
    ds = load_dataset(tmp_path / "star.npz")
    assert ds.n_patterns == 516 and ds.N == 128
    # README: about 4.6e5 photons per pattern; the brightest pixel is the (centred) zero frequency region
    assert 3e5 < ds.photons_per_pattern() < 6e5
    mean = (ds.diff3d.astype(np.float64) ** 2).mean(axis=0)
    yy, xx = np.indices(mean.shape)
    cy, cx = (mean * yy).sum() / mean.sum(), (mean * xx).sum() / mean.sum()
    assert abs(cy - 64) < 8 and abs(cx - 64) < 8, (cy, cx)  # fftshifted: intensity centred at N//2
