"""Where each command adds its part to ``parity_telemetry.json`` (``--telemetry PATH``).

One function per command; each opens the file (extending it if it exists), records what that
command knows, and writes it back atomically. The training stages are recorded inside the trainer
(:func:`record_training_data`), from the very tensors the training loop uses.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def _open(path: str | os.PathLike, command: str, scenario: str | None = None):
    from ptychopinn.telemetry.recorder import TelemetryRecorder

    return TelemetryRecorder.open(path, scenario=scenario, command=command)


def record_simulation(path: str | os.PathLike, ds: Any, out_path: str | os.PathLike,
                      probe_from: str | None = None, scenario: str | None = None) -> None:
    """``simulate``: provenance (seeds, output checksum), configuration, probe, raw_diffraction."""
    from ptychopinn.telemetry.recorder import seeds_from_metadata

    rec = _open(path, "simulate", scenario)
    cfg = ds.metadata.get("config", {})
    rec.set_provenance(dataset_path=out_path, seeds=seeds_from_metadata(ds.metadata), dataset_type="simulated",
                       provenance_chain="ptychopinn.data.simulate -> " + os.fspath(out_path))
    rec.set_configuration({"N": ds.N, "nphotons": ds.metadata.get("nphotons_requested"), "simulation": cfg})
    norm = ds.metadata.get("probe_normalisation", {})
    rec.record_probe(ds.probe, None, "none", float(norm.get("factor", 1.0)),
                     "npz_loaded" if probe_from else "idealized", probe_from)
    rec.record_stage("raw_diffraction", ds.diff3d, "ptychopinn.data.simulate::simulate")
    rec.write()


def record_inference(path: str | os.PathLike, rec_result: Any, model_dir: str | os.PathLike,
                     data_path: str | os.PathLike, ds: Any, out_dir: str | os.PathLike,
                     scenario: str | None = None) -> None:
    """``infer``: inference_prediction (stitched amplitude), the inference block, the ground-truth
    amplitude over the same region when the data carry ``objectGuess``, the bundle's scale."""
    from ptychopinn.training.bundle import read_config

    rec = _open(path, "infer", scenario)
    rec.set_provenance()
    amp = rec_result.amplitude
    covered = rec_result.counts > 0
    meta = rec_result.metadata
    rec.record_stage("inference_prediction", amp[covered], "ptychopinn.inference.reconstruct::reconstruct "
                     "(stitched amplitude, covered pixels)", count=int(ds.n_patterns),
                     gridsize=meta.get("gridsize"), group_limit=int(ds.n_patterns))
    if ds.object is not None:
        gt = _gt_over_canvas(ds.object, rec_result.origin, amp.shape)
        if gt is not None:
            rec.record_stage("ground_truth_amplitude", np.abs(gt)[covered], "objectGuess over the stitched canvas",
                             count=int(ds.n_patterns))
    rec.record_inference(amp, rec_result.phase, group_limit=int(ds.n_patterns), dataset_path=data_path,
                         artifacts={"reconstruction_npz": os.path.join(os.fspath(out_dir), "reconstruction.npz"),
                                    "amplitude_png": os.path.join(os.fspath(out_dir), "amplitude.png"),
                                    "phase_png": os.path.join(os.fspath(out_dir), "phase.png")})
    scale = read_config(model_dir).get("intensity_scale") or {}
    _set_scale_from_bundle(rec, scale)
    rec.write()


def _set_scale_from_bundle(rec: Any, scale: dict[str, Any]) -> None:
    if not scale:
        return
    value = scale.get("value")
    rec.set_intensity_scale(
        dataset_derived=scale.get("data_derived"), closed_form=scale.get("closed_form"),
        used_mode="dataset_derived" if scale.get("used", "data") in ("data", "dataset_derived") else "fallback",
        recorded_in_bundle=value, model_exp_log_scale=scale.get("final", value),
        nphotons=scale.get("nphotons_metadata"),
    )


