"""Model bundle: a run directory that fully describes a trained model, loaded without unpickling.

Layout (``FORMAT_VERSION`` 1)::

    RUN_DIR/model.safetensors   weights and buffers (probe, log_s, ...) of the model
    RUN_DIR/config.json         format_version, model + training config, intensity-scale block,
                                probe normalisation, data SHA-256, package/torch versions, result
    RUN_DIR/probe.npz           probe (model copy, normalised), probe_initial, source_probe
    RUN_DIR/history.json        per-epoch train_loss, val_loss, lr, seconds, ...

``checkpoint.pt`` (resume state) may sit beside them; it is not part of the bundle.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn._io import atomic_path, save_npz_atomic, write_json_atomic
from ptychopinn.errors import BundleError, ConfigError
from ptychopinn.model.config import ModelConfig

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PROBE_FILE = "probe.npz"
HISTORY_FILE = "history.json"
BUNDLE_FILES = (WEIGHTS_FILE, CONFIG_FILE, PROBE_FILE, HISTORY_FILE)


@dataclass
class Bundle:
    """A loaded bundle: ``model`` in eval mode on the requested device."""

    model: Any
    model_config: ModelConfig
    train_config: dict[str, Any]
    intensity_scale: float
    run_dir: Path
    N: int
    gridsize: int
    kind: str
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    probe: np.ndarray | None = None

    @property
    def neighbor_count(self) -> int:
        return int(self.train_config.get("neighbor_count", 7))


def state_dict_for_saving(model: Any) -> dict[str, Any]:
    """CPU, contiguous copies of the model's persistent state (what safetensors stores)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_weights(path: str | os.PathLike, state: dict[str, Any], metadata: dict[str, str] | None = None) -> Path:
    from safetensors.torch import save_file

    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata=metadata or {})
    return Path(path)


def save_bundle(run_dir: str | os.PathLike, model: Any, config: dict[str, Any],
                history: list[dict[str, Any]], probe_initial: np.ndarray, source_probe: np.ndarray,
                state: dict[str, Any] | None = None) -> Path:
    """Write the bundle files (each atomically; config.json last). ``state`` defaults to the
    model's current state dict."""
    import torch

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    state = state_dict_for_saving(model) if state is None else state
    cfg = {"format_version": FORMAT_VERSION, **config}
    meta = {"format_version": str(FORMAT_VERSION), "kind": str(config["model"]["kind"])}
    save_weights(run / WEIGHTS_FILE, state, meta)
    probe = torch.view_as_complex(state["probe"].float()).numpy().astype(np.complex64)
    save_npz_atomic(run / PROBE_FILE, probe=probe, probe_initial=np.asarray(probe_initial, np.complex64),
                    source_probe=np.asarray(source_probe, np.complex64),
                    normalisation_factor=np.float64(config["probe"]["factor"]))
    write_json_atomic(run / HISTORY_FILE, history)
    write_json_atomic(run / CONFIG_FILE, cfg)
    return run


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """config.json of a bundle, checked for presence and format version."""
    run = Path(run_dir)
    if not run.is_dir():
        raise BundleError(f"{run}: model bundle directory not found")
    path = run / CONFIG_FILE
    if not path.is_file():
        raise BundleError(f"{path}: missing (not a ptychopinn model bundle?)")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(cfg, dict):
        raise BundleError(f"{path}: must hold a JSON object")
    ver = cfg.get("format_version")
    if not isinstance(ver, int):
        raise BundleError(f"{path}: key 'format_version': missing or not an integer")
    if ver > FORMAT_VERSION:
        raise BundleError(f"{path}: format_version {ver} is newer than this ptychopinn supports "
                          f"({FORMAT_VERSION}); upgrade ptychopinn to load it")
    for key in ("model", "training", "intensity_scale", "probe"):
        if key not in cfg:
            raise BundleError(f"{path}: key '{key}': missing")
    return cfg


def load_bundle(run_dir: str | os.PathLike, device: str = "cpu") -> Bundle:
    """Load a bundle (safetensors + JSON + NPZ; nothing is unpickled). Missing files, a newer
    format version or weights that do not fit the recorded config raise BundleError."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ptychopinn.model import build_model

    run = Path(run_dir)
    cfg = read_config(run)
    for name in BUNDLE_FILES:
        if not (run / name).is_file():
            raise BundleError(f"{run / name}: missing (incomplete model bundle)")
    try:
        mcfg = ModelConfig.from_dict(cfg["model"])
    except (ConfigError, TypeError) as exc:
        raise BundleError(f"{run / CONFIG_FILE}: key 'model': {exc}") from None
    if mcfg.N is None:
        raise BundleError(f"{run / CONFIG_FILE}: key 'model': N is not set")
    try:
        with np.load(run / PROBE_FILE, allow_pickle=False) as z:
            probe = np.asarray(z["probe"])
    except (KeyError, ValueError, OSError) as exc:
        raise BundleError(f"{run / PROBE_FILE}: unreadable probe ({exc})") from None
    try:
        history = json.loads((run / HISTORY_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{run / HISTORY_FILE}: not valid JSON ({exc})") from None
    try:
        state = load_file(str(run / WEIGHTS_FILE), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{run / WEIGHTS_FILE}: unreadable weights ({exc})") from None
    iscale = cfg["intensity_scale"]
    s = float(iscale.get("final") or iscale.get("value"))
    with torch.random.fork_rng(devices=[]):
        model = build_model(mcfg, probe, s)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "mismatch"
        raise BundleError(f"{run / WEIGHTS_FILE}: weights do not fit the recorded model config ({first})") from None
    model.probe_factor = float(cfg["probe"].get("factor", 1.0))
    model = model.to(torch.device(device)).eval()
    return Bundle(
        model=model, model_config=mcfg, train_config=dict(cfg["training"]), intensity_scale=s,
        run_dir=run, N=int(mcfg.N), gridsize=mcfg.gridsize, kind=mcfg.kind, config=cfg,
        history=history if isinstance(history, list) else [], probe=probe,
    )
