"""Data contract: every malformed input is one DataError naming the key; legacy variants normalised."""

import json
import os

import numpy as np
import pytest

from ptychopinn.cli.main import main
from ptychopinn.data.contract import load_dataset
from ptychopinn.errors import DataError

M, N = 6, 8


def _arrays(**over):
    rng = np.random.default_rng(0)
    a = {
        "diff3d": np.sqrt(rng.poisson(5.0, (M, N, N))).astype(np.float32),
        "probeGuess": np.ones((N, N), np.complex64),
        "objectGuess": np.ones((32, 32), np.complex64),
        "xcoords": np.linspace(8, 24, M),
        "ycoords": np.linspace(8, 24, M),
    }
    a.update(over)
    return {k: v for k, v in a.items() if v is not None}


def _write(tmp_path, name="d.npz", **over):
    p = tmp_path / name
    np.savez(p, **_arrays(**over))
    return p


BAD = [
    ({"diff3d": None}, "diff3d", "missing"),
    ({"probeGuess": None}, "probeGuess", "missing"),
    ({"xcoords": np.zeros(M + 1)}, "xcoords", "length"),
    ({"probeGuess": np.ones((N + 2, N + 2), complex)}, "probeGuess", "does not match"),
    ({"diff3d": np.full((M, N, N), np.nan, np.float32)}, "diff3d", "NaN"),
    ({"diff3d": np.full((M, N, N), np.inf, np.float32)}, "diff3d", "NaN or Inf"),
    ({"diff3d": -np.ones((M, N, N), np.float32)}, "diff3d", "negative"),
    ({"diff3d": np.ones((M, N, N), np.complex64)}, "diff3d", "complex"),
    ({"xcoords": np.linspace(2, 40, M)}, "xcoords", "outside"),
    ({"ycoords": np.full(M, 30.0)}, "ycoords", "outside"),
]


@pytest.mark.parametrize("over,key,problem", BAD)
def test_malformed_inputs_raise_one_line_error_naming_key(tmp_path, over, key, problem):
    p = _write(tmp_path, **over)
    with pytest.raises(DataError) as ei:
        load_dataset(p)
    msg = str(ei.value)
    assert "\n" not in msg and str(p) in msg and f"'{key}'" in msg and problem in msg


