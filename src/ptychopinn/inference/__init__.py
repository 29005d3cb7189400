"""Inference stage: chunked prediction and vectorised stitching (DESIGN section 6).

Public names resolve lazily (importing the package does not import torch)."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "reconstruct": "ptychopinn.inference.reconstruct:reconstruct",
    "Reconstruction": "ptychopinn.inference.reconstruct:Reconstruction",
    "predict": "ptychopinn.inference.predict:predict",
    "iter_patches": "ptychopinn.inference.predict:iter_patches",
    "resolve_model": "ptychopinn.inference.predict:resolve_model",
    "stitch": "ptychopinn.inference.stitch:stitch",
    "Stitcher": "ptychopinn.inference.stitch:Stitcher",
    "default_crop": "ptychopinn.inference.stitch:default_crop",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        target = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ptychopinn.inference' has no attribute {name!r}") from None
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
