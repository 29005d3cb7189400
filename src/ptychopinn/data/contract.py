"""The NPZ data contract (DESIGN section 3): reading, validating, normalising and writing.

Readers accept the legacy variants users have (``diffraction`` key, (N, N, M) layout, integer
counts, a trailing singleton axis, normalised amplitudes with a recorded intensity scale) and turn
every malformed input into one :class:`~ptychopinn.errors.DataError` whose message names the file,
the key and the problem. Files are opened with ``allow_pickle=False``.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn._io import jsonable, save_npz_atomic
from ptychopinn.data.formats import is_hdf5_path
from ptychopinn.errors import ConfigError, DataError, MissingProbeError, one_line
from ptychopinn.physics.dose import mean_total_counts
from ptychopinn.physics.probe import resample_probe

#: keys of the contract, in the order they are written
CONTRACT_KEYS = (
    "diff3d", "probeGuess", "objectGuess", "xcoords", "ycoords", "xcoords_start", "ycoords_start",
    "scan_index", "ground_truth_patches", "mask", "_metadata",
)


@dataclass
class PtychoDataset:
    """One ptychography dataset in the project's conventions.

    ``diff3d`` holds amplitudes = sqrt(photon counts), (M, N, N) float32, zero frequency at index
    N//2. ``xcoords``/``ycoords`` are patch centres in object pixels (x = column, y = row).
    ``mask``: optional (N, N) bool detector mask, **True = bad pixel** (as CXI ``mask`` and
    ptychodus ``bad_pixels``, nonzero = bad). Bad pixels carry no measurement: the losses and pty-chi
    ignore them, and :meth:`with_mask` fills them in ``diff3d`` from good neighbours (network input).
    """

    diff3d: np.ndarray
    probe: np.ndarray
    xcoords: np.ndarray
    ycoords: np.ndarray
    object: np.ndarray | None = None
    xcoords_start: np.ndarray | None = None
    ycoords_start: np.ndarray | None = None
    scan_index: np.ndarray | None = None
    ground_truth_patches: np.ndarray | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    source: str = "<memory>"
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        m = self.diff3d.shape[0]
        if self.mask is not None:
            self.mask = check_mask(self.mask, self.diff3d.shape[-2:], self.source, "mask")
        if self.xcoords_start is None:
            self.xcoords_start = np.array(self.xcoords, dtype=np.float64)
        if self.ycoords_start is None:
            self.ycoords_start = np.array(self.ycoords, dtype=np.float64)
        if self.scan_index is None:
            self.scan_index = np.zeros(m, dtype=np.int64)

    # -- derived quantities -------------------------------------------------------------------
    @property
    def n_patterns(self) -> int:
        return int(self.diff3d.shape[0])

    @property
    def N(self) -> int:
        return int(self.diff3d.shape[-1])

    @property
    def positions_yx(self) -> np.ndarray:
        """(M, 2) float64 patch centres as (y, x)."""
        return np.stack([self.ycoords, self.xcoords], axis=1).astype(np.float64)

    @property
    def masked_fraction(self) -> float:
        """Fraction of detector pixels marked bad (0 without a mask)."""
        return 0.0 if self.mask is None else float(self.mask.mean())

    def with_mask(self, mask: np.ndarray | None, source: str = "mask") -> PtychoDataset:
        """This dataset with ``mask`` (True/nonzero = bad) joined to its own (logical or), and the
        bad pixels of ``diff3d`` replaced by the mean of their good 3x3 neighbours (grown inwards)."""
        if mask is None:
            return self
        bad = check_mask(mask, self.diff3d.shape[-2:], source, "mask")
        if self.mask is not None:
            bad = bad | self.mask
        diff = self.diff3d
        if bad.any():
            from ptychopinn.data.cxi import fill_bad_pixels

            diff = np.sqrt(fill_bad_pixels(np.asarray(self.diff3d, np.float64) ** 2, bad)).astype(np.float32)
        meta = {**self.metadata, "mask": {"bad_pixels": int(bad.sum()), "fraction": float(bad.mean()),
                                          "source": source,
                                          "fill": "mean of the good 3x3 neighbours (network input only); "
                                                  "excluded from the losses and from pty-chi"}}
        return replace(self, diff3d=diff, mask=bad, metadata=meta)

    def photons_per_pattern(self) -> float:
        """Measured mean over patterns of sum(diff3d**2) (the dose)."""
        return mean_total_counts(self.diff3d)

    def subset(self, idx: np.ndarray) -> PtychoDataset:
        """A dataset with the patterns ``idx`` (object and probe shared)."""
        idx = np.asarray(idx)
        gtp = None if self.ground_truth_patches is None else self.ground_truth_patches[idx]
        return replace(
            self, diff3d=self.diff3d[idx], xcoords=self.xcoords[idx], ycoords=self.ycoords[idx],
            xcoords_start=self.xcoords_start[idx], ycoords_start=self.ycoords_start[idx],
            scan_index=self.scan_index[idx], ground_truth_patches=gtp, metadata=dict(self.metadata),
            mask=self.mask,
        )

    # -- output -------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {
            "diff3d": np.asarray(self.diff3d, dtype=np.float32),
            "probeGuess": np.asarray(self.probe),
            "xcoords": np.asarray(self.xcoords, dtype=np.float64),
            "ycoords": np.asarray(self.ycoords, dtype=np.float64),
            "xcoords_start": np.asarray(self.xcoords_start, dtype=np.float64),
            "ycoords_start": np.asarray(self.ycoords_start, dtype=np.float64),
            "scan_index": np.asarray(self.scan_index, dtype=np.int64),
        }
        if self.object is not None:
            out["objectGuess"] = np.asarray(self.object)
        if self.ground_truth_patches is not None:
            out["ground_truth_patches"] = np.asarray(self.ground_truth_patches, dtype=np.complex64)
        if self.mask is not None:
            out["mask"] = np.asarray(self.mask, dtype=bool)
        out["_metadata"] = np.array(json.dumps(self.metadata, default=jsonable))
        return out

    def save(self, path: str | os.PathLike, compress: bool = False) -> Path:
        """Write the contract NPZ atomically (temporary name, then rename); ``compress``: deflate."""
        return save_npz_atomic(path, compress=compress, **self.to_arrays())


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def _err(path: str, key: str | None, problem: str) -> DataError:
    where = f"{path}" + (f": key '{key}'" if key else "")
    return DataError(f"{where}: {problem}")


def check_mask(mask: Any, shape: tuple[int, ...], source: str, key: str | None = "mask") -> np.ndarray:
    """A detector mask as (N, N) bool (True = bad): bool or integer, nonzero = bad, shape ``shape``."""
    a = np.asarray(mask)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.dtype.kind not in "biu":
        raise _err(source, key, f"must be a boolean or integer array (nonzero = bad pixel); got dtype {a.dtype}")
    if tuple(a.shape) != tuple(shape):
        raise _err(source, key, f"shape {a.shape} does not match the {tuple(shape)} patterns")
    bad = a != 0
    if bad.all():
        raise _err(source, key, "marks every pixel bad")
    return bad


def read_mask_file(path: str | os.PathLike, shape: tuple[int, ...]) -> np.ndarray:
    """``--mask FILE``: an NPY array or an NPZ with key ``mask`` (bool or integer, nonzero = bad)."""
    p = str(path)
    if p.lower().endswith(".npy"):
        if not os.path.isfile(p):
            raise _err(p, None, "file not found")
        try:
            a = np.load(p, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise _err(p, None, f"not a readable NPY array ({one_line(exc)})") from None
        return check_mask(a, shape, p, None)
    z = open_npz(p)
    if "mask" not in z:
        raise _err(p, "mask", "missing (an NPZ mask file holds the key 'mask'; or give an .npy array)")
    return check_mask(z["mask"], shape, p, "mask")


def open_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of an NPZ without unpickling; errors name the file and key."""
    p = str(path)
    if not os.path.isfile(p):
        raise _err(p, None, "file not found")
    if not zipfile.is_zipfile(p):
        raise _err(p, None, "not an NPZ file (not a zip archive, or truncated)")
    try:
        with np.load(p, allow_pickle=False) as z:
            names = list(z.files)
            out = {}
            for k in names:
                try:
                    out[k] = z[k]
                except ValueError as exc:
                    if "pickle" in str(exc).lower():
                        raise _err(p, k, "holds a pickled object array; refused (never unpickled)") from None
                    raise _err(p, k, f"unreadable array ({one_line(exc)})") from None
                except (zipfile.BadZipFile, EOFError, OSError) as exc:
                    raise _err(p, k, f"truncated or corrupt array ({one_line(exc)})") from None
    except DataError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise _err(p, None, f"not a readable NPZ file ({exc.__class__.__name__}: {one_line(exc)})") from None
    return out


