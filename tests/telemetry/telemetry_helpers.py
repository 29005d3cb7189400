"""Synthetic pipeline telemetry for the telemetry tests (small arrays, no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ptychopinn.physics.probe import default_probe, normalise_probe_energy
from ptychopinn.telemetry.recorder import TelemetryRecorder

N = 16


def arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """Count-scale amplitudes X, grouped copy, scale s and a 'reconstruction'."""
    rng = np.random.default_rng(seed)
    x = np.sqrt(rng.poisson(50.0, (40, N, N))).astype(np.float32)
    s = float(np.sqrt((x.astype(np.float64) ** 2).sum((1, 2)).mean()) / (N / 2))
    groups = x[rng.integers(0, 40, (30, 4))]  # (G, C, N, N)
    truth = rng.uniform(0.5, 1.5, (32, 32))
    pred = truth * 0.97 + 0.01 * rng.normal(size=truth.shape)
    return {"x": x, "groups": groups, "s": s, "truth": truth, "pred": pred,
            "phase": rng.uniform(-1, 1, (32, 32))}


def record_full(path: Path, *, norm_factor: float = 1.0, raw_factor: float = 1.0,
                downstream: float = 1.0, seed: int = 0) -> Path:
    """Write a complete telemetry file in three invocations (simulate, train, infer+compare).

    ``raw_factor`` scales the raw diffraction stage only; ``norm_factor`` multiplies the
    normalised input (grouped_X_full and everything built on it: container, intensity scale,
    labels); ``downstream`` scales the predictions."""
    a = arrays(seed)
    data = path.parent / "data.npz"
    np.savez(data, diff3d=a["x"])
    probe = default_probe(N)
    post, f = normalise_probe_energy(probe)

    rec = TelemetryRecorder(path, scenario="unit", command="simulate")
    rec.load_existing()
    rec.set_provenance(dataset_path=data, seeds={"object_seed": 1, "sim_seed": 2}, dataset_type="simulated")
    rec.set_configuration({"N": N, "nphotons": 50.0 * N * N})
    rec.record_probe(probe, post, "normalise_probe_energy", f, "idealized")
    rec.record_stage("raw_diffraction", a["x"] * raw_factor, "ptychopinn.data.simulate::simulate")
    rec.write()

    rec = TelemetryRecorder.open(path, command="train")
    rec.set_provenance(seeds={"training_seed": 3})
    rec.set_configuration({"gridsize": 2, "batch_size": 16, "nepochs": 1, "loss_fn": "nll"})
    s = a["s"] / norm_factor
    xn = a["groups"] / s
    rec.record_stage("grouped_diffraction", a["groups"], "ptychopinn.data.grouping::make_groups", gridsize=2)
    rec.record_stage("grouped_X_full", xn, "x = X * r", gridsize=2)
    rec.record_stage("container_X", xn, "training dataset tensor", gridsize=2)
    rec.record_stage("training_labels_Y_amp", xn * s, "loss targets (count units)", gridsize=2)
    rec.set_intensity_scale(s, (50.0 * N * N) ** 0.5 / (N / 2), "data", recorded_in_bundle=s,
                            model_exp_log_scale=s, batch_mean_sum_intensity=(s * N / 2) ** 2,
                            nphotons=50.0 * N * N)
    rec.set_block("training", {"epochs_completed": 1, "early_stopped": False, "final_loss": 0.5,
                               "nan_detected": False, "history_artifact": "history.json"})
    rec.write()

    rec = TelemetryRecorder.open(path, command="infer")
    rec.set_provenance()
    pred = a["pred"] * downstream
    rec.record_stage("inference_prediction", pred, "stitched amplitude", group_limit=30)
    rec.record_stage("ground_truth_amplitude", a["truth"], "ground truth, same region")
    rec.record_inference(pred, a["phase"], group_limit=30, artifacts={"amplitude_png": "amplitude.png"})
    rec.record_comparison(a["truth"], pred, a["phase"], a["phase"] * 0.9)
    rec.write()
    return path
