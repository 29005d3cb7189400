"""A study killed mid-training continues its training job from the checkpoint the job folder
holds (the runner keeps that folder; the trainer resumes bit-identically), instead of redoing it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ptychopinn.data.simulate import simulate
from ptychopinn.model.config import ModelConfig
from ptychopinn.studies import _common as C
from ptychopinn.studies.runner import _partial_dir
from ptychopinn.training.config import TrainConfig
from ptychopinn.training.trainer import train


class _Stop:
    """Kills a run in its second epoch, after the first epoch's checkpoint was written."""

    def epoch(self, record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt


def _killed_run(root: Path, folder: Path, p: dict) -> None:
    folder.mkdir(parents=True)
    tcfg = TrainConfig.from_dict({**p["training"], "overwrite": True})
    with pytest.raises(KeyboardInterrupt):
        train(C.load_rel(root, p["train"]), folder, ModelConfig.from_dict(p["model"]), tcfg, progress=False,
              observers=[_Stop()])
    assert (folder / "checkpoint.pt").is_file() and not (folder / "model.safetensors").exists()


def _first_epoch_seconds(folder: Path) -> float:
    return json.loads((folder / "history.json").read_text())[0]["seconds"]


def test_a_killed_training_job_resumes_to_the_uninterrupted_weights(tmp_path: Path) -> None:
    simulate(n_images=48, N=32, object_size=64, nphotons=1e6, seed=1).save(tmp_path / "d.npz")
    tc = TrainConfig(epochs=3, batch_size=8, patience=0, val_fraction=0.0, seed=3, device="cpu", diagnostics=False)
    p = {"train": "d.npz", "model": ModelConfig(n_filters_scale=1).to_dict(), "training": tc.to_dict()}
    C.train_bundle(tmp_path / "ref", tmp_path, p, False)  # the oracle: one uninterrupted run
    ref = C.weights_digest(tmp_path / "ref" / "model.safetensors")

    partial = tmp_path / "train" / ".arm.x1y2.tmp"
    _killed_run(tmp_path, partial, p)
    (tmp_path / "train" / ".arm.old.tmp").mkdir()  # no checkpoint: not a partial
    assert _partial_dir(tmp_path / "train" / "arm") == partial
    killed_epoch = _first_epoch_seconds(partial)
    C.train_bundle(partial, tmp_path, p, False)
    assert C.weights_digest(partial / "model.safetensors") == ref
    assert _first_epoch_seconds(partial) == killed_epoch  # epoch 1 was kept, not trained again
    assert not (partial / "checkpoint.pt").exists()

    # a partial trained with other settings is not continued: the job trains afresh with its own
    other = tmp_path / "other"
    _killed_run(tmp_path, other, {**p, "training": dataclasses.replace(tc, seed=4).to_dict()})
    killed_epoch = _first_epoch_seconds(other)
    C.train_bundle(other, tmp_path, p, False)
    assert C.weights_digest(other / "model.safetensors") == ref
    assert _first_epoch_seconds(other) != killed_epoch