def read_complex_2d(path: str | os.PathLike, key: str) -> np.ndarray:
    """One finite 2-D real/complex array ``key`` of an NPZ as complex128 (probe/object sources)."""
    z = open_npz(path)
    if key not in z:
        raise _err(str(path), key, "missing")
    a = np.asarray(z[key])
    if a.ndim != 2 or a.dtype.kind not in "fc" or not np.all(np.isfinite(a)):
        raise _err(str(path), key, f"must be a finite 2-D real/complex array; got {a.shape} {a.dtype}")
    return a.astype(np.complex128)


def load_probe(path: str | os.PathLike, n: int | None = None, key: str = "probeGuess") -> np.ndarray:
    """Read ``probeGuess`` from an NPZ (no pickle), resampled to (n, n) if its size differs."""
    p = read_complex_2d(path, key)
    return resample_probe(p, n) if n is not None else p


#: keys a probe file may hold its probe under (in this order): a dataset, 'iterative' output, others
PROBE_KEYS = ("probeGuess", "reconstructed_probe", "probe")


def read_probe_file(path: str | os.PathLike) -> tuple[np.ndarray, str]:
    """A probe (2-D complex64; the first mode of a stack) from an NPZ (:data:`PROBE_KEYS`), a CXI
    file or a ptychodus product, and where it came from (``'FILE: key'``). DataError naming the
    file and key when it holds none or not a finite square 2-D probe."""
    path = os.fspath(path)
    if is_hdf5_path(path):
        from ptychopinn.data.cxi import read_probe

        a, key = read_probe(path)
    else:
        z = open_npz(path)
        key = next((k for k in PROBE_KEYS if k in z), None)
        if key is None:
            raise DataError(f"{path}: key 'probeGuess': missing (also looked for {', '.join(PROBE_KEYS[1:])})")
        a = np.asarray(z[key])
    while a.ndim > 2 and a.shape[0] >= 1:
        a = a[0]
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.dtype.kind not in "fc" or not np.all(np.isfinite(a)):
        raise DataError(f"{path}: key '{key}': must be a finite square 2-D probe; got {a.shape} {a.dtype}")
    return a.astype(np.complex64), f"{path}: {key}"


