"""Model bundle: a run directory that fully describes a trained model, loaded without unpickling.
The one home of the format: the trainer writes it, inference and fine-tuning load it.

Layout (``FORMAT_VERSION`` 1)::

    RUN_DIR/model.safetensors   weights and buffers (probe, log_s, ...) of the model
    RUN_DIR/config.json         format_version, model + training config, intensity-scale block,
                                probe normalisation, data SHA-256, package/torch versions, result
    RUN_DIR/probe.npz           probe (model copy, normalised), probe_initial, source_probe
    RUN_DIR/history.json        per-epoch train_loss, val_loss, lr, seconds, ...
    RUN_DIR/history.png         loss curves and learning rate (for people; not read back)

``checkpoint.pt`` (resume state) may sit beside them; it is not part of the bundle.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn._io import atomic_path, read_json, save_npz_atomic, write_json_atomic
from ptychopinn.data.grouping import DEFAULT_NEIGHBOR_COUNT
from ptychopinn.errors import BundleError, ConfigError, DataError, one_line
from ptychopinn.model.config import ModelConfig

FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PROBE_FILE = "probe.npz"
HISTORY_FILE = "history.json"
HISTORY_PNG = "history.png"  # loss curves and learning rate (not needed to load the bundle)
CHECKPOINT_NAME = "checkpoint.pt"  # == trainer.CHECKPOINT_FILE
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
        return int(self.train_config.get("neighbor_count", DEFAULT_NEIGHBOR_COUNT))


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
    # one metadata key: safetensors stores its metadata map in arbitrary order, so two keys would
    # make identical weights give different files
    meta = {"ptychopinn": json.dumps({"format_version": FORMAT_VERSION, "kind": str(config["model"]["kind"])},
                                     sort_keys=True)}
    save_weights(run / WEIGHTS_FILE, state, meta)
    probe = torch.view_as_complex(state["probe"].float()).numpy().astype(np.complex64)
    save_npz_atomic(run / PROBE_FILE, probe=probe, probe_initial=np.asarray(probe_initial, np.complex64),
                    source_probe=np.asarray(source_probe, np.complex64),
                    normalisation_factor=np.float64(config["probe"]["factor"]))
    write_json_atomic(run / HISTORY_FILE, history)
    from ptychopinn._plot import history_png

    history_png(history, run / HISTORY_PNG)
    write_json_atomic(run / CONFIG_FILE, cfg)
    return run


#: built-in bundles shipped inside the package (``ptychopinn/pretrained/<name>``); see docs/general_model.md
BUILTIN_BUNDLES = {"general-n64": 64}


def builtin_dir() -> Path:
    """The folder holding the built-in bundles."""
    return Path(__file__).resolve().parents[1] / "pretrained"


def resolve_bundle(name_or_path: str | os.PathLike) -> Path:
    """A bundle directory: a path as given, or the folder of a built-in name (e.g. ``general-n64``).
    An unknown name that is not a directory is returned unchanged (the loader names the problem)."""
    text = str(name_or_path)
    if text in BUILTIN_BUNDLES and not os.path.exists(text):
        path = builtin_dir() / text
        if not (path / CONFIG_FILE).is_file():
            raise BundleError(f"{text}: built-in model not installed (expected {path}); "
                              "reinstall the package or pass a bundle directory")
        return path
    return Path(name_or_path)


def general_bundle_for(n: int) -> Path | None:
    """The built-in general model for pattern size ``n``, or None when none ships."""
    for name, size in BUILTIN_BUNDLES.items():
        if size == int(n) and (builtin_dir() / name / CONFIG_FILE).is_file():
            return builtin_dir() / name
    return None


def _bundle_error(path: Path, key: str | None, problem: str) -> BundleError:
    return BundleError(f"{path}" + (f": key '{key}'" if key else "") + f": {problem}")


def _read_json(path: Path) -> Any:
    """A bundle JSON file; unreadable, non-UTF-8 or invalid JSON is a BundleError naming it."""
    return read_json(path, "model bundle file", error=BundleError)


def _positive_number(cfg: dict[str, Any], section: str, keys: tuple[str, ...], path: Path,
                     required: bool = True) -> float | None:
    """The first of ``keys`` present in ``cfg[section]``, checked to be a finite number > 0."""
    block = cfg[section]
    for k in keys:
        if block.get(k) is not None:
            v = block[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (math.isfinite(v) and v > 0):
                raise _bundle_error(path, f"{section}.{k}", f"must be a finite number > 0; got {v!r}")
            return float(v)
    if required:
        raise _bundle_error(path, f"{section}.{keys[0]}", "missing")
    return None


def read_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """config.json of a bundle, checked for presence, format version and section types."""
    run = Path(run_dir)
    if not run.is_dir():
        raise BundleError(f"{run}: model bundle directory not found")
    path = run / CONFIG_FILE
    if not path.is_file() and (run / CHECKPOINT_NAME).is_file():
        raise BundleError(f"{run}: training was interrupted ({CHECKPOINT_NAME} but no {CONFIG_FILE}: not a finished "
                          f"model bundle); resume it with 'ptychopinn train ... -o {run} --resume', or pass the "
                          f"checkpoint ({run / CHECKPOINT_NAME}) as the model to use its weights so far")
    if not path.is_file():
        raise BundleError(f"{path}: missing (not a ptychopinn model bundle?)")
    cfg = _read_json(path)
    if not isinstance(cfg, dict):
        raise BundleError(f"{path}: must hold a JSON object")
    ver = cfg.get("format_version")
    if isinstance(ver, bool) or not isinstance(ver, int):
        raise BundleError(f"{path}: key 'format_version': missing or not an integer")
    if ver > FORMAT_VERSION:
        raise BundleError(f"{path}: format_version {ver} is newer than this ptychopinn supports "
                          f"({FORMAT_VERSION}); upgrade ptychopinn to load it")
    for key in ("model", "training", "intensity_scale", "probe"):
        if key not in cfg:
            raise BundleError(f"{path}: key '{key}': missing")
        if not isinstance(cfg[key], dict):
            raise _bundle_error(path, key, f"must be a JSON object; got {type(cfg[key]).__name__}")
    return cfg


def load_bundle(run_dir: str | os.PathLike, device: str = "cpu") -> Bundle:
    """Load a bundle (safetensors + JSON + NPZ; nothing is unpickled). A missing, corrupt or
    hand-edited file (wrong types, truncated arrays, weights that do not fit the recorded config,
    a newer format version) raises BundleError naming the file and the field."""
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from ptychopinn._config import type_problem
    from ptychopinn.data.contract import open_npz
    from ptychopinn.model import build_model

    run = resolve_bundle(run_dir)
    cfg = read_config(run)
    cpath = run / CONFIG_FILE
    for name in BUNDLE_FILES:
        if not (run / name).is_file():
            raise BundleError(f"{run / name}: missing (incomplete model bundle)")
    bad = type_problem(ModelConfig, cfg["model"])
    if bad is not None:
        raise _bundle_error(cpath, f"model.{bad[0]}", bad[1])
    k = cfg["training"].get("neighbor_count", DEFAULT_NEIGHBOR_COUNT)  # what loading reads of the training block
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise _bundle_error(cpath, "training.neighbor_count", f"expected an integer >= 1, got {type(k).__name__} {k!r}")
    try:
        mcfg = ModelConfig.from_dict(cfg["model"])
    except (ConfigError, TypeError, ValueError) as exc:
        raise _bundle_error(cpath, "model", one_line(exc)) from None
    if mcfg.N is None:
        raise _bundle_error(cpath, "model.N", "not set")
    s = _positive_number(cfg, "intensity_scale", ("final", "value"), cpath)
    factor = _positive_number(cfg, "probe", ("factor",), cpath, required=False) or 1.0

    ppath = run / PROBE_FILE
    try:
        z = open_npz(ppath)
    except DataError as exc:
        raise BundleError(one_line(exc)) from None
    if "probe" not in z:
        raise _bundle_error(ppath, "probe", "missing")
    probe = np.asarray(z["probe"])
    n = int(mcfg.N)
    if probe.shape != (n, n) or probe.dtype.kind not in "fc" or not np.all(np.isfinite(probe)):
        raise _bundle_error(ppath, "probe", f"must be a finite {n}x{n} complex array (config.json model.N={n}); "
                                            f"got shape {probe.shape} {probe.dtype}")

    history = _read_json(run / HISTORY_FILE)
    if not isinstance(history, list):
        raise _bundle_error(run / HISTORY_FILE, None, f"must hold a JSON list; got {type(history).__name__}")

    wpath = run / WEIGHTS_FILE
    try:
        state = load_file(str(wpath), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise _bundle_error(wpath, None, f"unreadable weights ({one_line(exc)})") from None
    try:
        with torch.random.fork_rng(devices=[]):
            model = build_model(mcfg, probe, s)
    except (ConfigError, DataError, ValueError) as exc:
        raise _bundle_error(cpath, "model", f"cannot build the recorded model ({one_line(exc)})") from None
    expected = model.state_dict()
    for k, v in expected.items():
        if k not in state:
            raise _bundle_error(wpath, k, f"missing (the weights do not fit config.json model {_brief(mcfg)})")
        if tuple(state[k].shape) != tuple(v.shape):
            raise _bundle_error(wpath, k, f"shape {tuple(state[k].shape)}: the weights do not fit config.json "
                                          f"model {_brief(mcfg)} (it needs {tuple(v.shape)})")
    extra = sorted(set(state) - set(expected))
    if extra:
        raise _bundle_error(wpath, extra[0], f"not part of the model of config.json ({_brief(mcfg)}); "
                                             f"{len(extra)} unexpected tensor(s)")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise _bundle_error(wpath, None, f"weights do not fit the recorded model config ({one_line(exc)})") from None
    model.probe_factor = factor
    model = model.to(torch.device(device)).eval()
    return Bundle(
        model=model, model_config=mcfg, train_config=dict(cfg["training"]), intensity_scale=s,
        run_dir=run, N=n, gridsize=mcfg.gridsize, kind=mcfg.kind, config=cfg, history=history, probe=probe,
    )


def _brief(mcfg: ModelConfig) -> str:
    return f"kind={mcfg.kind}, N={mcfg.N}, gridsize={mcfg.gridsize}, n_filters_scale={mcfg.n_filters_scale}"


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> Bundle:
    """A ``Bundle`` from a training ``checkpoint.pt`` (an interrupted run): the best validated
    weights so far (else the last epoch's), the model config recorded in the checkpoint. Read with
    ``torch.load(weights_only=True)`` (no code runs)."""
    import torch

    from ptychopinn.model import build_model

    path = Path(path)
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a user-facing error
        raise BundleError(f"{path}: unreadable training checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(ck, dict) or not isinstance(ck.get("signature"), str) or not isinstance(ck.get("model"), dict):
        raise BundleError(f"{path}: not a ptychopinn training checkpoint")
    try:
        sig = json.loads(ck["signature"])
        mcfg = ModelConfig.from_dict(sig["model"])
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise BundleError(f"{path}: key 'signature': no usable model config ({exc})") from None
    state = ck.get("best_state") or ck["model"]
    try:
        probe = torch.view_as_complex(state["probe"].float()).numpy()
        s = float(torch.exp(state["log_s"].float()))
    except (KeyError, RuntimeError) as exc:
        raise BundleError(f"{path}: weights lack the probe or intensity scale ({exc})") from None
    with torch.random.fork_rng(devices=[]):
        model = build_model(mcfg, probe, s)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "mismatch"
        raise BundleError(f"{path}: weights do not fit the recorded model config ({first})") from None
    model = model.to(torch.device(device)).eval()
    train_cfg = dict(sig.get("train") or {})
    return Bundle(model=model, model_config=mcfg, train_config=train_cfg, intensity_scale=s, run_dir=path.parent,
                  N=int(mcfg.N), gridsize=mcfg.gridsize, kind=mcfg.kind,
                  config={"checkpoint": str(path), "epoch": int(ck.get("epoch", 0))},
                  history=list(ck.get("history") or []), probe=probe)
