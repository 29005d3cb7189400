"""Training loop: determinism, NaN stop, run-directory policy, supervised baseline, CLI."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from training_helpers import (
    read_history,
    strip_timing,
    tiny_dataset,
    tiny_model,
    tiny_train,
)

from ptychopinn.cli.main import main
from ptychopinn.errors import ConfigError, DataError, TrainingDivergedError
from ptychopinn.model import losses as losses_mod
from ptychopinn.telemetry.observers import TrainingTelemetry
from ptychopinn.training.trainer import CHECKPOINT_FILE, train


@pytest.fixture(scope="module")
def data_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("data") / "tiny.npz"
    tiny_dataset().save(p)
    return p


def test_same_seed_gives_identical_history_and_weights(data_path: Path, tmp_path: Path) -> None:
    cfg_m, cfg_t = tiny_model(gridsize=2), tiny_train(n_groups=40)
    a = train(data_path, tmp_path / "a", cfg_m, cfg_t, progress=False)
    train(data_path, tmp_path / "b", cfg_m, cfg_t, progress=False)
    ha, hb = read_history(tmp_path / "a"), read_history(tmp_path / "b")
    assert len(ha) == 2 and all("seconds" in h for h in ha)
    assert strip_timing(ha) == strip_timing(hb)
    assert strip_timing(a.history) == strip_timing(ha)
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    c = train(data_path, tmp_path / "c", cfg_m, dataclasses.replace(cfg_t, seed=1), progress=False)
    assert strip_timing(c.history) != strip_timing(a.history)
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"]) for h in ha)
    assert ha[0]["lr"] == pytest.approx(1e-3)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(data_path: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}
    real = losses_mod.pinn_loss
    per_epoch = math.ceil(58 / 16)  # 64 groups, 10 % validation

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        # training batches of epoch 1 plus its validation batches are fine; epoch 2 goes NaN
        return value * float("nan") if calls["n"] > per_epoch + 1 else value

    monkeypatch.setattr(losses_mod, "pinn_loss", poisoned)
    with pytest.raises(TrainingDivergedError, match=r"epoch 2.*last good checkpoint \(epoch 1\)"):
        train(data_path, tmp_path / "run", tiny_model(), tiny_train(epochs=3), progress=False,
              observers=[TrainingTelemetry(tmp_path / "t.json")])
    tel = json.loads((tmp_path / "t.json").read_text())
    assert tel["training"]["nan_detected"] is True and tel["training"]["first_nan_epoch"] == 2
    assert tel["training"]["epochs_completed"] == 1
    ck = torch.load(tmp_path / "run" / CHECKPOINT_FILE, weights_only=True)
    assert ck["epoch"] == 1
    assert all(torch.all(torch.isfinite(v)) for v in ck["model"].values() if v.is_floating_point())
    assert len(read_history(tmp_path / "run")) == 1
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_run_directory_policy(data_path: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(data_path, run, tiny_model(), tiny_train(epochs=1), progress=False)
    with pytest.raises(ConfigError, match="--resume"):
        train(data_path, run, tiny_model(), tiny_train(epochs=1), progress=False)
    with pytest.raises(ConfigError, match="lr"):
        train(data_path, run, tiny_model(), tiny_train(epochs=2, lr=5e-4, resume=True), progress=False)
    res = train(data_path, run, tiny_model(), tiny_train(epochs=2, resume=True), progress=False)
    assert [h["epoch"] for h in res.history] == [1, 2]
    res = train(data_path, run, tiny_model(), tiny_train(epochs=1, overwrite=True), progress=False)
    assert len(res.history) == 1


def test_supervised_needs_ground_truth_patches(tmp_path: Path) -> None:
    ds = tiny_dataset(n_images=32)
    path = tmp_path / "nolabels.npz"
    dataclasses.replace(ds, ground_truth_patches=None).save(path)
    with pytest.raises(DataError, match=r"nolabels\.npz: key 'ground_truth_patches'"):
        train(path, tmp_path / "run", tiny_model(kind="supervised"), tiny_train(epochs=1), progress=False)


def test_supervised_baseline_trains(tmp_path: Path) -> None:
    ds = tiny_dataset(n_images=48)
    res = train(ds, tmp_path / "sup", tiny_model(kind="supervised"), tiny_train(epochs=2), progress=False)
    assert res.history[1]["train_loss"] < res.history[0]["train_loss"]
    gt_max = float(np.abs(ds.ground_truth_patches).max())
    assert float(res.model.amplitude_scale) == pytest.approx(1.2 * gt_max, rel=0.1)
    x = torch.from_numpy(ds.diff3d[:3, None])
    assert res.model.predict_patches(x).shape == (3, 1, 32, 32)


def test_cli_train(data_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli"
    rc = main(["train", "--train", str(data_path), "-o", str(out), "--epochs", "1", "--n-filters-scale", "1",
               "--gridsize", "2", "--n-groups", "30", "--quiet", "--device", "cpu", "--loss", "nll+mae"])
    assert rc == 0
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert "wrote" in capsys.readouterr().out
    rc = main(["train", "--train", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "x"), "--quiet"])
    assert rc == 2
    assert "missing.npz" in capsys.readouterr().err