def save_probe_file(path: str | os.PathLike, probe: Any, meta: dict[str, Any]) -> Path:
    """Write a probe NPZ (``probeGuess`` complex64 + ``_metadata`` JSON) atomically; what
    :func:`read_probe_file` reads (e.g. ``train --probe-from``)."""
    save_npz_atomic(path, probeGuess=np.asarray(probe, np.complex64),
                    _metadata=np.array(json.dumps(meta, default=jsonable)))
    return Path(path)


def load_object(path: str | os.PathLike, key: str = "objectGuess") -> np.ndarray:
    """Read a complex object from an NPZ (no pickle)."""
    return read_complex_2d(path, key)


def _check_finite(p: str, key: str, a: np.ndarray) -> None:
    if not np.all(np.isfinite(a)):
        raise _err(p, key, "contains NaN or Inf values")


def _read_diffraction(
    p: str, z: dict[str, np.ndarray], nphotons: float | None, intensity_scale: float | None,
    probe_n: int | None,
) -> tuple[np.ndarray, str, dict[str, Any]]:
    notes: dict[str, Any] = {}
    key = "diff3d" if "diff3d" in z else ("diffraction" if "diffraction" in z else None)
    if key is None:
        raise _err(p, "diff3d", "missing (also looked for 'diffraction')")
    a = z[key]
    if np.iscomplexobj(a):
        raise _err(p, key, "is complex; diffraction must be real amplitudes sqrt(counts)")
    if a.dtype.kind not in "fiub":
        raise _err(p, key, f"has unsupported dtype {a.dtype}")
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
        notes["squeezed_trailing_axis"] = True
    if a.ndim != 3:
        raise _err(p, key, f"must be 3-D (M, N, N); got shape {a.shape}")
    if a.shape[1] != a.shape[2] and a.shape[0] == a.shape[1]:
        a = np.moveaxis(a, -1, 0)  # legacy (N, N, M)
        notes["converted_from_NNM_layout"] = True
    elif a.shape[1] == a.shape[2] and a.shape[0] == a.shape[1] and probe_n is not None:
        pass  # (N, N, N) is ambiguous; assume (M, N, N)
    if a.shape[1] != a.shape[2]:
        raise _err(p, key, f"patterns must be square; got shape {a.shape}")
    if a.shape[0] == 0:
        raise _err(p, key, f"holds no diffraction patterns (shape {a.shape})")
    if a.dtype.kind in "iub":
        # integer arrays hold photon counts: convert in float64 *before* any arithmetic
        counts = a.astype(np.float64)
        if np.any(counts < 0):
            raise _err(p, key, "contains negative counts")
        amp = np.sqrt(counts)
        notes["converted_from_integer_counts"] = str(a.dtype)
    else:
        amp = a.astype(np.float64)
        _check_finite(p, key, amp)
        if np.any(amp < 0):
            raise _err(p, key, "contains negative values (amplitudes must be >= 0)")
    if nphotons is not None and intensity_scale is not None:
        raise ConfigError(f"{p}: give nphotons (--nphotons) or intensity_scale (--intensity-scale), not both")
    if nphotons is not None or intensity_scale is not None:
        # legacy files store normalised amplitudes: restore count-scale amplitudes
        if intensity_scale is not None:
            factor = float(intensity_scale)
            if not (math.isfinite(factor) and factor > 0):
                raise ConfigError(f"{p}: intensity_scale (--intensity-scale) must be a finite number > 0; "
                                  f"got {intensity_scale}")
        else:
            if not (math.isfinite(float(nphotons)) and float(nphotons) > 0):
                raise ConfigError(f"{p}: nphotons (--nphotons) must be a finite number > 0; got {nphotons}")
            mean_sum = mean_total_counts(amp)
            if mean_sum <= 0:
                raise _err(p, key, "all zero; cannot rescale to nphotons")
            factor = float(np.sqrt(float(nphotons) / mean_sum))
        amp = amp * factor
        notes["amplitude_rescale_factor"] = factor
    if not np.any(amp):
        raise _err(p, key, "every pattern is zero (no photons); nothing to train on or reconstruct")
    return amp.astype(np.float32), key, notes


