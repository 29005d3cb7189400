"""``--protocol seed|modern``: one mapping, read by the library, ``train`` and the studies."""

from __future__ import annotations

import json

import pytest

from ptychopinn.cli.main import main
from ptychopinn.errors import ConfigError
from ptychopinn.model.config import ModelConfig
from ptychopinn.training.config import TrainConfig, protocol_overrides


def test_seed_protocol_is_the_seeds_training():
    o = protocol_overrides("seed")
    # seeds 000/001 and DESIGN section 5: fixed epochs (no early stopping), no hold-out, the last
    # epoch's weights, a trainable intensity scale, Adam 1e-3 halved on a 2-epoch plateau down to 1e-4
    assert o["model"] == {"intensity_scale_trainable": True}
    t = o["training"]
    assert (t["patience"], t["val_fraction"], t["restore_best"], t["schedule"]) == (0, 0.0, False, "plateau")
    assert (t["lr"], t["lr_factor"], t["lr_patience"], t["min_lr"], t["warmup_epochs"]) == (1e-3, 0.5, 2, 1e-4, 0.0)
    assert protocol_overrides("modern") == {"model": {}, "training": {}}
    with pytest.raises(ConfigError, match="protocol must be one of"):
        protocol_overrides("legacy")


def test_a_config_that_contradicts_its_protocol_is_refused():
    with pytest.raises(ConfigError, match="protocol 'seed' fixes training field patience = 0; got 6"):
        TrainConfig(protocol="seed")
    cfg = TrainConfig(protocol="seed", **protocol_overrides("seed")["training"])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    from ptychopinn.training.trainer import train

    with pytest.raises(ConfigError, match="intensity_scale_trainable = True"):
        train("unused.npz", "unused", ModelConfig(), cfg)


def test_train_cli_protocol_seed_records_and_runs_fixed_epochs(tmp_path, capsys):
    data = tmp_path / "d.npz"
    assert main(["simulate", "-o", str(data), "--n-images", "48", "--N", "32", "--object-size", "72",
                 "--nphotons", "1e6"]) == 0
    run = tmp_path / "run"
    assert main(["train", "--train", str(data), "-o", str(run), "--epochs", "3", "--n-filters-scale", "1",
                 "--device", "cpu", "--threads", "1", "--protocol", "seed", "-q"]) == 0
    cfg = json.loads((run / "config.json").read_text())
    t = cfg["training"]
    assert t["protocol"] == "seed" and t["patience"] == 0 and t["val_fraction"] == 0.0
    assert t["restore_best"] is False and t["schedule"] == "plateau" and t["warmup_epochs"] == 0.0
    assert cfg["model"]["intensity_scale_trainable"] is True
    hist = json.loads((run / "history.json").read_text())
    assert len(hist) == 3 and all(h["val_loss"] is None for h in hist)  # no hold-out, every epoch run
    assert json.loads((run / "run_config.json").read_text())["training"]["protocol"] == "seed"
    capsys.readouterr()
    assert main(["train", "--train", str(data), "-o", str(tmp_path / "r2"), "--protocol", "seed",
                 "--patience", "3", "-q"]) == 2
    err = capsys.readouterr().err
    assert "--protocol seed fixes --patience = 0; got 3" in err and len(err.strip().splitlines()) == 1
