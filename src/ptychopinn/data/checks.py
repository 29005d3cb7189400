"""Plausibility checks on a loaded dataset: the mistakes real beamline files bring.

Each finding is ``refuse`` (the data are almost certainly mis-read: commands stop unless the
user overrides with ``--force``) or ``note`` (worth knowing, never blocks). Checks:

* zero frequency in the corner (patterns not fftshifted): the mean pattern's four N/8 corner
  squares hold more than 4x the intensity of the central N/4 square and its maximum lies in a
  corner square -> refuse (fix: ``--fftshift``);
* scan extent below one object pixel on both axes (positions in metres, or all equal) -> refuse;
* ``objectGuess`` that is constant (a placeholder), or that the reader marked as a product
  object rather than a ground truth -> note.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ptychopinn.data.contract import PtychoDataset
from ptychopinn.errors import DataError


@dataclass(frozen=True)
class Finding:
    level: str  # "refuse" or "note"
    key: str  # contract key (or HDF5 path) concerned
    message: str

    def line(self, source: str) -> str:
        return f"{source}: key '{self.key}': {self.message}"


def corner_dc_ratio(diff3d: np.ndarray, chunk: int = 4096) -> tuple[float, bool]:
    """(corner / centre intensity ratio of the mean pattern, whether its maximum is in a corner)."""
    n = diff3d.shape[-1]
    mean = np.zeros(diff3d.shape[1:], dtype=np.float64)
    for i in range(0, diff3d.shape[0], chunk):
        d = np.asarray(diff3d[i:i + chunk], dtype=np.float64)
        mean += np.sum(d * d, axis=0)
    c, k = n // 2, max(1, n // 8)
    h = max(1, n // 8)
    centre = mean[c - h:c + h, c - h:c + h].sum()
    corners = (mean[:k, :k].sum() + mean[:k, -k:].sum() + mean[-k:, :k].sum() + mean[-k:, -k:].sum())
    iy, ix = np.unravel_index(int(np.argmax(mean)), mean.shape)
    in_corner = (min(iy, n - 1 - iy) < k) and (min(ix, n - 1 - ix) < k)
    return float(corners / centre) if centre > 0 else float("inf"), bool(in_corner)


def sanity_findings(ds: PtychoDataset) -> list[Finding]:
    out: list[Finding] = []
    ratio, in_corner = corner_dc_ratio(ds.diff3d)
    if ratio > 4.0 and in_corner:
        out.append(Finding("refuse", "diff3d", (
            f"zero frequency in the corner (corner/centre intensity {ratio:.3g}); the contract wants it at "
            "N//2: use --fftshift")))
    if ds.n_patterns > 1:
        ex = float(np.ptp(ds.xcoords))
        ey = float(np.ptp(ds.ycoords))
        if max(ex, ey) < 1.0:
            big = float(max(np.abs(ds.xcoords).max(), np.abs(ds.ycoords).max()))
            why = ("the coordinates look like metres" if 0 < big < 1e-2 else "all positions are (nearly) equal")
            out.append(Finding("refuse", "xcoords", (
                f"scan extent {ex:.3g} x {ey:.3g} px, below one pixel ({why}); positions must be object "
                "pixels (read metres from a CXI file)")))
    if ds.object is not None:
        o = np.asarray(ds.object)
        spread = float(np.std(o)) / max(float(np.mean(np.abs(o))), 1e-30)
        role = (ds.metadata.get("geometry") or {}).get("object_role")
        if spread < 1e-6:
            out.append(Finding("note", "objectGuess",
                               "is constant: a placeholder, not a ground truth (no comparison against it)"))
        elif role and "not a ground truth" in role:
            out.append(Finding("note", "objectGuess", f"is the {role}"))
    return out


def check_dataset(ds: PtychoDataset, *, force: bool = False,
                  report: Callable[[Finding], None] | None = None) -> list[Finding]:
    """The :func:`sanity_findings` of ``ds``; :class:`DataError` naming the first refusing finding
    unless ``force``. ``report`` (e.g. a logger) is called with every note, then, with ``force``,
    with every overridden refusal, before anything is raised."""
    findings = sanity_findings(ds)
    refused = [f for f in findings if f.level == "refuse"]
    for f in findings:
        if f.level == "note" and report is not None:
            report(f)
    if refused and not force:
        raise DataError(refused[0].line(ds.source) + " (override with --force)")
    for f in refused if report is not None else ():
        report(f)
    return findings