def _read_1d(p: str, z: dict[str, np.ndarray], key: str, m: int, dtype: Any) -> np.ndarray:
    a = np.asarray(z[key])
    if a.ndim == 2 and 1 in a.shape:
        a = a.reshape(-1)
    if a.ndim != 1:
        raise _err(p, key, f"must be 1-D; got shape {a.shape}")
    if a.shape[0] != m:
        raise _err(p, key, f"has length {a.shape[0]} but there are {m} diffraction patterns")
    if a.dtype.kind not in "fiu":
        raise _err(p, key, f"has unsupported dtype {a.dtype}")
    a = a.astype(dtype)
    if dtype is np.float64:
        _check_finite(p, key, a)
    return a


def load_dataset(
    path: str | os.PathLike,
    *,
    require_object: bool = False,
    check_bounds: bool = True,
    nphotons: float | None = None,
    intensity_scale: float | None = None,
    probe: np.ndarray | None = None,
    probe_source: str | None = None,
    options: Any = None,
    estimate_missing_probe: bool = False,
) -> PtychoDataset:
    """Load and validate a contract NPZ (or a legacy variant, or a beamline file).

    ``nphotons`` / ``intensity_scale`` restore count-scale amplitudes for files of the older
    implementation that store normalised amplitudes: either multiply by ``intensity_scale`` or
    rescale so that the mean of sum(diff3d**2) equals ``nphotons``.
    ``check_bounds`` verifies that every patch lies inside ``objectGuess`` when it is present.
    ``probe`` replaces the file's probe (it may be missing then); ``probe_source`` is recorded.
    The format is picked by :func:`ptychopinn.data.formats.reader_for` (CXI / ptychodus HDF5 files
    and directories, tike NPZ.bz2, NPZ). ``options``: a :class:`~ptychopinn.data.cxi.InputOptions`
    (position convention, product half, fftshift, extra mask file, probe file).
    ``estimate_missing_probe``: a file without a probe gets a rough one from its mean pattern
    (for a pty-chi refinement to start from; recorded as ``probe_source``).
    """
    p = str(path)
    if probe is None and getattr(options, "probe_from", None):
        probe, probe_source = read_probe_file(options.probe_from)
    z, reader = _read_source(p, options, probe)
    missing_path = z.pop("_missing_probe_path", None)
    probe_given = probe is not None
    if probe_given:
        z["probeGuess"] = np.asarray(probe)
    if "probeGuess" not in z and estimate_missing_probe:
        from ptychopinn.data.cxi import estimate_probe_from_patterns

        amp0, _, _ = _read_diffraction(p, z, nphotons, intensity_scale, None)
        z["probeGuess"] = estimate_probe_from_patterns(amp0)
        probe_given, probe_source = True, "estimated: inverse FFT of the root-mean pattern amplitude, flat phase"
    probe = _read_probe(p, z, missing_path)

    diff, dkey, notes = _read_diffraction(p, z, nphotons, intensity_scale, probe.shape[0])
    m, n = diff.shape[0], diff.shape[-1]
    if probe.shape != (n, n):
        if probe_given and probe_source:
            raise DataError(f"{probe_source}: probe shape {probe.shape} does not match the pattern size "
                            f"({n}, {n}) of {p}")
        raise _err(p, "probeGuess", f"shape {probe.shape} does not match the pattern size ({n}, {n}) of '{dkey}'")
    for k in ("xcoords", "ycoords"):
        if k not in z:
            raise _err(p, k, "missing")
    x = _read_1d(p, z, "xcoords", m, np.float64)
    y = _read_1d(p, z, "ycoords", m, np.float64)
    xs = _read_1d(p, z, "xcoords_start", m, np.float64) if "xcoords_start" in z else None
    ys = _read_1d(p, z, "ycoords_start", m, np.float64) if "ycoords_start" in z else None
    si = _read_1d(p, z, "scan_index", m, np.int64) if "scan_index" in z else None
    obj = _read_object(p, z, y, x, n, check_bounds, require_object)
    gtp = _read_ground_truth_patches(p, z, m, n)

    mask = None
    if "mask" in z:
        mask = check_mask(z["mask"], (n, n), p, "mask")
    meta = _read_metadata(p, z)
    if notes:
        meta = {**meta, "load_notes": {**meta.get("load_notes", {}), **notes}}
    if probe_given:
        meta = {**meta, "probe_source": probe_source or "probe given by the caller"}
    ds = PtychoDataset(
        diff3d=diff, probe=probe, xcoords=x, ycoords=y, object=obj, xcoords_start=xs,
        ycoords_start=ys, scan_index=si, ground_truth_patches=gtp, metadata=meta, source=p,
    )
    if mask is not None:
        mask_source = (meta.get("mask") or {}).get("source") or f"{p}: mask"
        ds = ds.with_mask(mask, mask_source)
    if getattr(options, "fftshift", False) and not reader.beamline:  # the beamline readers shift on reading
        ds.diff3d = np.ascontiguousarray(np.fft.fftshift(ds.diff3d, axes=(1, 2)))
        if ds.mask is not None:
            ds.mask = np.ascontiguousarray(np.fft.fftshift(ds.mask))
        ds.metadata.setdefault("load_notes", {})["fftshift_applied"] = True
    if getattr(options, "mask", None):
        ds = ds.with_mask(read_mask_file(options.mask, ds.diff3d.shape[-2:]), f"--mask {options.mask}")
    return ds


