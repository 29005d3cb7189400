"""Every configuration shares the strict base: JSON round trip, unknown keys refused by name."""

import json

import pytest

from ptychopinn._config import Config
from ptychopinn.data.simulate import SimulationConfig
from ptychopinn.errors import ConfigError
from ptychopinn.evaluation.compare import CompareConfig
from ptychopinn.iterative.ptychi_runner import PtychiConfig
from ptychopinn.model.config import ModelConfig
from ptychopinn.studies.demo import DemoConfig
from ptychopinn.studies.dose_overlap import DoseOverlapConfig
from ptychopinn.studies.dose_response import DoseResponseConfig
from ptychopinn.studies.photon_grid import PhotonGridConfig
from ptychopinn.telemetry.parity_log import ParityLogConfig
from ptychopinn.training.config import TrainConfig

CONFIGS = (SimulationConfig, CompareConfig, PtychiConfig, ModelConfig, DemoConfig, PhotonGridConfig,
           ParityLogConfig, TrainConfig, DoseOverlapConfig, DoseResponseConfig)


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_round_trip_and_unknown_keys(cls):
    assert issubclass(cls, Config)
    cfg = cls()
    text = cfg.to_json()
    assert json.loads(text) == cfg.to_dict()
    assert cls.from_json(text) == cfg and cls.from_dict(json.loads(text)) == cfg
    with pytest.raises(ConfigError, match="bogus_key"):
        cls.from_dict({**cfg.to_dict(), "bogus_key": 1})


def test_tuple_fields_come_back_as_tuples():
    cfg = PhotonGridConfig(doses=(1e3, 1e5))
    back = PhotonGridConfig.from_json(cfg.to_json())
    assert back.doses == (1e3, 1e5) and isinstance(back.doses, tuple)
    lim = ParityLogConfig(limit_datasets=("a.npz",))
    assert ParityLogConfig.from_dict(json.loads(lim.to_json())).limit_datasets == ("a.npz",)
    with pytest.raises(ConfigError, match="not valid JSON"):
        TrainConfig.from_json("{epochs: 3")


def test_a_settings_document_reads_back_into_the_same_configs(tmp_path):
    """``settings_document`` (what a run writes) and ``read_settings`` (what --config reads) are
    inverse: the configs rebuilt from the file equal the ones written; unknown keys are named."""
    from ptychopinn._config import read_settings, settings_document
    from ptychopinn._io import write_json_atomic

    model, train = ModelConfig(gridsize=2, norm="group"), TrainConfig(lr=3e-4, nll_weight=0.5, resume=True)
    path = tmp_path / "run_config.json"
    write_json_atomic(path, settings_document("train", {"model": model, "training": train}, {"batch": 3}, 2))
    values, run = read_settings(path, {"model": ModelConfig, "training": TrainConfig}, ["batch"])
    assert run == {"batch": 3} and "resume" not in values["training"]  # command-line-only fields are not written
    assert ModelConfig.from_dict(values["model"]) == model
    assert TrainConfig.from_dict(values["training"]) == TrainConfig(lr=3e-4, nll_weight=0.5)
    with pytest.raises(ConfigError, match="unknown option 'batch'"):
        read_settings(path, {"model": ModelConfig, "training": TrainConfig}, [])
    with pytest.raises(ConfigError, match=r"\[model\]: unknown TrainConfig field\(s\) N, amp_activation"):
        read_settings(path, {"model": TrainConfig, "training": TrainConfig})