def _gt_over_canvas(obj: np.ndarray, origin: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    y0, x0 = (int(round(float(v))) for v in origin)
    h, w = shape
    if y0 < 0 or x0 < 0 or y0 + h > obj.shape[0] or x0 + w > obj.shape[1]:
        return None
    return obj[y0:y0 + h, x0:x0 + w]


def record_comparison(path: str | os.PathLike, result: Any, label: str | None = None,
                      scenario: str | None = None) -> None:
    """``compare``: the comparison block of one arm (default: PtychoPINN, else the first)."""
    rec = _open(path, "compare", scenario)
    labels = list(result.alignments)
    label = label or ("PtychoPINN" if "PtychoPINN" in labels else labels[0])
    al = result.alignments[label]
    y0, y1, x0, x1 = (int(v) for v in al.crop_box)
    rec.record_comparison(al.gt_amplitude, al.recon_amplitude, al.gt_phase, al.recon_phase, "simulated_object",
                          crop_metadata={"target_size": int(max(y1 - y0, x1 - x0)), "start": [y0, x0],
                                         "end": [y1, x1], "arm": label})
    rec.write()


def record_training(
    path: str | os.PathLike, *, ds: Any, train_path: str | None, mcfg: Any, tcfg: Any, prep: Any,
    train_idx: Any, sc: Any, model: Any, probe_initial: np.ndarray, weights: Any, batch_fn: Any,
    device: Any, history: list[dict[str, Any]], stopped: bool, run_dir: Any, scenario: str | None = None,
) -> None:
    """``train``: provenance, configuration, probe (pre/post the model's normalisation), the
    training-data stages computed from the trainer's own tensors and batch function, the
    intensity-scale block and the training block. Called on the main rank after training."""
    import torch

    from ptychopinn.telemetry.recorder import seeds_from_metadata
    from ptychopinn.telemetry.stats import StatsAccumulator, gathered_stats

    src = "ptychopinn.training.trainer"
    rec = _open(path, "train", scenario)
    rec.set_provenance(dataset_path=train_path, seeds={**seeds_from_metadata(ds.metadata), "training_seed": tcfg.seed},
                       dataset_type="npz_file" if train_path else "simulated")
    rec.set_configuration({
        "N": mcfg.N, "gridsize": mcfg.gridsize, "nphotons": sc.nphotons_metadata,
        "neighbor_count": tcfg.neighbor_count, "group_count": int(prep.groups.shape[0]),
        "batch_size": tcfg.batch_size, "nepochs": tcfg.epochs, "split_fraction": 1 - tcfg.val_fraction,
        "loss_fn": tcfg.loss, "loss_weights": weights.to_dict(),
        "intensity_scale_trainable": mcfg.intensity_scale_trainable,
        "model": mcfg.to_dict(), "training": tcfg.to_dict(),
    })
    rec.record_probe(ds.probe, probe_initial, "normalise_probe_energy", float(model.probe_factor),
                     "npz_loaded", train_path)
    g = {"gridsize": mcfg.gridsize, "group_limit": tcfg.n_groups}
    rec.record_stage("raw_diffraction", ds.diff3d, f"{ds.source}: diff3d as loaded")
    gi = prep.groups.to(prep.X.device)
    rec.record_stage("grouped_diffraction", None, f"{src}::_prepare X[groups]", stats=gathered_stats(prep.X, gi), **g)
    rec.record_stage("grouped_X_full", None, f"{src}::_prepare X[groups] * r", stats=gathered_stats(prep.X, gi, prep.r),
                     **g)
    ax, ay = StatsAccumulator(), StatsAccumulator()
    with torch.no_grad():
        for a in range(0, int(train_idx.numel()), 256):
            x, _, xm, _ = batch_fn(prep, train_idx[a:a + 256], device)
            ax.update(x)
            ay.update(xm)
    rec.record_stage("container_X", None, f"{src}::_batch x (training split, as fed to the model)", stats=ax.stats(), **g)
    if mcfg.kind == "pinn":
        rec.record_stage("training_labels_Y_amp", None, f"{src}::_batch xm (loss targets, count units)",
                         stats=ay.stats(), **g)
    d = ds.diff3d.astype(np.float64)
    rec.set_intensity_scale_from(sc, model_exp_log_scale=float(torch.exp(model.log_s.detach()).cpu()),
                                 batch_mean_sum_intensity=float(np.mean(np.sum(d * d, axis=(1, 2)))))
    last = history[-1] if history else {}
    rec.set_block("training", {
        "epochs_completed": len(history), "early_stopped": bool(stopped),
        "early_stop_epoch": len(history) if stopped else None, "final_loss": last.get("train_loss"),
        "final_val_loss": last.get("val_loss"), "nan_detected": False, "first_nan_epoch": None,
        "history_artifact": os.path.join(os.fspath(run_dir), "history.json"),
        "checkpoint_artifact": os.path.join(os.fspath(run_dir), "model.safetensors"),
    })
    rec.write()


def record_divergence(path: str | os.PathLike, history: list[dict[str, Any]], epoch: int, run_dir: Any,
                      scenario: str | None = None) -> None:
    """``train`` stopped on a NaN/Inf loss: the training block with ``nan_detected`` and the epoch."""
    rec = _open(path, "train", scenario)
    last = history[-1] if history else {}
    rec.set_block("training", {
        "epochs_completed": len(history), "early_stopped": False, "early_stop_epoch": None,
        "final_loss": last.get("train_loss"), "final_val_loss": last.get("val_loss"),
        "nan_detected": True, "first_nan_epoch": int(epoch),
        "history_artifact": None, "checkpoint_artifact": os.path.join(os.fspath(run_dir), "checkpoint.pt"),
    })
    rec.write()