def _read_source(p: str, options: Any, probe: np.ndarray | None) -> tuple[dict[str, Any], Any]:
    """(contract arrays, reader) of the file, read by its format (:mod:`.formats`); ``_metadata`` as
    one JSON string. Position-convention options on a file whose positions are already object pixels
    are refused."""
    from ptychopinn.data.formats import reader_for

    reader = reader_for(p, getattr(options, "source_format", "auto") or "auto")
    if not reader.beamline and options is not None:
        conv = options.convention
        for flag, given in (("--flip-positions", conv.flip), ("--transpose-positions", conv.transpose),
                            ("--product", options.product)):
            if given:
                raise ConfigError(f"{flag} applies to beamline files with positions in metres (CXI/HDF5); "
                                  f"{p} is an NPZ whose positions are already object pixels")
    z = reader.read(p, options, probe)
    if isinstance(z.get("_metadata"), dict):
        z["_metadata"] = np.array(json.dumps(z["_metadata"], default=jsonable))
    return z, reader


def _read_probe(p: str, z: dict[str, Any], missing_path: str | None) -> np.ndarray:
    """``probeGuess``: square, 2-D (or (N, N, 1)), float or complex, finite and not all zero."""
    if "probeGuess" not in z:
        raise MissingProbeError(f"{p}: key '{missing_path or 'probeGuess'}': missing: no probe in this file; pass "
                                "--probe-from FILE (e.g. from 'iterative --save-probe') or use "
                                "'train --probe-from-ptychi EPOCHS'")
    probe = np.asarray(z["probeGuess"])
    if probe.ndim == 3 and probe.shape[-1] == 1:
        probe = probe[..., 0]
    if probe.ndim != 2 or probe.shape[0] != probe.shape[1]:
        raise _err(p, "probeGuess", f"must be a square 2-D array; got shape {probe.shape}")
    if probe.dtype.kind not in "fc":
        raise _err(p, "probeGuess", f"has unsupported dtype {probe.dtype}")
    _check_finite(p, "probeGuess", probe)
    if not np.any(probe):
        raise _err(p, "probeGuess", "is all zero")
    return probe.astype(np.complex128 if probe.dtype in (np.complex128, np.float64) else np.complex64)


