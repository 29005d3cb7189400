"""The file formats: one registry of readers and one of writers, keyed by format name.

A reader turns a path into contract arrays (a dict of the ``PtychoDataset`` keys; ``_metadata`` a
dict); :func:`ptychopinn.data.contract.load_dataset` picks it with :func:`reader_for`. A writer
writes a dataset (and, for a product, a reconstruction). ``validate``, ``convert``, ``train``,
``infer`` and ``iterative`` all read through here; ``convert --from/--to`` list the names.
Adding a format: its reader/writer functions in their own module plus one entry below
(docs/contributing.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn.errors import ConfigError

#: suffixes of the HDF5 layouts (CXI, ptychodus); any case
HDF5_SUFFIXES = (".h5", ".hdf5", ".cxi")


def is_hdf5_path(path: str | os.PathLike) -> bool:
    """True when ``path`` names a CXI / ptychodus HDF5 file by its suffix (any case)."""
    return os.fspath(path).lower().endswith(HDF5_SUFFIXES)


@dataclass(frozen=True)
class Reader:
    """``read(path, options, probe) -> arrays``; ``claims(path)``: auto-detection by name;
    ``beamline``: positions in metres, so the position-convention options apply."""

    name: str
    read: Callable[[str, Any, np.ndarray | None], dict[str, Any]]
    claims: Callable[[str], bool]
    beamline: bool
    help: str


@dataclass(frozen=True)
class Writer:
    """``write(path, ds, geometry=..., reconstruction=..., losses=...)``; ``suffixes`` pick it from the output
    name; ``geometry``: needs the photon energy and distance; ``reconstruction``: writes one."""

    name: str
    write: Callable[..., Any]
    suffixes: tuple[str, ...]
    geometry: bool
    reconstruction: bool
    help: str


def _read_hdf5(p: str, options: Any, probe: np.ndarray | None) -> dict[str, Any]:
    from ptychopinn.data.cxi import read_hdf5_input

    return read_hdf5_input(p, options, probe)


def _read_tike(p: str, options: Any, probe: np.ndarray | None) -> dict[str, Any]:
    from ptychopinn.data.tike import read_tike

    return read_tike(p)


def _read_npz(p: str, options: Any, probe: np.ndarray | None) -> dict[str, Any]:
    from ptychopinn.data.contract import open_npz
    from ptychopinn.data.cxi import from_ptychodus_training_npz, is_ptychodus_training_npz

    z = open_npz(p)
    return from_ptychodus_training_npz(p, z) if is_ptychodus_training_npz(z) else z


#: in detection order: the first whose ``claims`` accepts the path reads it (npz is the fallback)
READERS: dict[str, Reader] = {
    "hdf5": Reader("hdf5", _read_hdf5, lambda p: os.path.isdir(p) or is_hdf5_path(p), True,
                   "CXI 1.6, ptychodus diffraction/product HDF5 pair or workflow directory (positions in metres)"),
    "tike": Reader("tike", _read_tike, lambda p: p.lower().endswith(".bz2"), False,
                   "tike's NPZ or NPZ.bz2: data (intensities, zero frequency in the corner), probe, "
                   "scan (top-left corners y, x)"),
    "npz": Reader("npz", _read_npz, lambda p: True, False,
                  "the contract NPZ (or a legacy variant, or ptychodus's training NPZ)"),
}


def reader_for(path: str | os.PathLike, fmt: str = "auto") -> Reader:
    """The reader named ``fmt``, or with ``"auto"`` the first that claims ``path``."""
    if fmt != "auto":
        if fmt not in READERS:
            raise ConfigError(f"unknown input format {fmt!r} (known: auto, {', '.join(READERS)})")
        return READERS[fmt]
    p = os.fspath(path)
    return next(r for r in READERS.values() if r.claims(p))


def _write_npz(path: str, ds: Any, **_: Any) -> Path:
    return ds.save(path)


def _write_cxi(path: str, ds: Any, geometry: Any = None, **_: Any) -> Path:
    from ptychopinn.data.cxi import write_cxi

    return write_cxi(ds, path, geometry)


def _product_writer(cxi_layout: bool) -> Callable[..., Path]:
    def write(path: str, ds: Any, geometry: Any = None, reconstruction: Any = None, losses: Any = None) -> Path:
        """``reconstruction``: a :class:`~ptychopinn.data.reconstruction.Reconstruction` (its probe,
        else the dataset's); ``losses``: its loss history, if any."""
        from ptychopinn.data import cxi

        rec = reconstruction
        probe = ds.probe if rec.probe is None else rec.probe
        fn = cxi.write_ptychodus_product_cxi if cxi_layout else cxi.write_ptychodus_product
        return fn(path, np.where(np.isfinite(rec.object), rec.object, 0), rec.origin, probe, ds, geometry, losses=losses)

    return write


WRITERS: dict[str, Writer] = {
    "npz": Writer("npz", _write_npz, (".npz",), False, False,
                  "the contract NPZ (sqrt(counts), positions in object pixels, geometry in _metadata)"),
    "cxi": Writer("cxi", _write_cxi, (".cxi",), True, False,
                  "a CXI 1.6 file (counts, translations in metres, probe, object)"),
    "product": Writer("product", _product_writer(False), (), True, True,
                      "a ptychodus product.h5 holding a reconstruction, the probe and the positions in metres"),
    "product-cxi": Writer("product-cxi", _product_writer(True), (), True, True,
                          "the same product as a ptychodus product.cxi (CXI 1.6 layout)"),
}


def writer_for(path: str | os.PathLike, fmt: str | None = None) -> Writer:
    """The writer named ``fmt``, else the one whose suffix ``path`` has (default npz)."""
    if fmt is not None:
        if fmt not in WRITERS:
            raise ConfigError(f"unknown output format {fmt!r} (known: {', '.join(WRITERS)})")
        return WRITERS[fmt]
    low = os.fspath(path).lower()
    return next((w for w in WRITERS.values() if low.endswith(w.suffixes)), WRITERS["npz"])


def write_dataset(path: str | os.PathLike, ds: Any, fmt: str | None = None, *, reconstruction: Any = None,
                  losses: Any = None, energy_ev: float | None = None, distance_m: float | None = None,
                  detector_pixel_m: float | None = None) -> Path:
    """Write ``ds`` to ``path`` in format ``fmt`` (default: by ``path``'s suffix, :func:`writer_for`),
    as ``convert`` does. The CXI and product formats take the geometry recorded in ``ds`` or built
    from ``energy_ev``, ``distance_m`` and ``detector_pixel_m``. The product formats write
    ``reconstruction`` (a :class:`~ptychopinn.data.reconstruction.Reconstruction`, or a reconstruction
    NPZ path: ``reconstruction.npz`` of ``infer``, ``ptychi_reconstruction.npz`` of ``iterative``,
    whose ``loss_history`` is written unless ``losses`` is given, as is a pty-chi result's)."""
    w = writer_for(path, fmt)
    if w.reconstruction and reconstruction is None:
        raise ConfigError(f"format {w.name} writes a reconstruction: give one")
    geometry = None
    if w.geometry:
        from ptychopinn.data.cxi import geometry_for_writing

        geometry = geometry_for_writing(ds, energy_ev, distance_m, detector_pixel_m)
    rec = None
    if w.reconstruction:
        from ptychopinn.data.reconstruction import Reconstruction

        if isinstance(reconstruction, (str, os.PathLike)):
            from ptychopinn.data.contract import open_npz

            rec = Reconstruction.load(reconstruction, "PtychoPINN")
            z = open_npz(reconstruction)
            losses = z["loss_history"] if losses is None and "loss_history" in z else losses
        else:
            rec = Reconstruction.load(reconstruction)
            losses = getattr(reconstruction, "loss_history", None) if losses is None else losses
    return w.write(os.fspath(path), ds, geometry=geometry, reconstruction=rec, losses=losses)
