"""Reconstruct mode: fit the PINN to the scan being reconstructed (no labels), optionally starting
from a pre-trained bundle, then predict and stitch that same scan.

The scan's own patterns are the training data; a held-out fraction of its groups
(``TrainConfig.val_fraction``) drives early stopping (``patience``) and the choice of the final
weights (``restore_best``), so the fit stops when it no longer explains patterns it has not seen.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ptychopinn.data.contract import as_dataset
from ptychopinn.inference.reconstruct import Reconstruction, reconstruct
from ptychopinn.model.config import ModelConfig
from ptychopinn.training.config import FINETUNE_DEFAULTS, RECONSTRUCT_DEFAULTS, TrainConfig
from ptychopinn.training.trainer import POSITIONS_FILE, TrainResult, train

MODEL_SUBDIR = "model"

#: reconstruct-mode defaults (:data:`~ptychopinn.training.config.RECONSTRUCT_DEFAULTS`)
DEFAULT_MODEL = ModelConfig(**{k: v for k, v in RECONSTRUCT_DEFAULTS.items()
                               if k in {f.name for f in dataclasses.fields(ModelConfig)}})
DEFAULT_TRAIN = TrainConfig(**{k: v for k, v in RECONSTRUCT_DEFAULTS.items()
                               if k in {f.name for f in dataclasses.fields(TrainConfig)}})
#: fine-tuning a trained bundle (:data:`~ptychopinn.training.config.FINETUNE_DEFAULTS`)
FINETUNE_TRAIN = TrainConfig(**FINETUNE_DEFAULTS)
#: ``from_bundle`` default: the built-in general model for the scan's N when one ships, else from scratch
GENERAL = "general"


def start_bundle(from_bundle: Any, n: int) -> Path | str | None:
    """The bundle a fit starts from: ``GENERAL`` -> the built-in general model for N (or None: from
    scratch), unless a directory of that name exists; a name or directory as given; None -> from scratch."""
    if isinstance(from_bundle, str) and from_bundle == GENERAL and not os.path.exists(from_bundle):
        from ptychopinn.model.bundle import general_bundle_for

        return general_bundle_for(n)
    return from_bundle


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
    from_bundle: str | os.PathLike | None = GENERAL,
    progress: bool = True,
) -> ScanReconstruction:
    """Fit a PINN to ``data`` (NPZ path or PtychoDataset) and reconstruct it into ``out_dir``
    (``reconstruction.npz`` + PNGs there, the fitted bundle in ``out_dir/model``).

    ``from_bundle``: fine-tune that bundle's network (a directory or a built-in name such as
    ``general-n64``; its model config is used unless ``model_config`` is given, which must then
    match). The default :data:`GENERAL` starts from the built-in general model when one ships for the
    scan's N (and from random weights otherwise); None always starts from random weights. Training
    defaults: :data:`FINETUNE_TRAIN` from a bundle, :data:`DEFAULT_TRAIN` (with
    :data:`DEFAULT_MODEL`) from scratch; ``train_config.overwrite`` / ``resume`` apply to the model folder.
    With ``train_config.refine_positions`` the scan is stitched at the refined positions (recorded in
    ``reconstruction.npz`` and, with the recorded ones, in ``out_dir/refined_positions.npz``).
    """
    t0 = time.perf_counter()
    ds = as_dataset(data)
    out = Path(out_dir)
    from_bundle = start_bundle(from_bundle, ds.N)
    tcfg = train_config or (DEFAULT_TRAIN if from_bundle is None else FINETUNE_TRAIN)
    mcfg = model_config if (model_config is not None or from_bundle is not None) else DEFAULT_MODEL
    res = train(ds, out / MODEL_SUBDIR, mcfg, tcfg, progress=progress, init_from=from_bundle)
    refined = res.extra.get("refined_positions_yx")
    if refined is not None:  # stitch at the learnt positions; they are saved beside the reconstruction
        ds = dataclasses.replace(ds, xcoords=refined[:, 1].copy(), ycoords=refined[:, 0].copy(),
                                 xcoords_start=ds.xcoords, ycoords_start=ds.ycoords,
                                 metadata={**ds.metadata, "positions": "refined (reconstruct_scan)"})
        shutil.copyfile(out / MODEL_SUBDIR / POSITIONS_FILE, out / POSITIONS_FILE)  # the trainer wrote it
    rec = reconstruct(out / MODEL_SUBDIR, ds, out_dir=out, device=tcfg.device, progress=progress, seed=tcfg.seed)
    rec.metadata["reconstruct_mode"] = {
        "model_dir": str(out / MODEL_SUBDIR), "from_bundle": None if from_bundle is None else str(from_bundle),
        "epochs_run": res.epochs_run, "best_epoch": res.best_epoch, "fit_seconds": res.seconds,
        "train_config": dataclasses.asdict(tcfg),
    }
    return ScanReconstruction(training=res, reconstruction=rec, seconds=time.perf_counter() - t0)