def _read_object(p: str, z: dict[str, Any], y: np.ndarray, x: np.ndarray, n: int, check_bounds: bool,
                 require_object: bool) -> np.ndarray | None:
    """``objectGuess`` (optional unless ``require_object``): 2-D, finite, every patch inside it."""
    if "objectGuess" not in z:
        if require_object:
            raise _err(p, "objectGuess", "missing (needed here)")
        return None
    obj = np.asarray(z["objectGuess"])
    if obj.ndim == 3 and obj.shape[-1] == 1:
        obj = obj[..., 0]
    if obj.ndim != 2:
        raise _err(p, "objectGuess", f"must be 2-D; got shape {obj.shape}")
    if obj.dtype.kind not in "fc":
        raise _err(p, "objectGuess", f"has unsupported dtype {obj.dtype}")
    _check_finite(p, "objectGuess", obj)
    obj = obj.astype(np.complex128 if obj.dtype in (np.complex128, np.float64) else np.complex64)
    if check_bounds:
        check_positions_inside(obj.shape, y, x, n, source=p)
    return obj


def _read_ground_truth_patches(p: str, z: dict[str, Any], m: int, n: int) -> np.ndarray | None:
    """``ground_truth_patches`` (optional): (M, N, N) or (M, N, N, 1), finite, as complex64."""
    if "ground_truth_patches" not in z:
        return None
    g = np.asarray(z["ground_truth_patches"])
    if g.ndim == 3:
        g = g[..., None]
    if g.ndim != 4 or g.shape != (m, n, n, 1):
        raise _err(p, "ground_truth_patches", f"shape {g.shape} does not match ({m}, {n}, {n}, 1)")
    if g.dtype.kind not in "fiuc":
        raise _err(p, "ground_truth_patches", f"has unsupported dtype {g.dtype}")
    _check_finite(p, "ground_truth_patches", g)
    return g.astype(np.complex64)