def test_not_npz_truncated_and_pickled_are_refused(tmp_path, capsys):
    txt = tmp_path / "x.npz"
    txt.write_text("hello")
    with pytest.raises(DataError, match="not an NPZ"):
        load_dataset(txt)
    good = _write(tmp_path)
    trunc = tmp_path / "t.npz"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError):
        load_dataset(trunc)
    pick = tmp_path / "p.npz"
    arrs = _arrays()
    arrs["objectGuess"] = np.array([{"evil": 1}], dtype=object)
    np.savez(pick, **arrs)
    with pytest.raises(DataError, match="pickled"):
        load_dataset(pick)
    # CLI: exit 2, one line, no traceback
    assert main(["validate", str(pick)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "objectGuess" in err


def test_legacy_variants_are_normalised(tmp_path):
    ref = _arrays()
    counts = np.random.default_rng(1).integers(0, 70000, (M, N, N)).astype(np.uint16)
    # 'diffraction' key + (N, N, M) layout + uint16 counts + trailing singleton on the probe
    p = tmp_path / "legacy.npz"
    np.savez(p, diffraction=np.moveaxis(counts, 0, -1), probeGuess=ref["probeGuess"][..., None],
             xcoords=ref["xcoords"], ycoords=ref["ycoords"])
    ds = load_dataset(p)
    assert ds.diff3d.shape == (M, N, N) and ds.diff3d.dtype == np.float32
    # counts above 255 and 65535/2 squared would overflow uint16: converted in float64 first
    np.testing.assert_allclose(ds.diff3d.astype(np.float64) ** 2, counts.astype(np.float64), rtol=1e-6)
    notes = ds.metadata["load_notes"]
    assert notes["converted_from_NNM_layout"] and notes["converted_from_integer_counts"] == "uint16"
    # trailing singleton axis on diffraction
    p2 = _write(tmp_path, "t.npz", diff3d=ref["diff3d"][..., None])
    np.testing.assert_array_equal(load_dataset(p2).diff3d, ref["diff3d"])


def test_normalised_legacy_amplitudes_restored_with_nphotons_or_scale(tmp_path):
    ref = _arrays()
    normed = ref["diff3d"] / 37.0
    p = _write(tmp_path, diff3d=normed)
    ds = load_dataset(p, nphotons=1234.0)
    assert ds.photons_per_pattern() == pytest.approx(1234.0, rel=1e-5)
    ds2 = load_dataset(p, intensity_scale=37.0)
    np.testing.assert_allclose(ds2.diff3d, ref["diff3d"], rtol=1e-6)


def test_metadata_json_and_defaults(tmp_path):
    p = _write(tmp_path, _metadata=np.array(json.dumps({"nphotons": 5})))
    ds = load_dataset(p)
    assert ds.metadata["nphotons"] == 5
    np.testing.assert_array_equal(ds.scan_index, np.zeros(M, np.int64))
    np.testing.assert_array_equal(ds.xcoords_start, ds.xcoords)


def test_validate_cli_summary(tmp_path, capsys):
    from ptychopinn.data.simulate import simulate

    p = simulate(n_images=100, nphotons=1e5, N=32, object_size=80, scan="raster", step=4, seed=0).save(tmp_path / "s.npz")
    assert main(["validate", str(p)]) == 0
    out = capsys.readouterr().out
    assert "patterns:           100 of 32x32" in out and "photons/pattern" in out and "overlap" in out
    assert main(["validate", str(tmp_path / "missing.npz")]) == 2
    assert not os.path.exists(tmp_path / "missing.npz")


def test_hdf5_input_with_contract_keys(tmp_path):
    import h5py

    a = _arrays()
    p = tmp_path / "d.h5"
    with h5py.File(p, "w") as f:
        for k, v in a.items():
            f[k] = v
    ds = load_dataset(p)
    np.testing.assert_array_equal(ds.diff3d, a["diff3d"])
    bad = tmp_path / "bad.h5"
    bad.write_text("nope")
    with pytest.raises(DataError, match="HDF5"):
        load_dataset(bad)


def test_probe_file_round_trip_and_errors(tmp_path):
    """read_probe_file / save_probe_file: the probe files of 'iterative --save-probe' and
    'train/infer --probe-from' (NPZ keys probeGuess, reconstructed_probe, probe; first mode)."""
    from ptychopinn.data.contract import read_probe_file, save_probe_file
    from ptychopinn.errors import DataError

    probe = (np.ones((8, 8)) * np.exp(0.2j)).astype(np.complex64)
    path = save_probe_file(tmp_path / "p.npz", probe, {"probe_source": "test"})
    got, where = read_probe_file(path)
    np.testing.assert_array_equal(got, probe)
    assert where == f"{path}: probeGuess"
    np.savez(tmp_path / "modes.npz", reconstructed_probe=np.stack([probe, 2 * probe]))
    got, where = read_probe_file(tmp_path / "modes.npz")
    np.testing.assert_array_equal(got, probe)
    assert where.endswith(": reconstructed_probe")
    np.savez(tmp_path / "none.npz", other=probe)
    with pytest.raises(DataError, match="none.npz: key 'probeGuess': missing"):
        read_probe_file(tmp_path / "none.npz")
    np.savez(tmp_path / "rect.npz", probe=np.ones((4, 6), np.complex64))
    with pytest.raises(DataError, match="rect.npz: key 'probe': must be a finite square 2-D probe"):
        read_probe_file(tmp_path / "rect.npz")
