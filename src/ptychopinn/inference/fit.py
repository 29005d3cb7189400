"""Reconstruct mode: fit the PINN to the scan being reconstructed (no labels), optionally starting
from a pre-trained bundle, then predict and stitch that same scan.

The scan's own patterns are the training data; a held-out fraction of its groups
(``TrainConfig.val_fraction``) drives early stopping (``patience``) and the choice of the final
weights (``restore_best``), so the fit stops when it no longer explains patterns it has not seen.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptychopinn.data.contract import as_dataset
from ptychopinn.inference.reconstruct import Reconstruction, reconstruct
from ptychopinn.model.config import ModelConfig
from ptychopinn.training.config import RECONSTRUCT_DEFAULTS, TrainConfig
from ptychopinn.training.trainer import TrainResult, train

MODEL_SUBDIR = "model"

#: reconstruct-mode defaults (:data:`~ptychopinn.training.config.RECONSTRUCT_DEFAULTS`)
DEFAULT_MODEL = ModelConfig(**{k: v for k, v in RECONSTRUCT_DEFAULTS.items()
                               if k in {f.name for f in dataclasses.fields(ModelConfig)}})
DEFAULT_TRAIN = TrainConfig(**{k: v for k, v in RECONSTRUCT_DEFAULTS.items()
                               if k in {f.name for f in dataclasses.fields(TrainConfig)}})


@dataclass
class ScanReconstruction:
    """The fit (bundle in ``out_dir/model``) and the stitched reconstruction of the scan."""

    training: TrainResult
    reconstruction: Reconstruction
    seconds: float


def reconstruct_scan(
    data: Any,
    out_dir: str | os.PathLike,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    from_bundle: str | os.PathLike | None = None,
    progress: bool = True,
) -> ScanReconstruction:
    """Fit a PINN to ``data`` (NPZ path or PtychoDataset) and reconstruct it into ``out_dir``
    (``reconstruction.npz`` + PNGs there, the fitted bundle in ``out_dir/model``).

    ``from_bundle``: fine-tune that bundle's network (its model config is used unless
    ``model_config`` is given, which must then match). Defaults: :data:`DEFAULT_MODEL` and
    :data:`DEFAULT_TRAIN`; ``train_config.overwrite`` / ``resume`` apply to the model folder.
    """
    t0 = time.perf_counter()
    ds = as_dataset(data)
    out = Path(out_dir)
    tcfg = train_config or DEFAULT_TRAIN
    mcfg = model_config if (model_config is not None or from_bundle is not None) else DEFAULT_MODEL
    res = train(ds, out / MODEL_SUBDIR, mcfg, tcfg, progress=progress, init_from=from_bundle)
    rec = reconstruct(out / MODEL_SUBDIR, ds, out_dir=out, device=tcfg.device, progress=progress, seed=tcfg.seed)
    rec.metadata["reconstruct_mode"] = {
        "model_dir": str(out / MODEL_SUBDIR), "from_bundle": None if from_bundle is None else str(from_bundle),
        "epochs_run": res.epochs_run, "best_epoch": res.best_epoch, "fit_seconds": res.seconds,
        "train_config": dataclasses.asdict(tcfg),
    }
    return ScanReconstruction(training=res, reconstruction=rec, seconds=time.perf_counter() - t0)
