"""The one result type of a reconstruction, whoever made it (the PINN, pty-chi, a file).

A :class:`Reconstruction` is a complex object on a canvas whose pixel (i, j) is object pixel
(origin[0] + i, origin[1] + j). ``amplitude`` and ``phase`` are derived from ``object`` (never
stored apart from it). :func:`load_reconstruction` (also ``Reconstruction.load``) reads one from
our ``reconstruction.npz``, pty-chi's ``ptychi_reconstruction.npz``, an array, an
``(array, origin)`` pair or a mapping; :meth:`Reconstruction.save` writes the NPZ it reads back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ptychopinn._io import jsonable, parse_json, save_npz_atomic
from ptychopinn.errors import DataError

#: label of a reconstruction that was given none
DEFAULT_LABEL = "recon"


class Origin(NamedTuple):
    """Object pixel (y, x) of canvas pixel (0, 0)."""

    y: float
    x: float

    def astype(self, dtype: Any) -> np.ndarray:
        """The origin as a (2,) array of ``dtype`` (``origin.astype(int)`` -> ``[y0, x0]``)."""
        return np.asarray(self, dtype=dtype)


@dataclass(frozen=True, kw_only=True)
class Reconstruction:
    """A complex object on a canvas: pixel (i, j) is object pixel (origin[0] + i, origin[1] + j).

    ``label`` names the arm in a comparison; ``source`` says where it came from (a file, or
    ``<memory>``). Optional: ``probe`` (N, N) complex; ``counts`` (H, W) int, the patches stitched
    into each pixel (0 = not covered); ``coverage`` (H, W) bool, the pixels the scan covers
    (``counts > 0`` when only ``counts`` is given); ``stitch_crop`` and ``input_scale`` of a
    stitched (PINN) reconstruction. ``timing``: seconds by step (``total_s`` at least, where
    timed); ``metadata``: JSON-safe provenance, written into the NPZ as ``_metadata``.
    """

    object: np.ndarray
    origin: Origin = (0.0, 0.0)  # type: ignore[assignment]  # any (y, x) pair; made an Origin
    label: str = DEFAULT_LABEL
    source: str = "<memory>"
    probe: np.ndarray | None = None
    counts: np.ndarray | None = None
    coverage: np.ndarray | None = None
    stitch_crop: int | None = None
    input_scale: float | None = None
    timing: dict[str, float] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin", _origin(self.origin, self.source))
        if self.coverage is None and self.counts is not None:
            object.__setattr__(self, "coverage", np.asarray(self.counts) > 0)

    @property
    def amplitude(self) -> np.ndarray:
        """``|object|`` (float32 for a complex64 object)."""
        return np.abs(self.object)

    @property
    def phase(self) -> np.ndarray:
        """``angle(object)``, radians in (-pi, pi]."""
        return np.angle(self.object)

    def arrays(self, **extra: Any) -> dict[str, np.ndarray]:
        """The arrays of a reconstruction NPZ, in order: ``object`` (complex64), its ``amplitude``
        and ``phase`` (float32), ``origin`` (float64), ``counts`` and ``probe`` (when set), then
        ``extra``, ``stitch_crop`` (when set) and ``_metadata`` (JSON)."""
        obj = np.asarray(self.object).astype(np.complex64)
        out: dict[str, Any] = {"object": obj, "amplitude": np.abs(obj), "phase": np.angle(obj),
                               "origin": np.asarray(self.origin, dtype=np.float64)}
        if self.counts is not None:
            out["counts"] = self.counts
        if self.probe is not None:
            out["probe"] = np.asarray(self.probe).astype(np.complex64)
        out.update(extra)
        if self.stitch_crop is not None:
            out["stitch_crop"] = np.int64(self.stitch_crop)
        out["_metadata"] = np.array(json.dumps(self.metadata, default=jsonable))
        return out

    def save(self, path: str | os.PathLike, **extra: Any) -> Path:
        """Write :meth:`arrays` (plus ``extra`` and the ``label``) to the NPZ ``path``, atomically;
        :meth:`load` reads it back."""
        return save_npz_atomic(path, **self.arrays(**extra), label=np.array(self.label))

    @classmethod
    def load(cls, source: Any, label: str | None = None) -> Reconstruction:
        """See :func:`load_reconstruction`."""
        return load_reconstruction(source, label)


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def _as_2d_complex(a: Any, where: str, key: str) -> np.ndarray:
    arr = np.asarray(a)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    while arr.ndim > 2 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise DataError(f"{where}: key '{key}': must be a 2-D object; got shape {arr.shape}")
    if arr.dtype.kind not in "fciu":
        raise DataError(f"{where}: key '{key}': unsupported dtype {arr.dtype}")
    if min(arr.shape) < 1:
        raise DataError(f"{where}: key '{key}': empty array of shape {arr.shape}")
    return arr.astype(np.complex128)  # NaN outside the scored region is allowed (checked later)


def _origin(value: Any, where: str) -> Origin:
    o = np.asarray(value, dtype=np.float64).reshape(-1)
    if o.shape != (2,) or not np.all(np.isfinite(o)):
        raise DataError(f"{where}: key 'origin': must be two finite numbers [y0, x0]; got {np.asarray(value).tolist()}")
    return Origin(float(o[0]), float(o[1]))


def _from_mapping(z: Mapping[str, Any], label: str | None, where: str) -> Reconstruction:
    for key in ("object", "reconstructed_object", "objectGuess"):
        if key in z:
            obj = _as_2d_complex(z[key], where, key)
            break
    else:
        if "amplitude" in z and "phase" in z:
            amp = _as_2d_complex(z["amplitude"], where, "amplitude").real
            ph = _as_2d_complex(z["phase"], where, "phase").real
            if amp.shape != ph.shape:
                raise DataError(f"{where}: keys 'amplitude' {amp.shape} and 'phase' {ph.shape} differ in shape")
            obj = amp * np.exp(1j * ph)
        else:
            raise DataError(
                f"{where}: no reconstruction found (looked for keys 'object', 'reconstructed_object', "
                f"'objectGuess', or 'amplitude'+'phase'; has {sorted(z)})"
            )
    origin = z["origin"] if "origin" in z and z["origin"] is not None else (0.0, 0.0)
    probe = next((np.asarray(z[k]) for k in ("probe", "reconstructed_probe") if k in z), None)
    while probe is not None and probe.ndim > 2:  # the first mode of a (modes, N, N) stack
        probe = probe[0]
    meta = (parse_json(str(z["_metadata"]), f"{where}: key '_metadata'", "reconstruction metadata", expect=dict)
            if "_metadata" in z else {})
    return Reconstruction(
        object=obj, origin=_origin(origin, where), source=where, probe=probe, metadata=meta,
        label=label or (str(z["label"]) if "label" in z else DEFAULT_LABEL),
        counts=np.asarray(z["counts"]) if "counts" in z else None,
        stitch_crop=int(z["stitch_crop"]) if "stitch_crop" in z else None,
    )


def load_reconstruction(source: Any, label: str | None = None) -> Reconstruction:
    """Read a :class:`Reconstruction` from a path (our ``reconstruction.npz``: ``object`` +
    ``origin``, with ``counts``, ``stitch_crop``, ``label`` and ``_metadata`` when there;
    pty-chi's ``ptychi_reconstruction.npz``: ``reconstructed_object`` and ``reconstructed_probe``,
    origin (0, 0) unless stored), a complex array (origin (0, 0)), an ``(array, origin)`` pair, a
    mapping with those keys, a :class:`Reconstruction`, or an object with ``object`` /
    ``reconstructed_object`` and optional ``origin`` attributes. ``label`` replaces the stored one
    (default: the file's ``label``, else :data:`DEFAULT_LABEL`)."""
    if isinstance(source, Reconstruction):
        return replace(source, label=label) if label else source
    if isinstance(source, (str, os.PathLike)):
        from ptychopinn.data.contract import open_npz

        p = str(source)
        return _from_mapping(open_npz(p), label, p)
    where = f"reconstruction '{label or DEFAULT_LABEL}'"
    if isinstance(source, np.ndarray):
        return Reconstruction(label=label or DEFAULT_LABEL, object=_as_2d_complex(source, where, "object"),
                              source=where)
    if isinstance(source, tuple) and len(source) == 2:
        return Reconstruction(label=label or DEFAULT_LABEL, object=_as_2d_complex(source[0], where, "object"),
                              origin=_origin(source[1], where), source=where)
    if isinstance(source, Mapping):
        return _from_mapping(source, label, where)
    for attr in ("object", "reconstructed_object"):
        if hasattr(source, attr):
            z = {attr: getattr(source, attr)}
            if getattr(source, "origin", None) is not None:
                z["origin"] = source.origin
            return _from_mapping(z, label, where)
    raise DataError(f"{where}: unsupported input of type {type(source).__name__}")
