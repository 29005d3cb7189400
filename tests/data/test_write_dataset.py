"""``data.formats.write_dataset``: what ``convert`` writes, called from Python (oracles: our reader
round trip and the HDF5 datasets read with plain h5py)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from ptychopinn.data.contract import load_dataset
from ptychopinn.data.cxi import InputOptions
from ptychopinn.data.formats import write_dataset
from ptychopinn.data.reconstruction import Reconstruction
from ptychopinn.errors import ConfigError, DataError

FIX = Path(__file__).parent / "fixtures" / "ptychodus"


def test_write_dataset_picks_the_format_by_suffix(tmp_path):
    ds = load_dataset(FIX)
    write_dataset(tmp_path / "d.npz", ds)
    back = load_dataset(tmp_path / "d.npz", check_bounds=False)
    np.testing.assert_array_equal(back.diff3d, ds.diff3d)
    write_dataset(tmp_path / "d.cxi", ds)  # the geometry recorded in ds
    back = load_dataset(tmp_path / "d.cxi")
    np.testing.assert_allclose(back.xcoords, ds.xcoords, atol=0.01)


def test_write_dataset_product_from_a_path_or_an_object(tmp_path):
    ds = load_dataset(FIX)
    canvas = (np.exp(1j * np.linspace(0, 2, 30 * 32)) * np.linspace(0.5, 1.5, 30 * 32)).reshape(30, 32)
    np.savez(tmp_path / "rec.npz", object=canvas, origin=np.array([1.0, 2.0]), loss_history=np.array([3.0, 2.0]))
    write_dataset(tmp_path / "d.cxi", ds)
    for name, rec, losses in (("a.cxi", tmp_path / "rec.npz", [3.0, 2.0]),
                              ("b.cxi", Reconstruction(object=canvas, origin=(1.0, 2.0)), None)):
        write_dataset(tmp_path / name, ds, "product-cxi", reconstruction=rec)
        back = load_dataset(tmp_path / "d.cxi", options=InputOptions(product=str(tmp_path / name)))
        np.testing.assert_array_equal(back.object, canvas.astype(np.complex64))
        np.testing.assert_allclose(back.xcoords, ds.xcoords - 2.0, atol=0.01)
        with h5py.File(tmp_path / name) as f:
            stored = f["entry_1/ptychodus/loss_values"][()] if "entry_1/ptychodus/loss_values" in f else []
            np.testing.assert_array_equal(stored, losses or [])


def test_write_dataset_refusals(tmp_path):
    ds = load_dataset(FIX)
    with pytest.raises(ConfigError, match="format product writes a reconstruction"):
        write_dataset(tmp_path / "p.h5", ds, "product")
    ds.metadata.pop("geometry")
    with pytest.raises(DataError, match="no beamline geometry recorded.*--energy-ev"):
        write_dataset(tmp_path / "x.cxi", ds)
