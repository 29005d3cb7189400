"""tike's NPZ layout (``data``, ``probe``, ``scan``), optionally bz2-compressed, to contract arrays.

tike conventions: ``data`` (…, M, N, N) measured intensities (counts) with the zero frequency in the
corner (not fftshifted); ``probe`` (…, N, N) complex (the first mode is used); ``scan`` (…, M, 2) the
(y, x) of each probe window's **top-left corner** in object pixels. Ours: ``diff3d`` =
fftshift(sqrt(counts)) (zero frequency at N//2), patch centres = top-left + N//2.
"""

from __future__ import annotations

import bz2
import io
import os
from typing import Any

import numpy as np

from ptychopinn.errors import DataError, one_line


def read_tike(path: str | os.PathLike) -> dict[str, Any]:
    """Contract arrays (``_metadata`` a dict) of a tike NPZ / NPZ.bz2 file."""
    p = str(path)
    if not os.path.isfile(p):
        raise DataError(f"{p}: file not found")
    try:
        with open(p, "rb") as fh:
            raw = fh.read()
        if p.lower().endswith(".bz2"):
            raw = bz2.decompress(raw)
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{p}: not a readable tike NPZ{' (bz2)' if p.lower().endswith('.bz2') else ''} "
                        f"({one_line(exc)})") from None
    for k in ("data", "scan"):
        if k not in arrays:
            raise DataError(f"{p}: key '{k}': missing (tike layout: data, probe, scan)")
    data = np.asarray(arrays["data"])
    while data.ndim > 3 and data.shape[0] == 1:
        data = data[0]
    if data.ndim != 3 or data.shape[1] != data.shape[2] or data.dtype.kind not in "fiu":
        raise DataError(f"{p}: key 'data': must be real (M, N, N) intensities; got {arrays['data'].shape} "
                        f"{data.dtype}")
    c = data.astype(np.float64)
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise DataError(f"{p}: key 'data': contains NaN, Inf or negative intensities")
    m, n = data.shape[0], data.shape[-1]
    scan = np.asarray(arrays["scan"], np.float64)
    while scan.ndim > 2 and scan.shape[0] == 1:
        scan = scan[0]
    if scan.shape != (m, 2) or not np.all(np.isfinite(scan)):
        raise DataError(f"{p}: key 'scan': must be finite ({m}, 2) top-left corners (y, x); got "
                        f"{arrays['scan'].shape}")
    out: dict[str, Any] = {
        "diff3d": np.fft.fftshift(np.sqrt(c), axes=(1, 2)).astype(np.float32),
        "ycoords": scan[:, 0] + n // 2,
        "xcoords": scan[:, 1] + n // 2,
    }
    if "probe" in arrays:
        pr = np.asarray(arrays["probe"])
        while pr.ndim > 2:
            pr = pr[0]
        if pr.shape != (n, n) or pr.dtype.kind not in "fc" or not np.all(np.isfinite(pr)):
            raise DataError(f"{p}: key 'probe': must be a finite ({n}, {n}) probe; got {arrays['probe'].shape}")
        out["probeGuess"] = pr.astype(np.complex64)
    out["_metadata"] = {
        "source_format": "tike NPZ" + (" (bz2)" if p.lower().endswith(".bz2") else ""),
        "source_files": [p],
        "load_notes": {"tike_conversion": "diff3d = fftshift(sqrt(data)); centres = scan (top-left y, x) + N//2; "
                                          "probe: first mode"},
    }
    return out
