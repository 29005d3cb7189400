"""The format registry: detection by name, the reader a new format plugs in, the input options
that moved from the CLI into load_dataset (fftshift, mask file, probe file, refusals)."""

import numpy as np
import pytest

from ptychopinn.data import formats
from ptychopinn.data.contract import load_dataset
from ptychopinn.data.cxi import InputOptions, PositionConvention
from ptychopinn.errors import ConfigError

M, N = 5, 8


def _arrays():
    rng = np.random.default_rng(1)
    return {"diff3d": rng.random((M, N, N)).astype(np.float32) + 0.1,
            "probeGuess": (rng.random((N, N)) + 1j * rng.random((N, N))).astype(np.complex64),
            "xcoords": np.linspace(10, 20, M), "ycoords": np.linspace(12, 22, M)}


@pytest.mark.parametrize("path,name", [("a.cxi", "hdf5"), ("B.H5", "hdf5"), ("c.hdf5", "hdf5"),
                                       ("scan.npz.bz2", "tike"), ("d.npz", "npz"), ("e", "npz")])
def test_reader_detected_by_name(path, name):
    assert formats.reader_for(path).name == name


def test_named_formats_and_unknown_names():
    assert formats.reader_for("x.cxi", "tike").name == "tike"
    assert formats.writer_for("out.cxi").name == "cxi"
    assert formats.writer_for("out.npz").name == "npz"
    assert formats.writer_for("out.h5", "product").reconstruction
    with pytest.raises(ConfigError, match="unknown input format 'nope'"):
        formats.reader_for("a.npz", "nope")
    with pytest.raises(ConfigError, match="unknown output format 'nope'"):
        formats.writer_for("a.npz", "nope")


def test_a_registered_reader_is_used_by_load_dataset(tmp_path, monkeypatch):
    """One registry entry makes a new format loadable (the extension point docs/contributing.md shows)."""
    src = _arrays()
    fake = formats.Reader("fake", lambda p, o, probe: dict(src), lambda p: p.endswith(".fake"), False, "test")
    monkeypatch.setattr(formats, "READERS", {"fake": fake, **formats.READERS})  # detected before npz
    ds = load_dataset(tmp_path / "scan.fake")
    np.testing.assert_array_equal(ds.diff3d, src["diff3d"])
    np.testing.assert_array_equal(ds.xcoords, src["xcoords"])


def test_input_options_fftshift_mask_and_probe(tmp_path):
    a = _arrays()
    np.savez(tmp_path / "d.npz", **a)
    mask = np.zeros((N, N), bool)
    mask[0, 1] = True
    np.save(tmp_path / "m.npy", mask)
    other = np.full((N, N), 2 + 1j, np.complex64)
    np.savez(tmp_path / "p.npz", probeGuess=other)
    ds = load_dataset(tmp_path / "d.npz", options=InputOptions(fftshift=True, mask=str(tmp_path / "m.npy"),
                                                               probe_from=str(tmp_path / "p.npz")))
    # oracle: numpy's fftshift of the stored patterns; the mask file is in the shifted frame as given
    good = ~mask
    np.testing.assert_array_equal(ds.diff3d[:, good], np.fft.fftshift(a["diff3d"], axes=(1, 2))[:, good])
    assert ds.mask is not None and bool(ds.mask[0, 1]) and int(ds.mask.sum()) == 1
    np.testing.assert_array_equal(ds.probe, other)
    assert "p.npz" in ds.metadata["probe_source"]


@pytest.mark.parametrize("opts,flag", [(InputOptions(PositionConvention(flip="x")), "--flip-positions"),
                                       (InputOptions(PositionConvention(transpose=True)), "--transpose-positions"),
                                       (InputOptions(product="p.h5"), "--product")])
def test_position_options_refused_on_pixel_positions(tmp_path, opts, flag):
    np.savez(tmp_path / "d.npz", **_arrays())
    with pytest.raises(ConfigError, match=f"{flag} applies to beamline files"):
        load_dataset(tmp_path / "d.npz", options=opts)
