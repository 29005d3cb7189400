"""Beamline input: CXI files written by hand with h5py, ptychodus-written fixtures, geometry,
round trips and malformed files (each error names the HDF5 path)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptychopinn.cli.main import main
from ptychopinn.data.contract import load_dataset
from ptychopinn.data.cxi import InputOptions, PositionConvention
from ptychopinn.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "ptychodus"
EV = 1.602176634e-19
M, N = 5, 8
ENERGY_EV, DIST, PIX = 8000.0, 2.0, 75e-6


def _hand_geometry():
    # lambda = h c / E, by hand: 6.62607015e-34 * 299792458 / (8000 eV) = 1.549802e-10 m
    lam = 6.62607015e-34 * 299792458.0 / (ENERGY_EV * EV)
    return lam, lam * DIST / (N * PIX)  # object pixel = 5.16601e-7 m


def write_cxi(path: Path, *, counts=None, translation=None, energy=ENERGY_EV * EV, distance=DIST, mask=None,
              probe=True, data_at="detector", drop=()):
    """An independent CXI writer (plain h5py, no ptychopinn code)."""
    rng = np.random.default_rng(1)
    if counts is None:
        counts = rng.poisson(40, (M, N, N)).astype(np.uint16)
    if translation is None:
        translation = np.zeros((M, 3))
        translation[:, 0] = np.array([0.0, 1.0, 2.0, 3.0, 4.0]) * 1e-7
        translation[:, 1] = np.array([4.0, 3.0, 2.0, 1.0, 0.0]) * 2e-7
    with h5py.File(path, "w") as f:
        if "data" not in drop:
            if data_at == "detector":
                f["entry_1/instrument_1/detector_1/data"] = counts
                f["entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
            else:
                f["entry_1/data_1/data"] = counts
        if "translation" not in drop:
            f["entry_1/sample_1/geometry_1/translation"] = translation
        if "energy" not in drop:
            f["entry_1/instrument_1/source_1/energy"] = energy
        if "distance" not in drop:
            f["entry_1/instrument_1/detector_1/distance"] = distance
        f["entry_1/instrument_1/detector_1/x_pixel_size"] = PIX
        f["entry_1/instrument_1/detector_1/y_pixel_size"] = PIX
        if mask is not None:
            f["entry_1/instrument_1/detector_1/mask"] = mask
        if probe:
            f["entry_1/image_1/data"] = (np.arange(N * N).reshape(N, N) + 1j).astype(np.complex64)
    return counts, translation


def test_hand_made_cxi_matches_hand_computation(tmp_path):
    counts, t = write_cxi(tmp_path / "a.cxi")
    ds = load_dataset(tmp_path / "a.cxi")
    _, dx = _hand_geometry()
    assert dx == pytest.approx(5.16601e-7, rel=1e-5)
    # column 0 = x (columns), column 1 = y (rows); the smallest position sits at N//2
    np.testing.assert_allclose(ds.xcoords, N // 2 + (t[:, 0] - t[:, 0].min()) / dx, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ds.ycoords, N // 2 + (t[:, 1] - t[:, 1].min()) / dx, rtol=0, atol=1e-9)
    assert ds.xcoords[4] - ds.xcoords[0] == pytest.approx(4e-7 / dx)  # +x translation -> larger column
    assert ds.ycoords[0] - ds.ycoords[4] == pytest.approx(8e-7 / dx)  # +y translation -> larger row
    np.testing.assert_allclose(ds.diff3d.astype(np.float64) ** 2, counts, rtol=1e-5)
    g = ds.metadata["geometry"]
    assert g["object_pixel_m"] == pytest.approx([dx, dx])
    assert g["energy_eV"] == pytest.approx(ENERGY_EV)


def test_cxi_loads_to_the_same_arrays_as_the_npz(tmp_path):
    counts, t = write_cxi(tmp_path / "a.cxi", data_at="data_1")
    assert main(["convert", str(tmp_path / "a.cxi"), "-o", str(tmp_path / "a.npz")]) == 0
    a, b = load_dataset(tmp_path / "a.cxi"), load_dataset(tmp_path / "a.npz")
    for k in ("diff3d", "xcoords", "ycoords", "probe"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert b.metadata["geometry"]["position_affine"]["dx_m"] == a.metadata["geometry"]["position_affine"]["dx_m"]


def test_flip_and_transpose(tmp_path):
    _, t = write_cxi(tmp_path / "a.cxi")
    _, dx = _hand_geometry()
    ds = load_dataset(tmp_path / "a.cxi", options=InputOptions(PositionConvention(flip="x")))
    np.testing.assert_allclose(ds.xcoords, N // 2 + (t[:, 0].max() - t[:, 0]) / dx, atol=1e-9)
    np.testing.assert_allclose(ds.ycoords, N // 2 + (t[:, 1] - t[:, 1].min()) / dx, atol=1e-9)
    ds = load_dataset(tmp_path / "a.cxi", options=InputOptions(PositionConvention(transpose=True)))
    np.testing.assert_allclose(ds.xcoords, N // 2 + (t[:, 1] - t[:, 1].min()) / dx, atol=1e-9)
    assert main(["validate", str(tmp_path / "a.cxi"), "--flip-positions", "--transpose-positions"]) == 0


def test_round_trip_cxi_npz_cxi(tmp_path):
    counts, t = write_cxi(tmp_path / "a.cxi")
    assert main(["convert", str(tmp_path / "a.cxi"), "-o", str(tmp_path / "a.npz"), "--flip-positions", "y"]) == 0
    assert main(["convert", str(tmp_path / "a.npz"), "-o", str(tmp_path / "b.cxi")]) == 0
    with h5py.File(tmp_path / "b.cxi") as f:
        np.testing.assert_allclose(f["entry_1/sample_1/geometry_1/translation"][:, :2], t[:, :2], rtol=0, atol=1e-18)
        np.testing.assert_array_equal(f["entry_1/data_1/data"][()], counts)  # soft link, integer counts
        assert f["entry_1/instrument_1/source_1/energy"][()] == pytest.approx(ENERGY_EV * EV)
    a, b = load_dataset(tmp_path / "a.npz"), load_dataset(tmp_path / "b.cxi")
    np.testing.assert_allclose(b.xcoords, a.xcoords, atol=1e-9)
    np.testing.assert_allclose(b.ycoords, a.ycoords, atol=1e-9)
    np.testing.assert_array_equal(b.diff3d, a.diff3d)


def test_round_trip_npz_cxi_npz_keeps_frame_and_object(tmp_path):
    from ptychopinn.data.simulate import SimulationConfig, simulate

    ds = simulate(SimulationConfig(n_images=12, nphotons=1e4, N=16, object_size=40, seed=3))
    ds.save(tmp_path / "s.npz")
    assert main(["convert", str(tmp_path / "s.npz"), "-o", str(tmp_path / "s.cxi")]) == 2  # no geometry
    assert main(["convert", str(tmp_path / "s.npz"), "-o", str(tmp_path / "s.cxi"), "--energy-ev", "9000",
                 "--distance-m", "3", "--detector-pixel-m", "55e-6"]) == 0
    b = load_dataset(tmp_path / "s.cxi")
    np.testing.assert_allclose(b.xcoords, ds.xcoords, atol=1e-9)
    np.testing.assert_allclose(b.ycoords, ds.ycoords, atol=1e-9)
    np.testing.assert_allclose(b.diff3d ** 2, ds.diff3d.astype(np.float64) ** 2, rtol=1e-5)
    np.testing.assert_array_equal(b.object, ds.object.astype(np.complex64))
    # another convention: the written frame and object no longer apply
    c = load_dataset(tmp_path / "s.cxi", options=InputOptions(PositionConvention(flip="x")))
    assert c.object is None
    np.testing.assert_allclose(c.xcoords, 16 // 2 + (ds.xcoords.max() - ds.xcoords), atol=1e-9)


def test_bad_pixel_mask_is_filled(tmp_path):
    counts = np.full((M, N, N), 9, dtype=np.uint16)
    counts[:, 3, 3] = 60000  # hot pixel
    mask = np.zeros((N, N), np.uint32)
    mask[3, 3] = 1
    write_cxi(tmp_path / "a.cxi", counts=counts, mask=mask)
    ds = load_dataset(tmp_path / "a.cxi")
    np.testing.assert_allclose(ds.diff3d, 3.0)
    assert ds.metadata["load_notes"]["bad_pixels_filled"] == 1


@pytest.mark.parametrize("case, path", [
    ("data", "entry_1/data_1/data"),
    ("translation", "entry_1/sample_1/geometry_1/translation"),
    ("energy", "entry_1/instrument_1/source_1/energy"),
    ("distance", "entry_1/instrument_1/detector_1/distance"),
    ("mask", "entry_1/instrument_1/detector_1/mask"),
    ("probe", "entry_1/image_1/data"),
    ("energy_ev", "entry_1/instrument_1/source_1/energy"),
    ("length", "entry_1/sample_1/geometry_1/translation"),
])
def test_malformed_cxi_names_the_hdf5_path(tmp_path, capsys, case, path):
    f = tmp_path / "bad.cxi"
    if case == "mask":
        write_cxi(f, mask=np.zeros((N, N + 1), np.uint8))
    elif case == "probe":
        write_cxi(f, probe=False)
    elif case == "energy_ev":
        write_cxi(f, energy=8000.0)
    elif case == "length":
        write_cxi(f, translation=np.zeros((M + 1, 3)))
    else:
        write_cxi(f, drop=(case,))
    with pytest.raises(DataError, match=path):
        load_dataset(f)
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and path in err[0] and "Traceback" not in err[0]
    if case == "probe":
        assert "--probe-from" in err[0] and "--probe-from-ptychi" in err[0]


def test_missing_probe_supplied_with_probe_from(tmp_path, capsys):
    write_cxi(tmp_path / "a.cxi", probe=False)
    probe = (np.ones((N, N)) * (1 + 2j)).astype(np.complex64)
    np.savez(tmp_path / "p.npz", probeGuess=probe)
    assert main(["convert", str(tmp_path / "a.cxi"), "-o", str(tmp_path / "a.npz"),
                 "--probe-from", str(tmp_path / "p.npz")]) == 0
    ds = load_dataset(tmp_path / "a.npz")
    np.testing.assert_array_equal(ds.probe, probe)
    assert ds.metadata["probe_source"].endswith("p.npz: probeGuess")
    np.savez(tmp_path / "p9.npz", probeGuess=np.ones((N + 1, N + 1), np.complex64))
    assert main(["validate", str(tmp_path / "a.cxi"), "--probe-from", str(tmp_path / "p9.npz")]) == 2
    assert "p9.npz" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# plausibility checks
# ---------------------------------------------------------------------------------------------
def _npz(tmp_path, name, diff, x, y, obj=None):
    d = {"diff3d": diff.astype(np.float32), "probeGuess": np.ones(diff.shape[1:], np.complex64),
         "xcoords": np.asarray(x, float), "ycoords": np.asarray(y, float)}
    if obj is not None:
        d["objectGuess"] = obj
    np.savez(tmp_path / name, **d)
    return str(tmp_path / name)


def test_validate_refuses_metres_and_corner_dc(tmp_path, capsys):
    from ptychopinn.physics.probe import default_probe

    p = default_probe(16)
    centred = np.abs(np.fft.fftshift(np.fft.fft2(p, norm="ortho"))) * 30
    diff = np.repeat(centred[None], 6, axis=0)
    xm = np.arange(6) * 1e-7 + 8
    path = _npz(tmp_path, "metres.npz", diff, xm, np.full(6, 8.0))
    assert main(["validate", path]) == 2
    err = capsys.readouterr().err
    assert "metres.npz: key 'xcoords'" in err and "below one pixel" in err and "--force" in err
    assert main(["validate", path, "--force"]) == 0
    assert "warning (--force)" in capsys.readouterr().err

    corner = np.fft.ifftshift(diff, axes=(1, 2))
    path = _npz(tmp_path, "corner.npz", corner, np.arange(6) * 3.0 + 8, np.full(6, 8.0))
    assert main(["validate", path]) == 2
    assert "zero frequency in the corner" in capsys.readouterr().err
    assert main(["validate", path, "--fftshift"]) == 0  # the fix named in the message
    ok = _npz(tmp_path, "ok.npz", diff, np.arange(6) * 3.0 + 8, np.full(6, 8.0), obj=np.ones((40, 40), np.complex64))
    assert main(["validate", ok]) == 0
    assert "placeholder" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# ptychodus-written fixtures (written by ptychodus 1.7.0's own writers; see make_ptychodus_fixtures.py)
# ---------------------------------------------------------------------------------------------
def _expected():
    return json.loads((FIX / "expected.json").read_text())


@pytest.mark.parametrize("source", ["cxi_pair", "h5_pair", "directory", "training_npz", "training_h5"])
def test_ptychodus_fixtures_positions_and_counts(source):
    e = _expected()
    n = e["N"]
    if source == "cxi_pair":
        ds = load_dataset(FIX / "diffraction.cxi", options=InputOptions(product=str(FIX / "product.cxi")))
    elif source == "h5_pair":
        ds = load_dataset(FIX / "diffraction.h5", options=InputOptions(product=str(FIX / "product.h5")))
    elif source == "directory":
        ds = load_dataset(FIX)
    elif source == "training_npz":
        ds = load_dataset(FIX / "training.npz")
    else:
        ds = load_dataset(FIX / "training.h5")
    # ptychodus centres a patch at (N-1)/2, we at N//2: +0.5 px for even N
    assert n % 2 == 0
    np.testing.assert_allclose(ds.xcoords, np.array(e["ptychodus_x_px"]) + 0.5, atol=0.01)
    np.testing.assert_allclose(ds.ycoords, np.array(e["ptychodus_y_px"]) + 0.5, atol=0.01)
    counts = np.array(e["pattern_counts"], dtype=np.float64)[e["position_scan_index"]]  # paired by scan index
    by, bx = e["bad_pixel"]
    got = ds.diff3d.astype(np.float64) ** 2
    good = np.ones((n, n), bool)
    good[by, bx] = False
    np.testing.assert_allclose(got[:, good], counts[:, good], rtol=1e-5)
    assert ds.object.shape == tuple(e["object_shape"])
    assert ds.probe.shape == (n, n)
    # the bad pixel (mask / bad_pixels nonzero) is the mean of its 8 good neighbours
    nb = counts[:, by - 1:by + 2, bx - 1:bx + 2].reshape(len(counts), 9)
    np.testing.assert_allclose(got[:, by, bx], np.delete(nb, 4, axis=1).mean(axis=1), rtol=1e-5)
    if source != "training_npz":
        assert ds.metadata["geometry"]["object_pixel_m"][1] == pytest.approx(e["object_pixel_m"], rel=1e-9)


def test_ptychodus_half_pair_errors(capsys):
    for args, half in ((["product.cxi"], "diffraction half is missing"),
                       (["diffraction.cxi"], "--product"),
                       (["product.h5"], "diffraction half is missing"),
                       (["diffraction.h5"], "the product half")):
        assert main(["validate", str(FIX / args[0])]) == 2
        err = capsys.readouterr().err.strip()
        assert half in err and len(err.splitlines()) == 1


def test_product_export_reads_back_in_ptychodus_layout(tmp_path):
    """Our product.h5 in ptychodus's save_product layout: the positions map back onto the canvas
    with ptychodus's own formula x_px = (x_m - center_x)/pixel + (W-1)/2 (patch centre (N-1)/2).
    (Checked by hand with ptychodus 1.7.0's load_product: docs/cxi.md.)"""
    e = _expected()
    ds = load_dataset(FIX)
    canvas = np.exp(1j * np.linspace(0, 1, 30 * 32)).reshape(30, 32)
    origin = (1.0, 2.0)
    np.savez(tmp_path / "rec.npz", object=canvas, origin=np.array(origin))
    assert main(["convert", str(FIX), "-o", str(tmp_path / "product.h5"), "--to", "product",
                 "--reconstruction", str(tmp_path / "rec.npz")]) == 0
    with h5py.File(tmp_path / "product.h5") as f:
        o = f["object"]
        x_px = (f["probe_position_x_m"][()] - o.attrs["center_x_m"]) / o.attrs["pixel_width_m"] + (o.shape[-1] - 1) / 2
        y_px = (f["probe_position_y_m"][()] - o.attrs["center_y_m"]) / o.attrs["pixel_height_m"] + (o.shape[-2] - 1) / 2
        np.testing.assert_allclose(x_px, np.array(e["ptychodus_x_px"]) - origin[1], atol=1e-6)
        np.testing.assert_allclose(y_px, np.array(e["ptychodus_y_px"]) - origin[0], atol=1e-6)
        np.testing.assert_array_equal(o[0], canvas.astype(np.complex64))
        assert f["probe"].shape == (1, 1, e["N"], e["N"])
        assert f.attrs["photon_energy_eV"] == pytest.approx(8000.0)
    assert math.isfinite(float(ds.metadata["geometry"]["distance_m"]))


def test_ptychodus_frame_flip_and_transpose_move_object_with_positions():
    e = _expected()
    base = load_dataset(FIX)
    w = base.object.shape[1]
    ds = load_dataset(FIX, options=InputOptions(PositionConvention(flip="x")))
    # mirrored about the object centre: ptychodus px -> (W-1) - px, then +0.5 for our patch centre
    np.testing.assert_allclose(ds.xcoords, (w - 1) - np.array(e["ptychodus_x_px"]) + 0.5, atol=0.01)
    np.testing.assert_allclose(ds.ycoords, base.ycoords, atol=1e-9)
    np.testing.assert_array_equal(ds.object, base.object[:, ::-1])
    ds = load_dataset(FIX, options=InputOptions(PositionConvention(transpose=True)))
    np.testing.assert_allclose(ds.xcoords, base.ycoords, atol=1e-9)
    np.testing.assert_allclose(ds.ycoords, base.xcoords, atol=1e-9)
    np.testing.assert_array_equal(ds.object, base.object.T)


def test_fftshift_moves_patterns_and_mask_together(tmp_path):
    counts = np.full((M, N, N), 4, dtype=np.uint16)
    counts[:, 0, 0] = 100  # zero frequency in the corner
    counts[:, 1, 1] = 60000  # a hot pixel, masked
    mask = np.zeros((N, N), np.uint8)
    mask[1, 1] = 1
    write_cxi(tmp_path / "c.cxi", counts=counts, mask=mask)
    assert main(["validate", str(tmp_path / "c.cxi")]) == 2
    ds = load_dataset(tmp_path / "c.cxi", options=InputOptions(fftshift=True))
    assert ds.diff3d[0, N // 2, N // 2] == pytest.approx(10.0)
    # the hot pixel moved with its mask entry: filled with the mean of 7 fours and the 100 at N//2
    assert ds.diff3d[0, N // 2 + 1, N // 2 + 1] == pytest.approx(np.sqrt((7 * 4 + 100) / 8))
    assert main(["validate", str(tmp_path / "c.cxi"), "--fftshift"]) == 0


# ---------------------------------------------------------------------------------------------
# pairing by scan index (ptychodus probe_position_indexes): 48 positions, 50 patterns
# ---------------------------------------------------------------------------------------------
def _indexed_scan(rng, m=50, dropped=(7, 30)):
    """Pattern k holds k + 1 counts everywhere; positions for every index but ``dropped``, shuffled."""
    counts = (np.arange(m)[:, None, None] + 1 + np.zeros((m, N, N))).astype(np.uint32)
    keep = np.array([k for k in range(m) if k not in dropped])
    rng.shuffle(keep)
    t = np.zeros((len(keep), 3))
    t[:, 0] = keep * 1e-7  # x of position i is its scan index x 1e-7 m: the pairing is checkable
    t[:, 1] = (keep % 5) * 2e-7
    return counts, keep, t


def test_cxi_probe_position_indexes_pair_by_index(tmp_path, capsys):
    counts, keep, t = _indexed_scan(np.random.default_rng(3))
    write_cxi(tmp_path / "a.cxi", counts=counts, translation=t)
    with h5py.File(tmp_path / "a.cxi", "a") as f:
        f["entry_1/ptychodus/probe_position_indexes"] = keep
    ds = load_dataset(tmp_path / "a.cxi")
    assert ds.n_patterns == 48
    np.testing.assert_allclose(ds.diff3d[:, 0, 0].astype(np.float64) ** 2, keep + 1, rtol=1e-6)
    _, dx = _hand_geometry()
    np.testing.assert_allclose(ds.xcoords, N // 2 + keep * 1e-7 / dx, atol=1e-9)
    assert ds.metadata["load_notes"]["patterns_without_position_dropped"] == 2
    assert main(["validate", str(tmp_path / "a.cxi")]) == 0
    assert "dropped:            2 pattern(s) without a scan position" in capsys.readouterr().out


@pytest.mark.parametrize("bad, needle", [
    ("duplicate", "given to more than one position"),
    ("unknown", "have no pattern"),
    ("none", "no entry_1/ptychodus/probe_position_indexes"),
])
def test_cxi_index_pairing_refuses_what_it_cannot_pair(tmp_path, capsys, bad, needle):
    counts, keep, t = _indexed_scan(np.random.default_rng(4))
    write_cxi(tmp_path / "a.cxi", counts=counts, translation=t)
    if bad != "none":
        idx = keep.copy()
        idx[1] = idx[0] if bad == "duplicate" else 99
        with h5py.File(tmp_path / "a.cxi", "a") as f:
            f["entry_1/ptychodus/probe_position_indexes"] = idx
    assert main(["validate", str(tmp_path / "a.cxi")]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_ptychodus_h5_pair_drops_patterns_without_position(tmp_path):
    """The fixture's HDF5 pair with two positions removed from the product (as ptychodus writes it
    when a user drops positions): the other patterns stay paired by scan index."""
    import shutil

    e = _expected()
    shutil.copy(FIX / "diffraction.h5", tmp_path / "diffraction.h5")
    shutil.copy(FIX / "product.h5", tmp_path / "product.h5")
    with h5py.File(tmp_path / "product.h5", "a") as f:
        for k in ("probe_position_indexes", "probe_position_x_m", "probe_position_y_m"):
            a = f[k][()][2:]
            del f[k]
            f[k] = a
    ds = load_dataset(tmp_path)
    counts = np.array(e["pattern_counts"], dtype=np.float64)[e["position_scan_index"][2:]]
    np.testing.assert_allclose(ds.diff3d[:, 0, 0].astype(np.float64) ** 2, counts[:, 0, 0], rtol=1e-5)
    np.testing.assert_allclose(ds.xcoords, np.array(e["ptychodus_x_px"][2:]) + 0.5, atol=0.01)
    assert ds.metadata["load_notes"]["patterns_without_position_dropped"] == 2
