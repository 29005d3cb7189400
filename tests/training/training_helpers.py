"""Shared helpers for the training tests: tiny simulated datasets and configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ptychopinn.data.contract import PtychoDataset
from ptychopinn.data.simulate import simulate
from ptychopinn.model.config import ModelConfig
from ptychopinn.training.config import TrainConfig

TIMING = ("seconds", "train_seconds", "train_patterns_per_s")


def tiny_dataset(n_images: int = 64, seed: int = 0, nphotons: float = 1e6, n: int = 32,
                 object_size: int = 72) -> PtychoDataset:
    return simulate(n_images=n_images, N=n, object_size=object_size, nphotons=nphotons, seed=seed)


def tiny_model(**kw: Any) -> ModelConfig:
    return ModelConfig(n_filters_scale=1, **kw)


def tiny_train(**kw: Any) -> TrainConfig:
    base = dict(epochs=2, batch_size=16, device="cpu", patience=0, seed=0)
    base.update(kw)
    return TrainConfig(**base)


def strip_timing(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    return json.loads((Path(run_dir) / "history.json").read_text())
