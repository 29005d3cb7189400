"""Intensity normalisation (DESIGN section 2).

Network inputs are ``x = X * r`` with one dataset scalar ``r = sqrt((N/2)^2 / mean_patterns sum X^2)``
(so the mean total intensity of an input is (N/2)^2, O(1) per pixel); the matching intensity scale
is ``s = 1/r`` = sqrt(measured photons per pattern)/(N/2). The closed form sqrt(nphotons)/(N/2)
uses the nominal dose from the metadata instead of the measured one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ptychopinn.errors import ConfigError, DataError
from ptychopinn.physics import dose
from ptychopinn.physics.dose import closed_form_scale

SCALE_SOURCES = ("data", "closed_form")


def mean_total_intensity(diff3d: np.ndarray) -> float:
    """Mean over patterns of sum(X^2) (:func:`ptychopinn.physics.dose.mean_total_counts`)."""
    try:
        return dose.mean_total_counts(diff3d)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def input_scale(diff3d: np.ndarray) -> float:
    """r = sqrt((N/2)^2 / mean_patterns sum X^2) (:func:`ptychopinn.physics.dose.input_scale`)."""
    try:
        return dose.input_scale(diff3d)
    except ValueError as exc:
        raise DataError(str(exc)) from None


def nphotons_from_metadata(meta: Mapping[str, Any] | None) -> float | None:
    """The nominal dose recorded in a dataset's metadata, if any."""
    if not meta:
        return None
    for key in ("nphotons_requested", "nphotons"):
        v = meta.get(key)
        if isinstance(v, (int, float)) and v > 0:
            return float(v)
    cfg = meta.get("config")
    if isinstance(cfg, Mapping) and isinstance(cfg.get("nphotons"), (int, float)) and cfg["nphotons"] > 0:
        return float(cfg["nphotons"])
    return None


@dataclass(frozen=True)
class IntensityScale:
    """The intensity-scale block recorded in a bundle (``final`` is filled in after training)."""

    data_derived: float
    closed_form: float | None
    nphotons_metadata: float | None
    used: str
    value: float
    input_scale: float
    trainable: bool = False
    final: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_intensity_scale(
    diff3d: np.ndarray, metadata: Mapping[str, Any] | None, source: str = "data", trainable: bool = False,
) -> IntensityScale:
    """Compute both scales and pick one (``source`` 'data' or 'closed_form'); r = 1/s."""
    if source not in SCALE_SOURCES:
        raise ConfigError(f"intensity scale source must be one of {SCALE_SOURCES}; got {source!r}")
    n = np.asarray(diff3d).shape[-1]
    s_data = 1.0 / input_scale(diff3d)
    nph = nphotons_from_metadata(metadata)
    s_cf = closed_form_scale(nph, n) if nph is not None else None
    if source == "closed_form" and s_cf is None:
        raise ConfigError("intensity scale source 'closed_form' needs nphotons in the dataset metadata")
    s = s_cf if source == "closed_form" else s_data
    return IntensityScale(
        data_derived=s_data, closed_form=s_cf, nphotons_metadata=nph, used=source, value=float(s),
        input_scale=1.0 / float(s), trainable=trainable,
    )
