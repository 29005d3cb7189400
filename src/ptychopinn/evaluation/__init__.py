"""Evaluation stage: alignment to the ground truth, image-quality metrics, comparisons.

Submodules: :mod:`~ptychopinn.evaluation.align`, :mod:`~ptychopinn.evaluation.metrics`,
:mod:`~ptychopinn.evaluation.compare`. The names below are imported lazily (on first use).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "compare": "compare",
    "compute_comparison": "compare",
    "load_reconstruction": "compare",
    "CompareConfig": "compare",
    "ComparisonResult": "compare",
    "Reconstruction": "compare",
    "align": "align",
    "Alignment": "align",
    "estimate_shift": "align",
    "fourier_shift_image": "align",
    "fit_phase": "align",
    "amplitude_scale": "align",
    "scanned_region": "align",
    "mae": "metrics",
    "mse": "metrics",
    "psnr": "metrics",
    "ssim": "metrics",
    "ms_ssim": "metrics",
    "frc": "metrics",
    "pearson_r": "metrics",
    "FRCResult": "metrics",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'ptychopinn.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ptychopinn.evaluation.{mod}"), name)
