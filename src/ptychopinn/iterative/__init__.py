"""Iterative baseline (pty-chi). Importing this package does no work; names resolve lazily.

``run_ptychi(dataset, PtychiConfig(...)) -> PtychiResult``; ``save_result(result, out_dir)``
writes ``ptychi_reconstruction.npz`` and a PNG. See :mod:`.ptychi_runner` for the conventions.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "PtychiConfig": "ptychopinn.iterative.ptychi_runner",
    "PtychiResult": "ptychopinn.iterative.ptychi_runner",
    "run_ptychi": "ptychopinn.iterative.ptychi_runner",
    "save_result": "ptychopinn.iterative.ptychi_runner",
    "import_ptychi": "ptychopinn.iterative.ptychi_runner",
    "save_probe": "ptychopinn.iterative.ptychi_runner",
    "refine_probe": "ptychopinn.iterative.ptychi_runner",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    try:
        module = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ptychopinn.iterative' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), name)
