"""ptychopinn: physics-informed neural-network reconstruction for X-ray ptychography.

Stages (one sub-package each): ``physics`` -> ``data`` -> ``model`` -> ``training`` ->
``inference`` -> ``evaluation`` -> ``iterative`` -> ``telemetry`` -> ``studies``; ``cli`` is a thin
layer over them. Importing the package does no work: the convenience functions below are
resolved lazily on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"
_LAZY = {
    "simulate": "ptychopinn.data.simulate:simulate",
    "SimulationConfig": "ptychopinn.data.simulate:SimulationConfig",
    "load_dataset": "ptychopinn.data.contract:load_dataset",
    "PtychoDataset": "ptychopinn.data.contract:PtychoDataset",
    "train": "ptychopinn.training.trainer:train",
    "TrainConfig": "ptychopinn.training.config:TrainConfig",
    "ModelConfig": "ptychopinn.model.config:ModelConfig",
    "load_bundle": "ptychopinn.model.bundle:load_bundle",
    "reconstruct": "ptychopinn.inference.reconstruct:reconstruct",
    "reconstruct_scan": "ptychopinn.inference.fit:reconstruct_scan",
    "compare": "ptychopinn.evaluation.compare:compare",
    "run_ptychi": "ptychopinn.iterative.ptychi_runner:run_ptychi",
    "PtychiConfig": "ptychopinn.iterative.ptychi_runner:PtychiConfig",
    "CompareConfig": "ptychopinn.evaluation.compare:CompareConfig",
    "run_demo": "ptychopinn.studies.demo:run_demo",
    "DemoConfig": "ptychopinn.studies.demo:DemoConfig",
    "photon_grid": "ptychopinn.studies.photon_grid:photon_grid",
    "PhotonGridConfig": "ptychopinn.studies.photon_grid:PhotonGridConfig",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    try:
        target = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'ptychopinn' has no attribute {name!r}") from None
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)
