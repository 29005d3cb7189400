"""What each command adds to ``parity_telemetry.json`` (``--telemetry PATH``).

``train`` and ``infer`` attach an observer (:mod:`ptychopinn._observe`) that records the tensors the loop builds
(``container_X`` / ``training_labels_Y_amp``: the batches of the first epoch this process runs); ``simulate`` and
``compare`` call a function with their result.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn._io import atomic_path
from ptychopinn._observe import Observer
from ptychopinn.evaluation.align import canvas_box
from ptychopinn.physics.dose import mean_total_counts
from ptychopinn.telemetry.recorder import TelemetryRecorder, training_block
from ptychopinn.telemetry.stats import StatsAccumulator, gathered_stats

_TRAINER = "ptychopinn.training.trainer"


def seeds_from_metadata(meta: Mapping[str, Any] | None) -> dict[str, int | None]:
    """Seeds of a simulated dataset's ``_metadata``: ``object_seed``, ``sim_seed`` (the master
    ``seed``), plus ``scan_seed`` / ``noise_seed`` when present."""
    seeds = (meta or {}).get("seeds") or {}
    found = {"object_seed": seeds.get("object_seed"), "sim_seed": seeds.get("seed", seeds.get("sim_seed")),
             **{k: seeds[k] for k in ("scan_seed", "noise_seed") if k in seeds}}
    return {k: int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else None
            for k, v in found.items()}


def record_simulation(path: str | os.PathLike, ds: Any, out_path: str | os.PathLike,
                      probe_from: str | None = None, scenario: str | None = None, pipeline: str | None = None) -> None:
    """``simulate``: provenance (seeds, output checksum), configuration, probe, raw_diffraction."""
    rec = TelemetryRecorder.open(path, pipeline, scenario=scenario, command="simulate")
    rec.set_provenance(dataset_path=out_path, seeds=seeds_from_metadata(ds.metadata), dataset_type="simulated",
                       provenance_chain="ptychopinn.data.simulate -> " + os.fspath(out_path))
    rec.set_configuration({"N": ds.N, "nphotons": ds.metadata.get("nphotons_requested"),
                           "simulation": ds.metadata.get("config", {})})
    norm = ds.metadata.get("probe_normalisation", {})
    rec.record_probe(ds.probe, None, "none", float(norm.get("factor", 1.0)),
                     "npz_loaded" if probe_from else "idealized", probe_from, probe_mask=False)
    rec.record_stage("raw_diffraction", ds.diff3d, "ptychopinn.data.simulate::simulate")
    rec.write()


def record_comparison(path: str | os.PathLike, result: Any, scenario: str | None = None,
                      pipeline: str | None = None) -> None:
    """``compare``: the comparison block of the PtychoPINN arm (else the first)."""
    rec = TelemetryRecorder.open(path, pipeline, scenario=scenario, command="compare")
    label = "PtychoPINN" if "PtychoPINN" in result.alignments else next(iter(result.alignments))
    al = result.alignments[label]
    y0, y1, x0, x1 = (int(v) for v in al.crop_box)
    rec.record_comparison(al.gt_amplitude, al.recon_amplitude, al.gt_phase, al.recon_phase, "simulated_object",
                          crop_metadata={"target_size": int(max(y1 - y0, x1 - x0)), "start": [y0, x0],
                                         "end": [y1, x1], "arm": label})
    rec.write()


class TrainingTelemetry(Observer):
    """``train``: provenance, configuration, probe (pre/post the model's normalisation), the
    training-data stages, the intensity-scale block and the training block (or, when the loss
    diverges, the training block with ``nan_detected``)."""

    def __init__(self, path: str | os.PathLike, scenario: str | None = None, pipeline: str | None = None) -> None:
        self.path, self.scenario, self.pipeline = path, scenario, pipeline
        self._acc = {k: StatsAccumulator() for k in ("x", "xm", "xm2")}  # container_X, Y_amp, Y_I
        self._epoch: int | None = None
        self._setup: dict[str, Any] = {}
        self._grouped: tuple[dict[str, Any], dict[str, Any]] | None = None

    def setup(self, **info: Any) -> None:
        self._setup = info
        gi = info["groups"].to(info["X"].device)
        self._grouped = (gathered_stats(info["X"], gi), gathered_stats(info["X"], gi, info["r"]))

    def batch(self, *, epoch: int, x: Any, measured: Any, **_: Any) -> None:
        self._epoch = epoch if self._epoch is None else self._epoch
        if epoch == self._epoch:
            for k, t in (("x", x), ("xm", measured), ("xm2", measured.square())):
                self._acc[k].update(t.detach())

    def diverged(self, *, history: list[dict[str, Any]], epoch: int, checkpoint: Any, **_: Any) -> None:
        rec = TelemetryRecorder.open(self.path, self.pipeline, scenario=self.scenario, command="train")
        last = history[-1] if history else {}
        rec.set_block("training", training_block(
            len(history), False, None, last.get("train_loss"), last.get("val_loss"), True, epoch, None,
            os.fspath(checkpoint)))
        rec.write()

    def end(self, *, result: Any, **_: Any) -> None:
        s = self._setup
        ds, mcfg, tcfg, sc, model = s["ds"], s["model_config"], s["train_config"], s["scale"], s["model"]
        rec = TelemetryRecorder.open(self.path, self.pipeline, scenario=self.scenario, command="train")
        rec.set_provenance(dataset_path=s["train_path"], dataset_type="npz_file" if s["train_path"] else "simulated",
                           seeds={**seeds_from_metadata(ds.metadata), "training_seed": tcfg.seed})
        rec.set_configuration({
            "N": mcfg.N, "gridsize": mcfg.gridsize, "nphotons": sc.nphotons_metadata,
            "neighbor_count": tcfg.neighbor_count, "group_count": int(s["groups"].shape[0]),
            "batch_size": tcfg.batch_size, "nepochs": tcfg.epochs, "split_fraction": 1 - tcfg.val_fraction,
            "loss_fn": tcfg.loss, "loss_weights": {  # seed names; no real-space or TV term here: weight 0
                "nll_weight": s["loss_weights"].nll, "mae_weight": s["loss_weights"].mae,
                "realspace_weight": 0.0, "tv_weight": 0.0},
            "intensity_scale_trainable": mcfg.intensity_scale_trainable,
            "model": mcfg.to_dict(), "training": tcfg.to_dict(),
        })
        rec.record_probe(ds.probe, s["probe_initial"], "normalise_probe_energy", float(model.probe_factor),
                         "npz_loaded", s["train_path"], probe_scale=mcfg.N / 2, probe_big=bool(mcfg.border_branch),
                         probe_mask=False)
        rec.record_stage("raw_diffraction", ds.diff3d, f"{ds.source}: diff3d as loaded")
        stages = [("grouped_diffraction", "_prepare X[groups]", self._grouped[0]),
                  # optional stage: the patterns before the (single) normalisation x = X * r are X[groups] itself
                  ("pre_normalization_diffraction", "_prepare X[groups] (before * r; the same tensor as "
                   "grouped_diffraction)", self._grouped[0]),
                  ("grouped_X_full", "_prepare X[groups] * r", self._grouped[1])]
        if self._epoch is not None:
            stages.append(("container_X", "_batch x (training split, as fed to the model)", self._acc["x"].stats()))
            if mcfg.kind == "pinn":
                stages += [("training_labels_Y_amp", "_batch xm (loss targets, count units)", self._acc["xm"].stats()),
                           ("training_labels_Y_I", "_batch xm^2 (Poisson NLL counts)", self._acc["xm2"].stats())]
        for name, where, st in stages:
            rec.record_stage(name, None, f"{_TRAINER}::{where}", stats=st, gridsize=mcfg.gridsize,
                             group_limit=tcfg.n_groups)
        rec.set_intensity_scale_from(sc, model_exp_log_scale=result.intensity_scale["final"],
                                     batch_mean_sum_intensity=mean_total_counts(ds.diff3d))
        h = result.history
        last = h[-1] if h else {}
        run = os.fspath(result.run_dir)
        rec.set_block("training", training_block(
            len(h), bool(result.stopped_early), len(h) if result.stopped_early else None, last.get("train_loss"),
            last.get("val_loss"), False, None, os.path.join(run, "history.json"),
            os.path.join(run, "model.safetensors")))
        rec.write()


class InferenceTelemetry(Observer):
    """``infer``: inference_prediction (stitched amplitude), the inference block, the ground-truth
    amplitude over the same region when the data carry ``objectGuess``, the bundle's scale."""

    def __init__(self, path: str | os.PathLike, model_dir: str | os.PathLike, data_path: str | os.PathLike,
                 scenario: str | None = None, pipeline: str | None = None) -> None:
        self.path, self.model_dir, self.data_path = path, model_dir, data_path
        self.scenario, self.pipeline = scenario, pipeline

    def end(self, *, reconstruction: Any, ds: Any, out_dir: Any, **_: Any) -> None:
        from ptychopinn.model.bundle import read_config

        rec = TelemetryRecorder.open(self.path, self.pipeline, scenario=self.scenario, command="infer")
        rec.set_provenance()
        amp, covered, m = reconstruction.amplitude, reconstruction.counts > 0, int(ds.n_patterns)
        rec.record_stage("inference_prediction", amp[covered], "ptychopinn.inference.reconstruct::reconstruct "
                         "(stitched amplitude, covered pixels)", count=m,
                         gridsize=reconstruction.metadata.get("gridsize"), group_limit=m)
        if ds.object is not None:
            y0, y1, x0, x1 = canvas_box(reconstruction.origin, amp.shape)
            if y0 >= 0 and x0 >= 0 and y1 <= ds.object.shape[0] and x1 <= ds.object.shape[1]:
                gt = np.abs(ds.object[y0:y1, x0:x1])
                rec.record_stage("ground_truth_amplitude", gt[covered], "objectGuess over the stitched canvas", count=m)
        artifacts: dict[str, str] = {}
        if out_dir is not None:  # the seed's stitched arrays next to reconstruction.npz
            out = Path(out_dir)
            for name in ("amplitude", "phase"):
                with atomic_path(out / f"{name}.npy") as tmp, open(tmp, "wb") as fh:
                    np.save(fh, getattr(reconstruction, name))
            artifacts = {f"{name}_{ext}": os.fspath(out / f"{name}.{ext}") for name, ext in (("reconstruction", "npz"),
                         ("amplitude", "npy"), ("phase", "npy"), ("amplitude", "png"), ("phase", "png"))}
        rec.record_inference(amp, reconstruction.phase, group_limit=m, dataset_path=self.data_path,
                             artifacts=artifacts)
        scale = read_config(self.model_dir).get("intensity_scale") or {}
        if scale:
            rec.set_intensity_scale_from(scale, model_exp_log_scale=scale.get("final", scale.get("value")))
        rec.write()
