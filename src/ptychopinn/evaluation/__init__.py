"""Evaluation stage: alignment to the ground truth, image-quality metrics, comparisons.

Submodules: :mod:`~ptychopinn.evaluation.align`, :mod:`~ptychopinn.evaluation.metrics`,
:mod:`~ptychopinn.evaluation.compare`. The names below are imported lazily (on first use). The functions
``compare`` and ``align`` share their submodule's name, so import them from the submodule:
``from ptychopinn.evaluation.compare import compare``.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY: dict[str, str] = {
    "compute_comparison": "compare",
    "load_reconstruction": "compare",
    "CompareConfig": "compare",
    "ComparisonResult": "compare",
    "Reconstruction": "compare",
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

__all__ = [  # noqa: RUF022 - grouped by submodule
    "compute_comparison",
    "load_reconstruction",
    "CompareConfig",
    "ComparisonResult",
    "Reconstruction",
    "Alignment",
    "estimate_shift",
    "fourier_shift_image",
    "fit_phase",
    "amplitude_scale",
    "scanned_region",
    "mae",
    "mse",
    "psnr",
    "ssim",
    "ms_ssim",
    "frc",
    "pearson_r",
    "FRCResult",
]


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'ptychopinn.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"ptychopinn.evaluation.{mod}"), name)
