"""``convert --to product-cxi``: a ptychodus CXI product written by us.

Oracles: our own reader (round trip), the tree of ``fixtures/ptychodus/product.cxi`` written by
ptychodus 1.7.0's own CXI product writer (structure), and ptychodus's own reader where ptychodus
is importable (skipped otherwise)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from ptychopinn.cli.main import main
from ptychopinn.data.contract import load_dataset
from ptychopinn.data.cxi import InputOptions, write_ptychodus_product_cxi
from ptychopinn.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "ptychodus"
# datasets we write that ptychodus writes only when the product has them (its comments)
OPTIONAL = {"entry_1/experiment_description"}


def _expected():
    return json.loads((FIX / "expected.json").read_text())


def _export(tmp_path: Path, canvas: np.ndarray, origin=(1.0, 2.0), probe=None, losses=(3.0, 2.0)) -> Path:
    rec = {"object": canvas, "origin": np.array(origin), "loss_history": np.array(losses)}
    if probe is not None:
        rec["reconstructed_probe"] = probe
    np.savez(tmp_path / "rec.npz", **rec)
    out = tmp_path / "product.cxi"
    assert main(["convert", str(FIX), "-o", str(out), "--to", "product-cxi", "--reconstruction",
                 str(tmp_path / "rec.npz"), "-q"]) == 0
    return out


def _tree(path: Path) -> dict[str, tuple]:
    """Every link of the file: soft links by target; datasets by shape, dtype and attribute names
    (strings by their text, for the few fixed CXI words)."""
    out: dict[str, tuple] = {}
    with h5py.File(path) as f:
        def visit(name):
            link = f.get(name, getlink=True)
            if isinstance(link, h5py.SoftLink):
                out[name] = ("soft", link.path)
                return
            obj = f[name]
            if isinstance(obj, h5py.Group):
                out[name] = ("group", tuple(sorted(obj.attrs)))
                return
            if h5py.check_string_dtype(obj.dtype) is not None:
                out[name] = ("string", obj.shape)
                return
            attrs = tuple(sorted((k, str(v)) for k, v in obj.attrs.items()))
            out[name] = ("dataset", obj.shape, obj.dtype.str, attrs)
        f.visit_links(visit)
    return out


def _canvas(h: int, w: int) -> np.ndarray:
    return (np.exp(1j * np.linspace(0, 2, h * w)) * np.linspace(0.5, 1.5, h * w)).reshape(h, w)


def test_product_cxi_reads_back_with_our_reader(tmp_path):
    """Our CXI diffraction file + our CXI product, read by our reader: positions on the canvas
    (dataset px - origin) to 0.01 px, object and probe exactly as written (complex64)."""
    ds = load_dataset(FIX)
    canvas = _canvas(30, 32)
    probe = (np.arange(64).reshape(8, 8) * np.exp(0.3j)).astype(np.complex64)
    origin = (1.0, 2.0)
    prod = _export(tmp_path, canvas, origin, probe=probe)
    assert main(["convert", str(FIX), "-o", str(tmp_path / "diffraction.cxi"), "--to", "cxi", "-q"]) == 0
    back = load_dataset(tmp_path / "diffraction.cxi", options=InputOptions(product=str(prod)))
    np.testing.assert_allclose(back.xcoords, ds.xcoords - origin[1], atol=0.01)
    np.testing.assert_allclose(back.ycoords, ds.ycoords - origin[0], atol=0.01)
    np.testing.assert_array_equal(back.object, canvas.astype(np.complex64))
    np.testing.assert_array_equal(back.probe, probe)
    np.testing.assert_allclose(back.diff3d, ds.diff3d, rtol=1e-6)  # paired row for row
    g, g0 = back.metadata["geometry"], ds.metadata["geometry"]
    assert g["object_pixel_m"] == pytest.approx(g0["object_pixel_m"], rel=1e-12)
    assert g["energy_eV"] == pytest.approx(8000.0) and g["distance_m"] == pytest.approx(2.0)


def test_product_cxi_tree_matches_ptychodus_fixture(tmp_path):
    """Same paths, links, shapes, dtypes and attributes as ptychodus 1.7.0's own product.cxi for
    the same scan, and the same positions in ptychodus's object pixels."""
    e = _expected()
    ds = load_dataset(FIX)
    prod = _export(tmp_path, ds.object, origin=(0.0, 0.0), probe=ds.probe, losses=(1.0,))
    ours, theirs = _tree(prod), _tree(FIX / "product.cxi")
    assert set(ours) - OPTIONAL == set(theirs)
    for k in theirs:
        assert ours[k] == theirs[k], k
    with h5py.File(prod) as f, h5py.File(FIX / "product.cxi") as g:
        for k in ("entry_1/image_1/data_type", "entry_1/image_1/data_space", "entry_1/image_2/data_type",
                  "entry_1/image_2/data_space"):
            assert f[k][()] == g[k][()], k
        for k in ("cxi_version", "entry_1/instrument_1/source_1/energy", "entry_1/instrument_1/detector_1/distance",
                  "entry_1/ptychodus/probe_pixel_width_m", "entry_1/ptychodus/object_pixel_height_m",
                  "entry_1/image_1/image_size", "entry_1/image_2/image_size", "entry_1/ptychodus/loss_values"):
            np.testing.assert_allclose(f[k][()], g[k][()], rtol=1e-9, err_msg=k)
        np.testing.assert_array_equal(f["entry_1/image_1/data"][()], g["entry_1/image_1/data"][()])
        np.testing.assert_array_equal(f["entry_1/image_2/data"][()], g["entry_1/image_2/data"][()])

        def px(h, axis):  # ptychodus: (t - centre) / pixel + (W-1)/2, patch centre (N-1)/2
            pt = h["entry_1/ptychodus"]
            c, p = (("object_center_x_m", "object_pixel_width_m"), ("object_center_y_m", "object_pixel_height_m"))[axis]
            size = h["entry_1/image_2/data"].shape[-1 - axis]
            return (h["entry_1/sample_1/geometry_1/translation"][:, axis] - pt[c][()]) / pt[p][()] + (size - 1) / 2
        for axis, key in ((0, "ptychodus_x_px"), (1, "ptychodus_y_px")):
            np.testing.assert_allclose(px(f, axis), px(g, axis), atol=1e-6)
            np.testing.assert_allclose(px(f, axis), e[key], atol=1e-6)


