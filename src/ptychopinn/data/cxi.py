"""Beamline HDF5 input and output: CXI 1.6, ptychodus files, positions in metres.

Layouts read (each turned into the arrays of the NPZ contract, see ``docs/cxi.md``):

* **CXI 1.6** as cxidb and ptychodus write it: counts at ``entry_1/data_1/data`` (or
  ``entry_1/instrument_1/detector_1/data``), translations ``entry_1/sample_1/geometry_1/translation``
  (M, 3) in metres, energy (J), detector distance and pixel sizes (m), optional bad-pixel ``mask``
  (nonzero = bad), optional probe ``entry_1/image_1/data`` and object ``entry_1/image_2/data``.
  A ptychodus CXI *pair* (diffraction file + product file) is read with ``product=``.
* **ptychodus** ``diffraction.h5`` + ``product.h5`` (a workflow directory, or ``product=``), and
  its training-data HDF5 (``save_training_data``).
* The contract's own keys stored as root datasets (the older HDF5 form).
* ptychodus's PtychoPINN training export NPZ: see :func:`from_ptychodus_training_npz`.

Geometry: object pixel size = lambda * distance / (N * detector pixel) (x with the detector's
``x_pixel_size``, y with ``y_pixel_size``); lambda = h c / E. Positions: translation column 0 is x
(object columns), column 1 is y (object rows, increasing downwards), taken as the probe position
on the sample (the ptychodus convention). :class:`PositionConvention` can transpose (swap the two
columns first) and flip (negate an axis) because facilities differ; nothing is guessed silently.
Without an object frame in the file, the metres are mapped to pixels with the smallest position
at N//2 on each axis (every patch starts at index >= 0); the affine map is kept in the metadata
(``geometry.position_affine``) and ``--to cxi`` inverts it exactly.

ptychodus puts a patch centre at (N-1)/2 of the N x N window, this project at N//2: positions
read from a ptychodus object frame are shifted by N//2 - (N-1)/2 (+0.5 px for even N).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn.errors import DataError

H_PLANCK = 6.62607015e-34  # J s
C_LIGHT = 299792458.0  # m / s
EV_J = 1.602176634e-19  # J per eV

# CXI paths (without the leading slash)
DATA = "entry_1/data_1/data"
DETECTOR_DATA = "entry_1/instrument_1/detector_1/data"
TRANSLATION = "entry_1/sample_1/geometry_1/translation"
DATA_TRANSLATION = "entry_1/data_1/translation"
ENERGY = "entry_1/instrument_1/source_1/energy"
DISTANCE = "entry_1/instrument_1/detector_1/distance"
X_PIXEL = "entry_1/instrument_1/detector_1/x_pixel_size"
Y_PIXEL = "entry_1/instrument_1/detector_1/y_pixel_size"
MASK = "entry_1/instrument_1/detector_1/mask"
PROBE = "entry_1/image_1/data"
ILLUMINATION = "entry_1/instrument_1/source_1/illumination"
OBJECT = "entry_1/image_2/data"
PT = "entry_1/ptychodus"  # ptychodus extension group
PT_INDEXES = f"{PT}/probe_position_indexes"
OUR = "entry_1/ptychopinn"  # our extension group (written by write_cxi)

_PATTERN_HINT = "for a ptychodus diffraction file pass its product with --product"


def _err(path: str, where: str | None, problem: str) -> DataError:
    return DataError(f"{path}" + (f": {where}" if where else "") + f": {problem}")


def wavelength_m(energy_J: float) -> float:
    return H_PLANCK * C_LIGHT / float(energy_J)


def object_pixel_size_m(energy_J: float, distance_m: float, detector_pixel_m: float, n: int) -> float:
    """Far-field object pixel size lambda * z / (N * detector pixel)."""
    return wavelength_m(energy_J) * float(distance_m) / (int(n) * float(detector_pixel_m))


@dataclass(frozen=True)
class PositionConvention:
    """How file translations map onto object axes: ``transpose`` swaps the file's x and y first,
    then ``flip`` ("", "x", "y" or "xy") negates the named object axis."""

    flip: str = ""
    transpose: bool = False

    def __post_init__(self) -> None:
        if self.flip not in ("", "x", "y", "xy", "yx"):
            raise DataError(f"--flip-positions: expected x, y or xy; got {self.flip!r}")

    def forward(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """File (x, y) -> object-axis (u, v) (u along columns, v along rows)."""
        u, v = (y, x) if self.transpose else (x, y)
        return (-u if "x" in self.flip else u), (-v if "y" in self.flip else v)

    def inverse(self, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = -u if "x" in self.flip else u
        v = -v if "y" in self.flip else v
        return (v, u) if self.transpose else (u, v)


@dataclass(frozen=True)
class InputOptions:
    """Reader options of :func:`~ptychopinn.data.contract.load_dataset` (the command-line input
    options): the position convention and ``product`` apply to beamline files only."""

    convention: PositionConvention = PositionConvention()
    product: str | None = None  # the product half of a ptychodus pair
    fftshift: bool = False  # patterns stored with the zero frequency in the corner
    source_format: str = "auto"  # a reader of data.formats.READERS, or auto (by name)
    mask: str | None = None  # detector mask file (.npy, or NPZ key 'mask'), joined to the file's own
    probe_from: str | None = None  # replace the file's probe with the one in this file

    def changes(self, path: str | os.PathLike) -> bool:
        """True when these options (or a beamline reader for ``path``) change what is read from
        ``path``; else ``path`` itself may be handed to a function that reads the NPZ contract."""
        from ptychopinn.data.formats import reader_for

        c = self.convention
        return bool(self.probe_from or self.product or c.flip or c.transpose or self.fftshift or self.mask
                    or reader_for(path, self.source_format).beamline)


# ---------------------------------------------------------------------------------------------
# small h5py helpers
# ---------------------------------------------------------------------------------------------
def _h5py():
    import h5py

    return h5py


def _dataset(f: Any, path: str):
    h5py = _h5py()
    try:
        item = f.get(path)
    except (KeyError, ValueError, OSError):  # dangling soft link, broken file
        return None
    return item if isinstance(item, h5py.Dataset) else None


def _scalar(f: Any, fname: str, path: str, *, required: bool, hint: str = "") -> float | None:
    d = _dataset(f, path)
    if d is None:
        if required:
            raise _err(fname, path, "missing" + (f" ({hint})" if hint else ""))
        return None
    a = np.asarray(d[()])
    if a.dtype.kind not in "fiu" or a.size != 1:
        raise _err(fname, path, f"must be one real number; got shape {a.shape} {a.dtype}")
    v = float(a.reshape(-1)[0])
    if not math.isfinite(v) or v <= 0:
        raise _err(fname, path, f"must be a positive finite number; got {v}")
    return v


def _attr(fname: str, obj: Any, key: str, where: str) -> float:
    if key not in obj.attrs:
        raise _err(fname, f"{where} attribute '{key}'", "missing")
    v = float(np.asarray(obj.attrs[key]).reshape(-1)[0])
    if not math.isfinite(v):
        raise _err(fname, f"{where} attribute '{key}'", f"not finite ({v})")
    return v


def _counts_to_amplitude(fname: str, path: str, a: np.ndarray, mask: np.ndarray | None,
                         fftshift: bool) -> tuple[np.ndarray, dict[str, Any], np.ndarray | None]:
    """Counts (M, N, N) -> (sqrt(counts) float32 (in float64) with bad pixels filled, notes,
    the bad-pixel mask in the returned patterns' layout or None when no pixel is bad)."""
    notes: dict[str, Any] = {"counts_dtype": str(a.dtype)}
    if np.iscomplexobj(a) or a.dtype.kind not in "fiub":
        raise _err(fname, path, f"must hold real counts; got dtype {a.dtype}")
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 3 or a.shape[1] != a.shape[2]:
        raise _err(fname, path, f"must be (M, N, N) square patterns; got shape {a.shape}")
    c = a.astype(np.float64)
    if fftshift:
        c = np.fft.fftshift(c, axes=(1, 2))
        mask = None if mask is None else np.fft.fftshift(mask)
        notes["fftshift_applied"] = True
    bad = np.zeros(c.shape[1:], dtype=bool) if mask is None else mask
    finite = np.isfinite(c)
    if not finite[:, ~bad].all():
        raise _err(fname, path, "contains NaN or Inf counts outside the bad-pixel mask")
    if np.any(c[:, ~bad] < 0):
        raise _err(fname, path, "contains negative counts outside the bad-pixel mask")
    if bad.any():
        c = fill_bad_pixels(c, bad)
        notes["bad_pixels_filled"] = int(bad.sum())
        notes["bad_pixel_fill"] = "mean of the good pixels in the 3x3 neighbourhood, repeated until filled"
    return np.sqrt(c).astype(np.float32), notes, (bad if bad.any() else None)


def fill_bad_pixels(counts: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Replace bad pixels (M, N, N) by the mean of their good 3x3 neighbours (grown inwards)."""
    from scipy import ndimage

    c = np.where(bad[None], 0.0, counts)
    good = (~bad).astype(np.float64)
    if not good.any():
        raise DataError("bad-pixel mask marks every pixel bad")
    k = np.ones((1, 3, 3))
    known = good.copy()
    while (known == 0).any():
        s = ndimage.convolve(c * known[None], k, mode="constant")
        w = ndimage.convolve(known[None], k, mode="constant")
        newly = (known == 0) & (w[0] > 0)
        c[:, newly] = s[:, newly] / w[:, newly]
        known[newly] = 1.0
    return c


def _probe_array(fname: str, path: str, a: np.ndarray, n: int) -> tuple[np.ndarray, dict[str, Any]]:
    notes: dict[str, Any] = {}
    a = np.asarray(a)
    if a.dtype.kind not in "fc":
        raise _err(fname, path, f"probe must be a real/complex array; got {a.dtype}")
    while a.ndim > 2:
        if a.shape[0] > 1:
            notes["probe_modes_dropped"] = notes.get("probe_modes_dropped", 0) + a.shape[0] - 1
        a = a[0]
    if a.shape != (n, n):
        raise _err(fname, path, f"probe shape {a.shape} does not match the ({n}, {n}) patterns")
    if not np.all(np.isfinite(a)):
        raise _err(fname, path, "probe contains NaN or Inf")
    if notes:
        notes["probe_mode_used"] = "first (dominant) mode"
    return a.astype(np.complex64), notes


# ---------------------------------------------------------------------------------------------
# geometry: metres -> object pixels
# ---------------------------------------------------------------------------------------------
def centre_shift(n: int) -> float:
    """Our patch centre minus ptychodus's: N//2 - (N-1)/2 (0.5 for even N, 0 for odd)."""
    return n // 2 - (n - 1) / 2.0


def metres_to_pixels(x_m: np.ndarray, y_m: np.ndarray, dx_m: float, dy_m: float, n: int,
                     convention: PositionConvention, origin_m: tuple[float, float] | None = None,
                     ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """File translations (m) -> patch centres (object px) and the affine map used.

    ``u, v = convention.forward(x_m, y_m)``; ``xcoords = (u - x0_m) / dx_m``,
    ``ycoords = (v - y0_m) / dy_m``. Without ``origin_m`` = (x0_m, y0_m) the origin puts the
    smallest position at N//2.
    """
    u, v = convention.forward(np.asarray(x_m, np.float64), np.asarray(y_m, np.float64))
    if origin_m is None:
        origin_m = (float(u.min() - (n // 2) * dx_m), float(v.min() - (n // 2) * dy_m))
    x = (u - origin_m[0]) / dx_m
    y = (v - origin_m[1]) / dy_m
    affine = {"x0_m": origin_m[0], "y0_m": origin_m[1], "dx_m": dx_m, "dy_m": dy_m,
              "meaning": "u = x0_m + xcoords * dx_m, v = y0_m + ycoords * dy_m, (u, v) = convention(file x, y)"}
    return x, y, affine


def pixels_to_metres(x: np.ndarray, y: np.ndarray, affine: dict[str, Any],
                     convention: PositionConvention) -> tuple[np.ndarray, np.ndarray]:
    u = affine["x0_m"] + np.asarray(x, np.float64) * affine["dx_m"]
    v = affine["y0_m"] + np.asarray(y, np.float64) * affine["dy_m"]
    return convention.inverse(u, v)


# ---------------------------------------------------------------------------------------------
# readers
# ---------------------------------------------------------------------------------------------
def _open(path: str):
    h5py = _h5py()
    if not os.path.exists(path):
        raise _err(path, None, "file not found")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise _err(path, None, f"not a readable HDF5 file ({exc})") from None


def read_probe(path: str) -> tuple[np.ndarray, str]:
    """(array, HDF5 path) of the probe stored in a CXI file or a ptychodus product (the first of
    :data:`PROBE`, :data:`ILLUMINATION`, ``probe``, ``probeGuess``); DataError naming the file when
    it holds none. The array is returned as stored (modes and all)."""
    with _open(path) as f:
        for key in (PROBE, ILLUMINATION, "probe", "probeGuess"):
            d = _dataset(f, key)
            if d is not None:
                return np.asarray(d[()]), key
    raise DataError(f"{path}: key '{PROBE}': missing (also looked for {ILLUMINATION}, probe)")


def _kind(f: Any) -> str:
    """'cxi', 'ptychodus_diffraction', 'ptychodus_product', 'root_contract' or 'unknown'."""
    if "entry_1" in f:
        return "cxi"
    if "patterns" in f and "probe_position_x_px" in f:
        return "ptychodus_training"
    if "patterns" in f and "indexes" in f:
        return "ptychodus_diffraction"
    if "probe_position_x_m" in f and "probe" in f:
        return "ptychodus_product"
    if "diff3d" in f or "diffraction" in f:
        return "root_contract"
    return "unknown"


def read_hdf5_input(path: str | os.PathLike, options: InputOptions | None = None,
                    probe: np.ndarray | None = None) -> dict[str, Any]:
    """Read any supported HDF5 layout (or a ptychodus workflow directory) to contract arrays.

    Returns a dict with the contract keys; ``_metadata`` is a dict (not yet JSON). ``probe``
    replaces the file's probe (and may stand in for a missing one).
    """
    opts = options or InputOptions()
    p = str(path)
    product = opts.product
    if os.path.isdir(p):
        pairs = (("diffraction.h5", "product.h5"), ("diffraction.cxi", "product.cxi"))
        for d, pr in pairs:
            if os.path.isfile(os.path.join(p, d)):
                if product is None and not os.path.isfile(os.path.join(p, pr)):
                    raise _err(p, None, f"holds {d} but not {pr}: the product half (positions, probe) "
                                        "is missing")
                product = product or os.path.join(p, pr)
                p = os.path.join(p, d)
                break
        else:
            if any(os.path.isfile(os.path.join(p, pr)) for _, pr in pairs):
                raise _err(p, None, "holds a ptychodus product file but no diffraction.h5/diffraction.cxi: "
                                    "the diffraction half is missing")
            raise _err(p, None, "a directory, but not a ptychodus workflow directory "
                                "(diffraction.h5 + product.h5 or diffraction.cxi + product.cxi)")
    with _open(p) as f:
        kind = _kind(f)
        if kind == "root_contract":
            from ptychopinn.data.hdf5 import read_hdf5_arrays

            z: dict[str, Any] = read_hdf5_arrays(p)
            if probe is not None:
                z["probeGuess"] = probe
            return z
        if kind == "ptychodus_product":
            raise _err(p, None, "a ptychodus product file: the diffraction half is missing (pass the "
                                "diffraction file as input, this one with --product)")
        if kind == "unknown":
            raise _err(p, DATA, "missing: not a CXI file (no entry_1), not a ptychodus diffraction.h5 "
                                "(patterns + indexes) and no contract keys (diff3d) at the root")
        if kind == "ptychodus_training":
            return _read_ptychodus_training_h5(p, f, opts, probe)
        if kind == "ptychodus_diffraction":
            if product is None:
                raise _err(p, "patterns", "a ptychodus diffraction file: the product half (positions, energy, "
                                          "distance) is missing; pass it with --product")
            return _read_ptychodus_h5_pair(p, f, product, opts, probe)
        return _read_cxi(p, f, product, opts, probe)


@dataclass
class _Frame:
    """A ptychodus object frame: centre (m), pixel size (m), object (H, W)."""

    object: np.ndarray
    cx_m: float
    cy_m: float
    dx_m: float
    dy_m: float


def _positions_in_frame(x_m: np.ndarray, y_m: np.ndarray, frame: _Frame, n: int,
                        convention: PositionConvention) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """Positions and object in a ptychodus object frame, with the convention applied to both."""
    obj = frame.object
    du, dv = frame.dx_m, frame.dy_m
    if convention.transpose:
        obj, du, dv = obj.T, dv, du
    if "x" in convention.flip:
        obj = obj[:, ::-1]
    if "y" in convention.flip:
        obj = obj[::-1, :]
    h, w = obj.shape
    cu, cv = convention.forward(np.array([frame.cx_m]), np.array([frame.cy_m]))
    # ptychodus: px = (u - cu) / du + (W - 1)/2 with the patch centre at (N-1)/2; ours adds
    # N//2 - (N-1)/2, so xcoords = (u - x0) / du with x0 = cu - ((W-1)/2 + shift) du
    shift = centre_shift(n)
    x0 = float(cu[0]) - ((w - 1) / 2.0 + shift) * du
    y0 = float(cv[0]) - ((h - 1) / 2.0 + shift) * dv
    x, y, affine = metres_to_pixels(x_m, y_m, du, dv, n, convention, origin_m=(x0, y0))
    affine["frame"] = "ptychodus object frame (patch centre (N-1)/2 converted to N//2)"
    return np.ascontiguousarray(obj), x, y, affine


def _pair_by_index(fname: str, pattern_index: np.ndarray, position_index: np.ndarray,
                   product: str, index_path: str = "probe_position_indexes") -> tuple[np.ndarray, int]:
    """(row of the pattern for every position, number of patterns without a position).

    Patterns and positions are paired by scan index, never by order; a position index without a
    pattern, or an index given twice, is refused."""
    pattern_index = np.asarray(pattern_index).reshape(-1)
    position_index = np.asarray(position_index).reshape(-1)
    if pattern_index.dtype.kind not in "iu" or position_index.dtype.kind not in "iu":
        raise _err(product, index_path, "scan indexes must be integers")
    uniq, counts = np.unique(pattern_index, return_counts=True)
    if np.any(counts > 1):
        raise _err(fname, "indexes", f"scan index {int(uniq[counts > 1][0])} is given to more than one pattern")
    uniq, counts = np.unique(position_index, return_counts=True)
    if np.any(counts > 1):
        raise _err(product, index_path, f"scan index {int(uniq[counts > 1][0])} is given to more than one position")
    lookup = {int(k): i for i, k in enumerate(pattern_index)}
    missing = [int(k) for k in position_index if int(k) not in lookup]
    if missing:
        raise _err(product, index_path,
                   f"{len(missing)} position index(es) have no pattern in {fname} (first: {missing[0]})")
    rows = np.array([lookup[int(k)] for k in position_index], dtype=np.int64)
    return rows, int(len(pattern_index) - len(rows))


def _note_dropped(notes: dict[str, Any], dropped: int, how: str) -> None:
    if dropped:
        notes["patterns_without_position_dropped"] = dropped
        notes["pairing"] = how


def _read_cxi(p: str, f: Any, product: str | None, opts: InputOptions,
              probe: np.ndarray | None) -> dict[str, Any]:
    dpath, amp, notes, mask, (m, n) = _cxi_patterns(p, f, opts)
    pf = None
    try:
        if product is not None:
            pf = _open(product)
        src = pf if pf is not None else f
        src_name = product if pf is not None else p
        t, tpath, rows = _cxi_translations(p, src, src_name, product if pf is not None else None, dpath, m, notes)
        if rows is not None:
            amp = amp[rows]
        geometry = _cxi_geometry(p, f, src, src_name, tpath)
        x, y, obj = _cxi_positions(p, f, src, src_name, pf is not None, t, n, opts.convention,
                                         geometry, notes)
        probe_notes: dict[str, Any] = {}
        if probe is None:
            probe, probe_notes = _cxi_probe(src, src_name, n, geometry)
        out: dict[str, Any] = {"diff3d": amp, "xcoords": x, "ycoords": y}
        if mask is not None:
            out["mask"] = mask
        if probe is not None:
            out["probeGuess"] = probe
        else:
            out["_missing_probe_path"] = PROBE
        if obj is not None:
            out["objectGuess"] = np.asarray(obj).astype(np.complex64)
        out["_metadata"] = _cxi_metadata(p, f, product, pf is None, geometry, {**notes, **probe_notes})
        return out
    finally:
        if pf is not None:
            pf.close()


def _cxi_patterns(p: str, f: Any, opts: InputOptions,
                  ) -> tuple[str, np.ndarray, dict[str, Any], np.ndarray | None, tuple[int, int]]:
    """The diffraction data (``entry_1/data_1/data`` or the detector's) as amplitudes, with its
    path, the load notes, the detector mask (True = bad) and (M, N) of the raw data."""
    dpath = next((q for q in (DATA, DETECTOR_DATA) if _dataset(f, q) is not None), None)
    if dpath is None:
        if _dataset(f, TRANSLATION) is not None or _dataset(f, PROBE) is not None:
            raise _err(p, DATA, "missing: a ptychodus product file; the diffraction half is missing (pass "
                                "the diffraction file as input, this one with --product)")
        raise _err(p, DATA, f"missing (also looked at {DETECTOR_DATA}): no diffraction data")
    raw = f[dpath][()]
    if raw.ndim not in (3, 4):
        raise _err(p, dpath, f"must be (M, N, N); got shape {raw.shape}")
    mask = None
    md = _dataset(f, MASK)
    if md is not None:
        mk = np.asarray(md[()])
        if mk.shape != raw.shape[-2:]:
            raise _err(p, MASK, f"shape {mk.shape} does not match the ({raw.shape[-2]}, {raw.shape[-1]}) patterns")
        mask = mk != 0
    amp, notes, mask = _counts_to_amplitude(p, dpath, raw, mask, opts.fftshift)
    return dpath, amp, notes, mask, (raw.shape[0], raw.shape[-1])


def _cxi_translations(p: str, src: Any, src_name: str, product: str | None, dpath: str, m: int,
                      notes: dict[str, Any]) -> tuple[np.ndarray, str, np.ndarray | None]:
    """The scan positions (M, 3) metres, their path, and the pattern row of every position when
    ptychodus's index list pairs them (None: one position per pattern, in order)."""
    tpath = TRANSLATION if _dataset(src, TRANSLATION) is not None else (
        DATA_TRANSLATION if _dataset(src, DATA_TRANSLATION) is not None else None)
    if tpath is None:
        raise _err(src_name, TRANSLATION, "missing (also entry_1/data_1/translation): no scan positions"
                   + ("" if product is not None else f"; {_PATTERN_HINT}"))
    t = np.asarray(src[tpath][()])
    if t.ndim != 2 or t.shape[1] < 2 or t.dtype.kind not in "fiu":
        raise _err(src_name, tpath, f"must be (M, 3) metres; got shape {t.shape} {t.dtype}")
    t = t.astype(np.float64)
    if not np.all(np.isfinite(t[:, :2])):
        raise _err(src_name, tpath, "contains NaN or Inf")
    rows = None
    idx_d = _dataset(src, PT_INDEXES)
    if idx_d is not None:  # ptychodus: position k belongs to the pattern of scan index indexes[k]
        pos_index = np.asarray(idx_d[()])
        if pos_index.ndim != 1 or pos_index.shape[0] != t.shape[0]:
            raise _err(src_name, PT_INDEXES, f"has shape {pos_index.shape} but {tpath} holds "
                                             f"{t.shape[0]} positions")
        rows, dropped = _pair_by_index(p, np.arange(m), pos_index, src_name, PT_INDEXES)
        _note_dropped(notes, dropped, f"by {PT_INDEXES} (pattern k of {dpath} has scan index k)")
    elif product is not None:
        if t.shape[0] != m:
            raise _err(product, tpath, f"has {t.shape[0]} positions but {p}: {dpath} holds {m} patterns "
                                       f"and there is no {PT_INDEXES} to pair them")
    elif t.shape[0] != m:
        raise _err(p, tpath, f"has {t.shape[0]} positions but {dpath} holds {m} patterns "
                             f"(and no {PT_INDEXES} pairs them)")
    return t, tpath, rows


def _cxi_geometry(p: str, f: Any, src: Any, src_name: str, tpath: str) -> dict[str, Any]:
    """Photon energy (J, checked) and distance, from the data file or else the product file."""
    energy = _scalar(f, p, ENERGY, required=False) or _scalar(src, src_name, ENERGY, required=True,
                                                              hint="photon energy in joules")
    if energy > 1e-9:
        raise _err(p, ENERGY, f"{energy:g} looks like eV or keV; CXI stores the photon energy in joules")
    distance = _scalar(f, p, DISTANCE, required=False) or _scalar(src, src_name, DISTANCE, required=True,
                                                                  hint="sample-detector distance in metres")
    return {"energy_J": energy, "energy_eV": energy / EV_J, "wavelength_m": wavelength_m(energy),
            "distance_m": distance, "translation_path": tpath}


def _cxi_positions(p: str, f: Any, src: Any, src_name: str, paired: bool, t: np.ndarray, n: int,
                   conv: PositionConvention, geometry: dict[str, Any], notes: dict[str, Any],
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Pixel positions (and the object, where its frame is known) from the metres in ``t``: in a
    ptychodus object frame when there is one, else from the detector geometry (restoring the
    frame ``write_cxi`` recorded). Adds the frame to ``geometry``."""
    has_frame = paired or _dataset(f, f"{PT}/object_pixel_width_m") is not None
    frame = _ptychodus_cxi_frame(src, src_name) if has_frame else None
    our = _dataset(src, f"{OUR}/position_affine")
    obj = None
    if frame is not None:
        obj, x, y, affine = _positions_in_frame(t[:, 0], t[:, 1], frame, n, conv)
        geometry["object_role"] = "ptychodus product object (reconstruction or initial guess), not a ground truth"
    else:
        energy, distance = geometry["energy_J"], geometry["distance_m"]
        xp = _scalar(f, p, X_PIXEL, required=True, hint="detector pixel width in metres")
        yp = _scalar(f, p, Y_PIXEL, required=True, hint="detector pixel height in metres")
        dx, dy = object_pixel_size_m(energy, distance, xp, n), object_pixel_size_m(energy, distance, yp, n)
        geometry["detector_pixel_m"] = [yp, xp]
        origin = None
        if our is not None:  # written by write_cxi: restore its frame (unless another convention is asked)
            saved = json.loads(_as_str(our[()]))
            saved_conv = PositionConvention(**saved.get("convention", {}))
            if conv == PositionConvention() or conv == saved_conv:
                conv = saved_conv
                origin = (float(saved["x0_m"]), float(saved["y0_m"]))
        x, y, affine = metres_to_pixels(t[:, 0], t[:, 1], dx, dy, n, conv, origin_m=origin)
        od = _dataset(src, OBJECT)
        if od is not None and origin is not None:
            obj = np.asarray(od[()])
            while obj.ndim > 2:
                obj = obj[0]
            geometry["object_role"] = "objectGuess written by ptychopinn"
        elif od is not None:
            notes["object_ignored"] = (f"{OBJECT} has no pixel frame recorded (or another convention "
                                       "was asked); not used")
    geometry["object_pixel_m"] = [affine["dy_m"], affine["dx_m"]]
    geometry["position_affine"] = affine
    geometry["convention"] = asdict(conv)
    return x, y, obj


def _cxi_probe(src: Any, src_name: str, n: int, geometry: dict[str, Any]) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The file's probe (``entry_1/instrument_1/source_1/probe`` or the illumination), if any."""
    ppath = PROBE if _dataset(src, PROBE) is not None else (
        ILLUMINATION if _dataset(src, ILLUMINATION) is not None else None)
    if ppath is None:
        return None, {}
    probe, probe_notes = _probe_array(src_name, ppath, src[ppath][()], n)
    geometry["probe_source"] = f"{src_name}: {ppath}"
    return probe, probe_notes


def _cxi_metadata(p: str, f: Any, product: str | None, single: bool, geometry: dict[str, Any],
                  notes: dict[str, Any]) -> dict[str, Any]:
    """The dataset's ``_metadata``: format, files, geometry, load notes (over any metadata the file
    recorded when ptychopinn wrote it)."""
    meta = {"source_format": "cxi" if single else "ptychodus cxi pair",
            "source_files": [p] + ([product] if product else []),
            "geometry": geometry, "load_notes": notes}
    meta_d = _dataset(f, f"{OUR}/metadata")
    if meta_d is not None:
        try:
            prev = json.loads(_as_str(meta_d[()]))
            meta = {**prev, **meta}
        except json.JSONDecodeError:
            pass
    return meta


def _as_str(v: Any) -> str:
    a = np.asarray(v)
    item = a.item() if a.ndim == 0 else a
    return item.decode() if isinstance(item, bytes) else str(item)


def _ptychodus_cxi_frame(src: Any, name: str) -> _Frame | None:
    od = _dataset(src, OBJECT)
    if od is None:
        return None
    vals = {}
    for key in ("object_pixel_width_m", "object_pixel_height_m", "object_center_x_m", "object_center_y_m"):
        d = _dataset(src, f"{PT}/{key}")
        if d is None:
            raise _err(name, f"{PT}/{key}", "missing (needed to place the positions in the object frame)")
        vals[key] = float(np.asarray(d[()]).reshape(-1)[0])
    obj = np.asarray(od[()])
    while obj.ndim > 2:
        obj = obj[0]
    return _Frame(obj, vals["object_center_x_m"], vals["object_center_y_m"],
                  vals["object_pixel_width_m"], vals["object_pixel_height_m"])


def _read_ptychodus_h5_pair(p: str, f: Any, product: str, opts: InputOptions,
                            probe: np.ndarray | None) -> dict[str, Any]:
    h5py = _h5py()
    pat = f["patterns"]
    raw = pat[()]
    pattern_index = np.asarray(f["indexes"][()]).astype(np.int64)
    if raw.ndim != 3 or raw.shape[0] != pattern_index.shape[0]:
        raise _err(p, "patterns", f"shape {raw.shape} does not match {pattern_index.shape[0]} indexes")
    n = raw.shape[-1]
    mask = None
    if "bad_pixels" in f:
        mk = np.asarray(f["bad_pixels"][()])
        if mk.shape != raw.shape[1:]:
            raise _err(p, "bad_pixels", f"shape {mk.shape} does not match the {raw.shape[1:]} patterns")
        mask = mk != 0
    amp, notes, mask = _counts_to_amplitude(p, "patterns", raw, mask, opts.fftshift)
    with _open(product) as g:
        if "probe_position_x_m" not in g:
            if "patterns" in g:
                raise _err(product, "probe_position_x_m", "missing: this is a diffraction file, not the product half")
            raise _err(product, "probe_position_x_m", "missing: not a ptychodus product file")
        for k in ("probe_position_indexes", "probe_position_y_m", "object", "probe"):
            if not isinstance(g.get(k), h5py.Dataset):
                raise _err(product, k, "missing")
        pos_index = np.asarray(g["probe_position_indexes"][()]).astype(np.int64)
        x_m = np.asarray(g["probe_position_x_m"][()], np.float64)
        y_m = np.asarray(g["probe_position_y_m"][()], np.float64)
        if not (len(pos_index) == len(x_m) == len(y_m)):
            raise _err(product, "probe_position_x_m", "positions and indexes differ in length")
        energy_ev = _attr(product, g, "photon_energy_eV", "file")
        distance = _attr(product, g, "detector_object_distance_m", "file")
        od = g["object"]
        frame = _Frame(np.asarray(od[()]), _attr(product, od, "center_x_m", "object"),
                       _attr(product, od, "center_y_m", "object"), _attr(product, od, "pixel_width_m", "object"),
                       _attr(product, od, "pixel_height_m", "object"))
        while frame.object.ndim > 2:
            frame.object = frame.object[0]
        probe_notes: dict[str, Any] = {}
        if probe is None:
            probe, probe_notes = _probe_array(product, "probe", g["probe"][()], n)
        losses = np.asarray(g["loss_values"][()]) if isinstance(g.get("loss_values"), h5py.Dataset) else None
    rows, dropped = _pair_by_index(p, pattern_index, pos_index, product)
    _note_dropped(notes, dropped, "by scan index (indexes of the patterns, probe_position_indexes of the product)")
    obj, x, y, affine = _positions_in_frame(x_m, y_m, frame, n, opts.convention)
    energy = energy_ev * EV_J
    dpix = [float(pat.attrs.get(f"detector_pixel_{k}_m", np.nan)) for k in ("height", "width")]
    geometry = {"energy_J": energy, "energy_eV": energy_ev, "wavelength_m": wavelength_m(energy),
                "distance_m": distance, "detector_pixel_m": dpix,
                "object_pixel_m": [affine["dy_m"], affine["dx_m"]], "position_affine": affine,
                "convention": asdict(opts.convention), "probe_source": f"{product}: probe",
                "object_role": "ptychodus product object (reconstruction or initial guess), not a ground truth"}
    meta = {"source_format": "ptychodus diffraction.h5 + product.h5", "source_files": [p, product],
            "geometry": geometry, "load_notes": {**notes, **probe_notes},
            "product_loss_epochs": None if losses is None else int(len(losses))}
    return {"diff3d": amp[rows], "xcoords": x, "ycoords": y, "probeGuess": probe,
            "objectGuess": obj.astype(np.complex64), "scan_index": np.zeros(len(rows), np.int64),
            **({} if mask is None else {"mask": mask}), "_metadata": meta}


def _read_ptychodus_training_h5(p: str, f: Any, opts: InputOptions, probe: np.ndarray | None) -> dict[str, Any]:
    """ptychodus ``save_training_data`` HDF5: patterns in position order, positions in object pixels
    of its object frame (patch centre (N-1)/2), object pixel size, energy (eV) and distance."""
    keys = ("patterns", "bad_pixels", "object", "probe", "probe_position_x_px", "probe_position_y_px",
            "object_pixel_width_m", "object_pixel_height_m", "photon_energy_eV", "detector_object_distance_m")
    for k in keys:
        if _dataset(f, k) is None:
            raise _err(p, k, "missing (ptychodus training-data file)")
    raw = f["patterns"][()]
    mk = np.asarray(f["bad_pixels"][()]) != 0
    if mk.shape != raw.shape[-2:]:
        raise _err(p, "bad_pixels", f"shape {mk.shape} does not match the {raw.shape[-2:]} patterns")
    amp, notes, mask = _counts_to_amplitude(p, "patterns", raw, mk if mk.any() else None, opts.fftshift)
    n = amp.shape[-1]
    x_px = np.asarray(f["probe_position_x_px"][()], np.float64)
    y_px = np.asarray(f["probe_position_y_px"][()], np.float64)
    if not (len(x_px) == len(y_px) == amp.shape[0]):
        raise _err(p, "probe_position_x_px", f"{len(x_px)} positions for {amp.shape[0]} patterns")
    obj = np.asarray(f["object"][()])
    while obj.ndim > 2:
        obj = obj[0]
    dx = float(f["object_pixel_width_m"][()])
    dy = float(f["object_pixel_height_m"][()])
    h, w = obj.shape
    # back to metres about the object centre (ptychodus's own reading of this file), then our frame
    x_m, y_m = (x_px - (w - 1) / 2.0) * dx, (y_px - (h - 1) / 2.0) * dy
    obj, x, y, affine = _positions_in_frame(x_m, y_m, _Frame(obj, 0.0, 0.0, dx, dy), n, opts.convention)
    probe_notes: dict[str, Any] = {}
    if probe is None:
        probe, probe_notes = _probe_array(p, "probe", f["probe"][()], n)
    energy_ev = float(f["photon_energy_eV"][()])
    energy = energy_ev * EV_J
    geometry = {"energy_J": energy, "energy_eV": energy_ev, "wavelength_m": wavelength_m(energy),
                "distance_m": float(f["detector_object_distance_m"][()]), "object_pixel_m": [dy, dx],
                "position_affine": affine, "convention": asdict(opts.convention), "probe_source": f"{p}: probe",
                "object_role": "ptychodus product object (reconstruction or initial guess), not a ground truth"}
    return {"diff3d": amp, "xcoords": x, "ycoords": y, "probeGuess": probe, "objectGuess": obj.astype(np.complex64),
            **({} if mask is None else {"mask": mask}),
            "_metadata": {"source_format": "ptychodus training-data HDF5", "source_files": [p],
                          "geometry": geometry, "load_notes": {**notes, **probe_notes}}}


def is_ptychodus_training_npz(z: dict[str, np.ndarray]) -> bool:
    """ptychodus's PtychoPINN export: ``bad_pixels`` and no ``_metadata`` (ours always has one)."""
    return "bad_pixels" in z and "_metadata" not in z and "diff3d" in z


def from_ptychodus_training_npz(path: str, z: dict[str, np.ndarray]) -> dict[str, Any]:
    """ptychodus ``save_ptychopinn_training_data`` NPZ -> contract arrays.

    Its ``diff3d`` holds raw counts (any dtype; bad pixels already inpainted by ptychodus), its
    ``probeGuess`` is the (modes, N, N) stack (the first mode is used) and its coordinates put
    the patch centre at (N-1)/2 (shifted here by N//2 - (N-1)/2)."""
    a = np.asarray(z["diff3d"])
    bad = np.asarray(z["bad_pixels"]) != 0
    if bad.shape != a.shape[-2:]:
        raise _err(path, "key 'bad_pixels'", f"shape {bad.shape} does not match the {a.shape[-2:]} patterns")
    amp, notes, mask = _counts_to_amplitude(path, "key 'diff3d'", a, bad if bad.any() else None, False)
    n = amp.shape[-1]
    out: dict[str, Any] = dict(z)
    out.pop("bad_pixels")
    out["diff3d"] = amp
    if mask is not None:
        out["mask"] = mask
    if "probeGuess" in z:
        out["probeGuess"], pn = _probe_array(path, "key 'probeGuess'", z["probeGuess"], n)
        notes.update(pn)
    shift = centre_shift(n)
    for k in ("xcoords", "ycoords", "xcoords_start", "ycoords_start"):
        if k in out:
            out[k] = np.asarray(out[k], np.float64) + shift
    notes["ptychodus_centre_shift_px"] = shift
    notes["counts_converted_to_sqrt"] = True
    out["_metadata"] = {"source_format": "ptychodus PtychoPINN training NPZ", "source_files": [path],
                        "geometry": {"object_role": "ptychodus product object (reconstruction or initial "
                                                    "guess), not a ground truth"},
                        "load_notes": notes}
    return out


# ---------------------------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------------------------
def _counts_for_writing(diff3d: np.ndarray) -> np.ndarray:
    c = np.asarray(diff3d, np.float64) ** 2
    r = np.rint(c)
    if np.all(np.abs(c - r) < 1e-3) and r.max(initial=0) < 2 ** 32:
        return r.astype(np.uint32)
    return c.astype(np.float32)


def geometry_for_writing(ds: Any, energy_eV: float | None, distance_m: float | None,
                         detector_pixel_m: float | None) -> dict[str, Any]:
    """The dataset's recorded geometry, or one built from the options (which then must be given)."""
    g = dict(ds.metadata.get("geometry") or {})
    if "position_affine" in g and energy_eV is None and distance_m is None and detector_pixel_m is None:
        return g
    missing = [o for o, v in (("--energy-ev", energy_eV), ("--distance-m", distance_m),
                              ("--detector-pixel-m", detector_pixel_m)) if v is None]
    if missing:
        raise DataError(f"{ds.source}: no beamline geometry recorded in _metadata; pass "
                        + ", ".join(missing) + " to write CXI")
    e = float(energy_eV) * EV_J
    dx = object_pixel_size_m(e, float(distance_m), float(detector_pixel_m), ds.N)
    return {"energy_J": e, "energy_eV": float(energy_eV), "wavelength_m": wavelength_m(e),
            "distance_m": float(distance_m), "detector_pixel_m": [float(detector_pixel_m)] * 2,
            "object_pixel_m": [dx, dx],
            "position_affine": {"x0_m": 0.0, "y0_m": 0.0, "dx_m": dx, "dy_m": dx},
            "convention": asdict(PositionConvention())}


def write_cxi(ds: Any, path: str | os.PathLike, geometry: dict[str, Any]) -> Path:
    """Write ``ds`` as a CXI 1.6 file (counts, translations in metres, probe, object), atomically.

    Translations are ``pixels_to_metres`` of the positions with the recorded affine map and
    convention, so reading the file back gives the same pixel positions. The frame is also kept
    under ``entry_1/ptychopinn`` so the objectGuess stays aligned."""
    import h5py

    from ptychopinn._io import atomic_path, jsonable

    n = ds.N
    affine = geometry["position_affine"]
    conv = PositionConvention(**geometry.get("convention", {}))
    x_m, y_m = pixels_to_metres(ds.xcoords, ds.ycoords, affine, conv)
    trans = np.zeros((ds.n_patterns, 3))
    trans[:, 0], trans[:, 1] = x_m, y_m
    dpix = geometry.get("detector_pixel_m")
    if not dpix or not all(np.isfinite(dpix)):
        lam_z = geometry["wavelength_m"] * geometry["distance_m"]
        dpix = [lam_z / (n * affine["dy_m"]), lam_z / (n * affine["dx_m"])]
    with atomic_path(path, suffix=".cxi") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("cxi_version", data=160)
        det = f.create_group("entry_1/instrument_1/detector_1")
        det.create_dataset("data", data=_counts_for_writing(ds.diff3d), compression="gzip", compression_opts=4)
        det.create_dataset("distance", data=float(geometry["distance_m"]))
        det.create_dataset("x_pixel_size", data=float(dpix[1]))
        det.create_dataset("y_pixel_size", data=float(dpix[0]))
        if getattr(ds, "mask", None) is not None:
            det.create_dataset("mask", data=np.asarray(ds.mask, np.uint32))  # nonzero = bad
        f.create_group("entry_1/instrument_1/source_1").create_dataset("energy", data=float(geometry["energy_J"]))
        f.create_group("entry_1/data_1")["data"] = h5py.SoftLink("/" + DETECTOR_DATA)
        f.create_group("entry_1/sample_1/geometry_1").create_dataset("translation", data=trans)
        f.create_group("entry_1/image_1").create_dataset("data", data=np.asarray(ds.probe, np.complex64))
        if ds.object is not None:
            f.create_group("entry_1/image_2").create_dataset("data", data=np.asarray(ds.object, np.complex64))
        our = f.create_group(OUR)
        our.create_dataset("position_affine", data=json.dumps({**affine, "convention": asdict(conv)}))
        meta = {k: v for k, v in ds.metadata.items() if k not in ("geometry", "load_notes")}
        our.create_dataset("metadata", data=json.dumps(meta, default=jsonable))
    return Path(path)


def _product_frame(obj: np.ndarray, origin_yx: tuple[float, float], ds: Any,
                   geometry: dict[str, Any]) -> dict[str, Any]:
    """Positions (m) and object frame of a product, shared by the HDF5 and CXI writers.

    ``obj`` is the stitched canvas whose pixel (i, j) is object pixel (origin_y + i, origin_x + j)
    of the dataset frame. Positions are in metres (the dataset's affine map, without the
    flip/transpose convention since the canvas is in object axes) and the object centre is chosen
    so that ptychodus maps them back onto the canvas with its (N-1)/2 patch-centre convention:
    x_px = (x_m - cx) / dx + (W-1)/2 = canvas px - (N//2 - (N-1)/2)."""
    aff = geometry["position_affine"]
    dx, dy = float(aff["dx_m"]), float(aff["dy_m"])
    h, w = np.asarray(obj).shape[-2:]
    shift = centre_shift(ds.N)
    return {"x_m": (np.asarray(ds.xcoords, np.float64) - origin_yx[1] - shift) * dx,
            "y_m": (np.asarray(ds.ycoords, np.float64) - origin_yx[0] - shift) * dy,
            "cx_m": (w - 1) / 2.0 * dx, "cy_m": (h - 1) / 2.0 * dy, "dx_m": dx, "dy_m": dy}


def _probe_stack(probe: np.ndarray) -> np.ndarray:
    """A probe as ptychodus stores it: (coherent, incoherent, N, N) complex64."""
    p = np.asarray(probe, np.complex64)
    while p.ndim < 4:
        p = p[None]
    return p


def write_ptychodus_product(path: str | os.PathLike, obj: np.ndarray, origin_yx: tuple[float, float],
                            probe: np.ndarray, ds: Any, geometry: dict[str, Any], name: str = "ptychopinn",
                            losses: np.ndarray | None = None) -> Path:
    """Write a reconstruction as a ptychodus ``product.h5`` (the layout of its ``save_product``).

    The frame (positions in metres, object centre) is :func:`_product_frame`'s."""
    import h5py

    from ptychopinn._io import atomic_path

    fr = _product_frame(obj, origin_yx, ds, geometry)
    dx, dy = fr["dx_m"], fr["dy_m"]
    with atomic_path(path, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.attrs["name"] = name
        f.attrs["comments"] = "written by ptychopinn"
        f.attrs["detector_object_distance_m"] = float(geometry.get("distance_m", 1.0))
        f.attrs["photon_energy_eV"] = float(geometry.get("energy_eV", 10000.0))
        for k in ("probe_photon_count", "exposure_time_s", "mass_attenuation_m2_per_kg",
                  "tomography_angle_deg", "focus_object_distance_m", "tilt_angle_deg"):
            f.attrs[k] = 0.0
        f.attrs["far_field"] = True
        f.create_dataset("probe_position_indexes", data=np.arange(ds.n_patterns, dtype=np.int64))
        f.create_dataset("probe_position_x_m", data=fr["x_m"])
        f.create_dataset("probe_position_y_m", data=fr["y_m"])
        pr = f.create_dataset("probe", data=_probe_stack(probe))
        pr.attrs["pixel_width_m"] = dx
        pr.attrs["pixel_height_m"] = dy
        od = f.create_dataset("object", data=np.asarray(obj, np.complex64)[None])
        od.attrs["center_x_m"] = fr["cx_m"]
        od.attrs["center_y_m"] = fr["cy_m"]
        od.attrs["pixel_width_m"] = dx
        od.attrs["pixel_height_m"] = dy
        f.create_dataset("object_layer_spacing_m", data=np.zeros(0))
        lv = np.zeros(0) if losses is None else np.asarray(losses, np.float64)
        f.create_dataset("loss_epochs", data=np.arange(len(lv), dtype=np.int64))
        f.create_dataset("loss_values", data=lv)
    return Path(path)


def write_ptychodus_product_cxi(path: str | os.PathLike, obj: np.ndarray, origin_yx: tuple[float, float],
                                probe: np.ndarray, ds: Any, geometry: dict[str, Any], name: str = "ptychopinn",
                                losses: np.ndarray | None = None) -> Path:
    """Write a reconstruction as a ptychodus ``product.cxi`` (the layout ptychodus 1.7.0's CXI
    product writer produces), atomically.

    CXI 1.6 paths: translations (M, 3) metres at ``entry_1/sample_1/geometry_1/translation``
    (soft link ``entry_1/data_1/translation``), energy (J) and distance (m), probe
    ``entry_1/image_1/data`` (1, 1, N, N) (soft link ``source_1/illumination``), object
    ``entry_1/image_2/data`` (1, H, W), each image with ``image_size`` [width, height, 0] m; the
    scan indexes, pixel sizes, object centre and losses under ``entry_1/ptychodus``. The frame is
    :func:`_product_frame`'s (ptychodus's (N-1)/2 patch centre). Energy and distance must be
    recorded: nothing is guessed."""
    import h5py

    from ptychopinn import __version__
    from ptychopinn._io import atomic_path

    energy_J = geometry.get("energy_J")
    if energy_J is None and geometry.get("energy_eV") is not None:
        energy_J = float(geometry["energy_eV"]) * EV_J
    missing = [o for o, v in (("--energy-ev", energy_J), ("--distance-m", geometry.get("distance_m")))
               if v is None or not np.isfinite(float(v))]
    if missing:
        raise DataError(f"{ds.source}: no photon energy or detector distance recorded in _metadata; pass "
                        + ", ".join(missing) + " (with --detector-pixel-m) to write a CXI product")
    fr = _product_frame(obj, origin_yx, ds, geometry)
    dx, dy = fr["dx_m"], fr["dy_m"]
    pr = _probe_stack(probe)
    ob = np.asarray(obj, np.complex64)
    ob = ob[None] if ob.ndim == 2 else ob
    trans = np.zeros((ds.n_patterns, 3))
    trans[:, 0], trans[:, 1] = fr["x_m"], fr["y_m"]
    now = _iso_now()
    with atomic_path(path, suffix=".cxi") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("cxi_version", data=160)
        entry = f.create_group("entry_1")
        entry.create_dataset("start_time", data=now)
        entry.create_dataset("title", data=name)
        entry.create_dataset("experiment_description", data=f"written by ptychopinn {__version__}")
        sample = f.create_group("entry_1/sample_1")
        sample.create_dataset("name", data=name)
        sample.create_group("geometry_1").create_dataset("translation", data=trans)
        f.create_group("entry_1/data_1")["translation"] = h5py.SoftLink("/" + TRANSLATION)
        f.create_group("entry_1/instrument_1/source_1").create_dataset("energy", data=float(energy_J))
        f.create_group("entry_1/instrument_1/detector_1").create_dataset(
            "distance", data=float(geometry["distance_m"]))
        for grp, arr, axes, kind in (("image_1", pr, "coherent:incoherent:y:x", "amplitude"),
                                     ("image_2", ob, "layer:y:x", "electron density")):
            g = entry.create_group(grp)
            g.create_dataset("data", data=arr).attrs["axes"] = axes
            g.create_dataset("data_type", data=kind)
            g.create_dataset("data_space", data="real")
            g.create_dataset("image_size", data=np.array([dx * arr.shape[-1], dy * arr.shape[-2], 0.0]))
            g["source_1"] = h5py.SoftLink("/entry_1/instrument_1/source_1")
            g["detector_1"] = h5py.SoftLink("/entry_1/instrument_1/detector_1")
        f["entry_1/instrument_1/source_1/illumination"] = h5py.SoftLink("/" + PROBE)
        proc = entry.create_group("process_1")
        proc.create_dataset("program", data="ptychopinn")
        proc.create_dataset("version", data=str(__version__))
        proc.create_dataset("date", data=now)
        pt = f.create_group(PT)
        pt.create_dataset("probe_position_indexes", data=np.arange(ds.n_patterns, dtype=np.int64))
        for key, v in (("probe_pixel_width_m", dx), ("probe_pixel_height_m", dy),
                       ("object_pixel_width_m", dx), ("object_pixel_height_m", dy),
                       ("object_center_x_m", fr["cx_m"]), ("object_center_y_m", fr["cy_m"]),
                       ("tomography_angle_deg", 0.0)):
            pt.create_dataset(key, data=float(v))
        if losses is not None and len(losses):
            lv = np.asarray(losses, np.float64).reshape(-1)
            pt.create_dataset("loss_epochs", data=np.arange(len(lv), dtype=np.int64))
            pt.create_dataset("loss_values", data=lv)
    return Path(path)


def _iso_now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def estimate_probe_from_patterns(diff3d: np.ndarray) -> np.ndarray:
    """An initial probe for pty-chi when the file has none: the inverse FFT of the root-mean
    pattern amplitude with flat phase (a focused-beam guess; the refinement does the rest)."""
    a = np.sqrt(np.mean(np.asarray(diff3d, np.float64) ** 2, axis=0))
    p = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(a), norm="ortho"))
    return p.astype(np.complex64)