def _read_metadata(p: str, z: dict[str, Any]) -> dict[str, Any]:
    """``_metadata`` (optional): one JSON string; a non-dict value is wrapped as ``{"value": ...}``."""
    meta: dict[str, Any] = {}
    if "_metadata" in z:
        if z["_metadata"].dtype.kind not in "US" or z["_metadata"].size != 1:
            raise _err(p, "_metadata", f"must be one JSON string; got {z['_metadata'].dtype} {z['_metadata'].shape}")
        try:
            meta = json.loads(str(z["_metadata"].reshape(-1)[0]))
        except (json.JSONDecodeError, ValueError):
            raise _err(p, "_metadata", "is not JSON text") from None
        if not isinstance(meta, dict):
            meta = {"value": meta}
    return meta


def as_dataset(data: str | os.PathLike | PtychoDataset, *, require_object: bool = False) -> PtychoDataset:
    """The one entry point of train, reconstruct and compare: a :class:`PtychoDataset` as given,
    or the NPZ at a path loaded and validated (:func:`load_dataset`). ``require_object``: the
    ground truth ``objectGuess`` must be present."""
    if isinstance(data, PtychoDataset):
        if require_object and data.object is None:
            raise _err(data.source, "objectGuess", "missing (the ground truth is needed to compare)")
        return data
    if isinstance(data, (str, os.PathLike)):
        return load_dataset(data, require_object=require_object)
    raise DataError(f"expected a dataset path or PtychoDataset; got {type(data).__name__}")


def check_positions_inside(
    object_shape: tuple[int, int], ycoords: np.ndarray, xcoords: np.ndarray, n: int,
    source: str = "<memory>",
) -> None:
    """Raise DataError if any N x N patch centred at (y, x) leaves the object."""
    h, w = object_shape
    top = np.floor(np.asarray(ycoords) - n // 2)
    left = np.floor(np.asarray(xcoords) - n // 2)
    # sub-pixel positions read one more row/column
    bottom = np.ceil(np.asarray(ycoords) - n // 2) + n
    right = np.ceil(np.asarray(xcoords) - n // 2) + n
    bad = (top < 0) | (left < 0) | (bottom > h) | (right > w)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        key = "ycoords" if (top[i] < 0 or bottom[i] > h) else "xcoords"
        raise _err(
            source, key,
            f"{int(bad.sum())} position(s) put their {n}x{n} patch outside the {h}x{w} object "
            f"(first: index {i}, centre y={ycoords[i]:.2f}, x={xcoords[i]:.2f})",
        )