def test_product_cxi_read_by_ptychodus(tmp_path):
    try:
        from ptychodus.plugins.cxi_file import CXIProductFileIO
    except ImportError as exc:
        pytest.skip(f"ptychodus is not installed ({exc}); its own reader cannot be run")
    ds = load_dataset(FIX)
    canvas = _canvas(30, 32)
    origin = (1.0, 2.0)
    prod = _export(tmp_path, canvas, origin)
    p = CXIProductFileIO().read(prod)
    assert p.metadata.photon_energy_eV == pytest.approx(8000.0)
    assert p.metadata.detector_distance_m == pytest.approx(2.0)
    np.testing.assert_array_equal(p.object_.get_array()[0], canvas.astype(np.complex64))
    np.testing.assert_array_equal(np.asarray(p.probes.get_array())[0, 0], ds.probe.astype(np.complex64))
    geom = p.object_.get_geometry()
    shift = ds.N // 2 - (ds.N - 1) / 2  # ptychodus centres a patch at (N-1)/2, we at N//2
    np.testing.assert_allclose(geom.map_probe_positions_to_object_x_px(p.probe_positions),
                               ds.xcoords - origin[1] - shift, atol=0.01)
    np.testing.assert_allclose(geom.map_probe_positions_to_object_y_px(p.probe_positions),
                               ds.ycoords - origin[0] - shift, atol=0.01)
    assert [pos.index for pos in p.probe_positions] == list(range(ds.n_patterns))
    assert [loss.value for loss in p.losses] == [3.0, 2.0]


def test_product_cxi_refusals(tmp_path, capsys):
    assert main(["convert", str(FIX), "-o", str(tmp_path / "p.cxi"), "--to", "product-cxi"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--to product-cxi needs --reconstruction" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "p.cxi").exists()
    # a frame without energy or distance: refused, nothing guessed, nothing written
    ds = load_dataset(FIX)
    geometry = {"position_affine": {"x0_m": 0.0, "y0_m": 0.0, "dx_m": 1e-7, "dy_m": 1e-7}}
    with pytest.raises(DataError, match="--energy-ev, --distance-m"):
        write_ptychodus_product_cxi(tmp_path / "p.cxi", np.ones((20, 24)), (0.0, 0.0), ds.probe, ds, geometry)
    assert list(tmp_path.iterdir()) == []
