"""Training loop (DESIGN section 5): seeded split and shuffles, Adam, ReduceLROnPlateau, early
stopping, per-epoch history and atomic checkpoints, bit-identical resume, NaN stop, DDP.

Data flow: dataset -> :func:`~ptychopinn.data.grouping.make_groups` -> inputs ``x = X * r``
(B, C, N, N) with the intensity normalisation r of :mod:`ptychopinn.model.scaling`, offsets
(B, C, 2), measured amplitudes X (counts = X^2) -> model -> loss. The supervised baseline takes one
pattern (B, 1, N, N) and its ``ground_truth_patches``.

Learning rate: a linear warmup over the first ``warmup_epochs`` epochs (default 1) brings the rate
from lr/steps to lr; without it the first full-size Adam steps switch off most ReLUs of the classic
encoder (the count-scale loss drives the biases before the features have grown), which slows
training and can collapse the network to a constant. After warmup the rate follows a half cosine
down to ``min_lr`` at the last epoch (``schedule='cosine'``, default: the plateau scheduler of the
reference rarely fired, so the rate never decayed), or ReduceLROnPlateau (``schedule='plateau'``).

Reproducibility: weights are initialised from ``seed`` on the CPU inside
``torch.random.fork_rng(devices=[])`` (the caller's CPU generator is restored afterwards; no CUDA
generator is drawn from, so none needs restoring); the validation split uses a generator seeded with
``seed``; epoch e is shuffled by a generator seeded from (seed, e) (DistributedSampler with
``seed`` under torchrun). Together with the checkpointed model / optimizer / scheduler / early-stop
state this makes an interrupted and resumed run end with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ptychopinn._device import resolve_device
from ptychopinn._io import atomic_path, sha256_file, write_json_atomic
from ptychopinn._observe import notify
from ptychopinn.data.contract import PtychoDataset, as_dataset, save_probe_file
from ptychopinn.errors import ConfigError, DataError, ResumeMismatchError, TrainingDivergedError, one_line
from ptychopinn.model import build_model, count_parameters
from ptychopinn.model import losses as losses_mod
from ptychopinn.model.config import ModelConfig
from ptychopinn.model.scaling import choose_intensity_scale, input_scale
from ptychopinn.model import bundle as bundle_mod
from ptychopinn.training import distributed as dist_mod
from ptychopinn.training.config import RUN_CONTROL_FIELDS, TrainConfig, check_protocol
from ptychopinn.training.diagnostics import epoch_diagnostics

CHECKPOINT_FILE = "checkpoint.pt"
POSITIONS_FILE = "refined_positions.npz"
CHECKPOINT_FORMAT = 1
TIMING_KEYS = ("seconds", "train_seconds", "train_patterns_per_s")


@dataclass
class TrainResult:
    """What :func:`train` returns (the bundle is in ``run_dir``)."""

    run_dir: Path
    model: nn.Module
    model_config: ModelConfig
    train_config: TrainConfig
    history: list[dict[str, Any]]
    intensity_scale: dict[str, Any]
    epochs_run: int
    best_epoch: int
    best_val_loss: float | None
    stopped_early: bool
    seconds: float
    train_patterns_per_s: float
    n_parameters: int
    device: str
    precision: str
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def arrays_sha256(ds: PtychoDataset, labels: bool = False, dose: bool = False) -> str:
    """Fingerprint of the inputs training uses: diffraction, positions, probe, plus the labels
    (``labels``, supervised baseline) and the metadata dose (``dose``, closed-form scale)."""
    h = hashlib.sha256()
    arrays = [ds.diff3d, ds.xcoords, ds.ycoords, ds.probe]
    if ds.mask is not None:
        arrays.append(ds.mask)
    if labels and ds.ground_truth_patches is not None:
        arrays.append(ds.ground_truth_patches)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    if dose:
        from ptychopinn.model.scaling import nphotons_from_metadata

        h.update(f"nphotons={nphotons_from_metadata(ds.metadata)!r}".encode())
    return h.hexdigest()


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> bf16 on CPUs with native bfloat16 support, float32 otherwise."""
    if precision != "auto":
        return precision
    if device.type == "cpu":
        try:
            if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return "bf16"
        except (AttributeError, RuntimeError):  # pragma: no cover - older builds
            pass
    return "float32"


def _autocast(device: torch.device, precision: str):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def _as_dataset(data: str | os.PathLike | PtychoDataset) -> tuple[PtychoDataset, str | None]:
    """(dataset, path of the file it was read from, if read here)."""
    return as_dataset(data), None if isinstance(data, PtychoDataset) else str(data)


@dataclass
class _Prepared:
    """Tensors for one dataset: patterns X (M, N, N), groups (G, C), offsets (G, C, 2), r."""

    X: torch.Tensor
    groups: torch.Tensor
    offsets: torch.Tensor
    r: float
    labels: torch.Tensor | None = None
    pixel_weight: torch.Tensor | None = None  # (N, N) 1 = good detector pixel, 0 = masked
    delta: torch.Tensor | None = None  # (M, 2) learnt position corrections (y, x) px (refine_positions)


def _prepare(ds: PtychoDataset, mcfg: ModelConfig, tcfg: TrainConfig, r: float, device: torch.device,
             n_groups: int | None, oversample: bool) -> _Prepared:
    from ptychopinn.data.grouping import make_groups

    if mcfg.kind == "supervised":
        if ds.ground_truth_patches is None:
            raise DataError(f"{ds.source}: key 'ground_truth_patches': missing (the supervised baseline "
                            "trains on simulated labels)")
        if not np.all(np.isfinite(ds.ground_truth_patches)):
            raise DataError(f"{ds.source}: key 'ground_truth_patches': contains NaN or Inf values")
        idx = np.arange(ds.n_patterns, dtype=np.int64)
        if n_groups is not None and n_groups < ds.n_patterns:
            rng = np.random.default_rng(tcfg.seed)
            idx = np.sort(rng.choice(ds.n_patterns, size=n_groups, replace=False))
        groups = idx[:, None]
        offsets = np.zeros((idx.size, 1, 2))
    else:
        g = make_groups(ds.positions_yx, mcfg.gridsize, tcfg.neighbor_count, n_groups,
                        oversample=oversample, seed=tcfg.seed)
        groups, offsets = g.indices, g.offsets
    X = torch.from_numpy(np.ascontiguousarray(ds.diff3d, dtype=np.float32))
    on_device = device.type == "cpu" or X.numel() * 4 < (1 << 31)
    labels = None
    if mcfg.kind == "supervised":
        labels = torch.from_numpy(np.ascontiguousarray(ds.ground_truth_patches[..., 0], dtype=np.complex64))
        labels = labels.to(device) if on_device else labels
    pw = None
    if ds.mask is not None and ds.mask.any():
        pw = torch.from_numpy((~np.asarray(ds.mask, bool)).astype(np.float32)).to(device)
    return _Prepared(X.to(device) if on_device else X, torch.from_numpy(np.asarray(groups, np.int64)),
                     torch.from_numpy(np.asarray(offsets, np.float32)), float(r), labels, pw)


def _batch(prep: _Prepared, gidx: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, ...]:
    idx = prep.groups[gidx]  # (B, C)
    xm = prep.X[idx.to(prep.X.device)].to(device, non_blocking=True)  # (B, C, N, N) measured amplitudes
    off = prep.offsets[gidx].to(device, non_blocking=True)
    if prep.delta is not None:  # corrected offsets: o_j + d_j - mean_k d_k (grouping's sign convention)
        d = prep.delta[idx.to(prep.delta.device)]
        off = off + d - d.mean(dim=1, keepdim=True)
    lab = None
    if prep.labels is not None:
        lab = prep.labels[idx.to(prep.labels.device)].to(device, non_blocking=True)
    return xm * prep.r, off, xm, lab


def _loss(model: nn.Module, kind: str, batch: tuple[torch.Tensor, ...], weights: losses_mod.LossWeights,
          unit: float, device: torch.device, precision: str, pixel_weight: torch.Tensor | None = None) -> torch.Tensor:
    x, off, xm, lab = batch
    with _autocast(device, precision):
        out = model(x, off)
    if kind == "supervised":
        return losses_mod.supervised_loss(out, lab)
    return losses_mod.pinn_loss(out, xm, weights, unit, pixel_weight)


def cosine_lr(tcfg: TrainConfig, step: int, warm: int, total: int) -> float:
    """Learning rate at ``step``: linear warmup over ``warm`` steps, then a half cosine from
    ``tcfg.lr`` down to ``min(tcfg.min_lr, tcfg.lr)`` at step ``total - 1``."""
    if step < warm:
        return tcfg.lr * (step + 1) / warm
    lo = min(tcfg.min_lr, tcfg.lr)
    t = (step - warm) / max(1, total - 1 - warm)
    return lo + 0.5 * (tcfg.lr - lo) * (1.0 + math.cos(math.pi * min(1.0, t)))


def _param_groups(model: nn.Module, tcfg: TrainConfig, delta: torch.Tensor | None = None) -> list[dict[str, Any]]:
    """Adam parameter groups: the network (and log_s), a trainable probe and the position
    corrections ``delta``, each on its own rate."""
    probe = [p for n, p in model.named_parameters() if n == "probe" and p.requires_grad]
    rest = [p for n, p in model.named_parameters() if n != "probe" and p.requires_grad]
    groups: list[dict[str, Any]] = [{"params": rest}]
    if probe:
        groups.append({"params": probe, "is_probe": True})
    if delta is not None:
        groups.append({"params": [delta], "is_positions": True})
    return groups


def _side_rates(optimizer: torch.optim.Optimizer, tcfg: TrainConfig, epoch_float: float) -> None:
    """The probe's and the positions' rates: 0 during their warm-up (the object is learnt first),
    then the network's current rate times ``probe_lr / lr`` (``position_lr / lr``)."""
    base = optimizer.param_groups[0]["lr"]
    for grp in optimizer.param_groups[1:]:
        if grp.get("is_probe"):
            ratio = (tcfg.probe_lr if tcfg.probe_lr is not None else tcfg.lr) / tcfg.lr
            grp["lr"] = 0.0 if epoch_float < tcfg.probe_warmup_epochs else base * ratio
        elif grp.get("is_positions"):
            grp["lr"] = 0.0 if epoch_float < tcfg.position_warmup_epochs else base * tcfg.position_lr / tcfg.lr


def _rms(d: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(np.square(d), axis=-1))))


def save_refined_positions(path: Path, recorded_yx: np.ndarray, refined_yx: np.ndarray) -> None:
    """NPZ with xcoords/ycoords (refined, the data contract's keys) and the recorded ones."""
    with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as f:
        np.savez(f, xcoords=refined_yx[:, 1], ycoords=refined_yx[:, 0],
                 xcoords_recorded=recorded_yx[:, 1], ycoords_recorded=recorded_yx[:, 0])


def refined_positions(recorded_yx: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Recorded positions (M, 2) plus the learnt corrections with their mean removed."""
    d = np.asarray(delta, np.float64)
    return np.asarray(recorded_yx, np.float64) + d - d.mean(axis=0, keepdims=True)


def clip_gradients(model: nn.Module, factor: float, running: float | None) -> float:
    """Clip the gradient norm to ``factor`` x its running mean (an EMA of the clipped norms, so the
    threshold follows the loss scale of the dose); returns the updated running mean."""
    params = [p for p in model.parameters() if p.grad is not None]
    norm = float(torch.nn.utils.clip_grad_norm_(params, math.inf))
    if not math.isfinite(norm):
        return running if running is not None else 0.0
    if running is None:
        return norm
    limit = factor * running
    if norm > limit > 0:
        torch.nn.utils.clip_grad_norm_(params, limit)
        norm = limit
    return 0.98 * running + 0.02 * norm


def _epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch) * 7919 + 17) % (2 ** 63))
    return torch.randperm(n, generator=g)


def _split(n_groups: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if val_fraction <= 0 or n_groups < 2:
        return torch.arange(n_groups), torch.zeros(0, dtype=torch.long)
    n_val = min(n_groups - 1, max(1, int(round(val_fraction * n_groups))))
    perm = torch.randperm(n_groups, generator=torch.Generator().manual_seed(int(seed)))
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def _state_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _run_signature(mcfg: ModelConfig, tcfg: TrainConfig, data_sha: str, test_sha: str | None,
                   world: int, init_sha: str | None = None) -> str:
    t = {k: v for k, v in tcfg.to_dict().items() if k not in RUN_CONTROL_FIELDS}
    return json.dumps({"model": mcfg.to_dict(), "train": t, "data": data_sha, "test": test_sha,
                       "world_size": world, **({"init": init_sha} if init_sha else {})}, sort_keys=True)


def _signature_diff(a: str, b: str) -> list[str]:
    da, db = json.loads(a), json.loads(b)
    out = []
    for sect in sorted(set(da) | set(db)):
        va, vb = da.get(sect), db.get(sect)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += [f"{sect}.{k}: {va.get(k)!r} -> {vb.get(k)!r}" for k in sorted(set(va) | set(vb))
                    if va.get(k) != vb.get(k)]
        elif va != vb:
            out.append(f"{sect}: differs")
    return out


def _init_weights_from(run_dir: str | os.PathLike, requested: ModelConfig | None
                       ) -> tuple[ModelConfig, dict[str, torch.Tensor], str, Path]:
    """(model config, network weights, weights SHA-256, path) of a bundle to fine-tune from."""
    import dataclasses

    run_dir = bundle_mod.resolve_bundle(run_dir)
    b = bundle_mod.load_bundle(run_dir, "cpu")
    mcfg = b.model_config
    if requested is not None:
        keys = ("kind", "arch", "gridsize", "n_filters_scale", "norm", "back_project", "border_branch")
        a, r = mcfg.to_dict(), dataclasses.replace(requested, N=mcfg.N).to_dict()
        diff = [f"{k}: bundle {a[k]!r}, requested {r[k]!r}" for k in keys
                if r[k] is not None and a[k] != r[k]]
        if diff:
            raise ConfigError(f"{run_dir}: cannot fine-tune, the model differs ({'; '.join(diff)})")
        mcfg = dataclasses.replace(requested, N=mcfg.N, border_branch=mcfg.border_branch)
    state = {k: v.detach().cpu() for k, v in b.model.state_dict().items()}
    return mcfg, state, sha256_file(Path(run_dir) / bundle_mod.WEIGHTS_FILE), Path(run_dir)


def _resume_policy(run: Path, tcfg: TrainConfig, signature: str, main: bool) -> dict[str, Any] | None:
    """What to do with a run already in ``run``: the checkpoint to resume from (its signature must
    match), None to start afresh (after removing the old files with ``overwrite``), or an error."""
    ckpt_path = run / CHECKPOINT_FILE
    if not (ckpt_path.exists() or (run / bundle_mod.CONFIG_FILE).exists()):
        return None
    if tcfg.resume and ckpt_path.exists():
        ck = _load_checkpoint(ckpt_path, torch.device("cpu"))
        if ck["signature"] != signature:
            diff = "; ".join(_signature_diff(ck["signature"], signature)) or "settings differ"
            raise ResumeMismatchError(f"{ckpt_path}: cannot resume, the run was started with other settings "
                              f"or data ({diff})")
        return ck
    if not tcfg.overwrite and not tcfg.resume:
        raise ConfigError(f"{run}: already holds a training run; set resume=True (--resume) to continue it, "
                          "overwrite=True (--overwrite) to replace it, or choose another output directory")
    if main and tcfg.overwrite:
        for name in (CHECKPOINT_FILE, POSITIONS_FILE, *bundle_mod.BUNDLE_FILES):
            (run / name).unlink(missing_ok=True)
    return None


def _save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    with atomic_path(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def _load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a user-facing error
        raise ConfigError(f"{path}: unreadable checkpoint ({exc.__class__.__name__}: {one_line(exc)}); "
                          "delete it or pass --overwrite") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(f"{path}: not a checkpoint of this ptychopinn version; delete it or pass --overwrite")
    return ck


# ---------------------------------------------------------------------------------------------
# the loop
# ---------------------------------------------------------------------------------------------
def train(
    train_data: str | os.PathLike | PtychoDataset,
    run_dir: str | os.PathLike,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    test_data: str | os.PathLike | PtychoDataset | None = None,
    progress: bool = True,
    init_from: str | os.PathLike | None = None,
    observers: tuple[Any, ...] | list[Any] = (),
) -> TrainResult:
    """Train a PINN or the supervised baseline and write the bundle to ``run_dir``.

    ``train_data`` / ``test_data`` are NPZ paths or :class:`PtychoDataset`s; the test set, when
    given, is scored (loss only) after every epoch and recorded as ``test_loss``. Raises
    :class:`~ptychopinn.errors.TrainingDivergedError` when the loss becomes NaN/Inf (the last good
    checkpoint stays in ``run_dir``). ``init_from``: a bundle whose network weights start
    the run (fine-tuning); its model config is used when ``model_config`` is None and must
    otherwise match; the probe and intensity scale come from ``train_data``.

    ``observers`` (:mod:`ptychopinn._observe`, main rank only) are called with keyword arguments:
    ``setup(ds, train_path, model_config, train_config, scale, X, groups, r, train_idx, model,
    probe_initial, loss_weights, run_dir, start_epoch)`` before the loop (X: measured amplitudes on
    the device, groups (G, C) indices into X, r: input normalisation); ``batch(epoch, index, x,
    measured)`` for every training batch (x = X[groups] * r as fed to the model, measured = the loss
    targets X[groups]); ``epoch(record)`` with the history entry; ``diverged(history, epoch,
    run_dir, checkpoint)`` before :class:`TrainingDivergedError` is raised; ``end(result)`` with
    the :class:`TrainResult` after the bundle is written.
    """
    t_start = time.perf_counter()
    init = None
    if init_from is not None:
        init = _init_weights_from(init_from, model_config)
        model_config = init[0]
    mcfg = model_config or ModelConfig()
    tcfg = train_config or TrainConfig()
    if mcfg.kind == "pinn":  # the supervised baseline has no intensity scale to train
        check_protocol(tcfg.protocol, "model", mcfg)
    run = Path(run_dir)
    ds, train_path = _as_dataset(train_data)
    if ds.n_patterns == 0:
        raise DataError(f"{ds.source}: key 'diff3d': holds no diffraction patterns")
    try:
        mcfg = mcfg.with_N(ds.N)
    except ConfigError as exc:
        raise DataError(f"{ds.source}: key 'diff3d': pattern size {ds.N} not usable by this model ({exc})") from None
    mcfg = mcfg.resolved(ds.probe)
    if tcfg.refine_positions and (mcfg.kind != "pinn" or mcfg.gridsize < 2):
        raise ConfigError("refine_positions needs the PINN at gridsize >= 2 (positions enter its physics "
                          "only through the group offsets)")
    test_ds, test_path = (None, None) if test_data is None else _as_dataset(test_data)
    if test_ds is not None and test_ds.N != ds.N:
        raise DataError(f"{test_ds.source}: pattern size {test_ds.N} differs from the training data ({ds.N})")
    if ds.probe.shape != (ds.N, ds.N):
        raise DataError(f"{ds.source}: key 'probeGuess': shape {ds.probe.shape} does not match N={ds.N}")

    ctx = dist_mod.setup(resolve_device(tcfg.device).type)
    try:
        return _train(ds, train_path, test_ds, test_path, run, mcfg, tcfg, ctx, progress, t_start, init,
                      tuple(observers) if ctx.is_main else ())
    finally:
        dist_mod.teardown(ctx)


@dataclass
class _Run:
    """One run's state: what the loop reads (data, model, optimiser) and what it updates (history,
    best epoch, early-stopping counters), so that each step of the loop is a small function."""

    ds: PtychoDataset
    train_path: str | None
    test_ds: PtychoDataset | None
    test_path: str | None
    run: Path
    mcfg: ModelConfig
    tcfg: TrainConfig
    ctx: dist_mod.DistContext
    device: torch.device
    precision: str
    show: bool
    data_sha: str
    test_sha: str | None
    init: tuple[ModelConfig, dict[str, torch.Tensor], str, Path] | None
    observers: tuple[Any, ...]
    sc: Any = None
    prep: _Prepared | None = None
    test_prep: _Prepared | None = None
    train_idx: torch.Tensor | None = None
    val_idx: torch.Tensor | None = None
    weights: losses_mod.LossWeights | None = None
    amp_scale: float = 1.0
    model: nn.Module | None = None
    ddp_model: nn.Module | None = None
    probe_initial: np.ndarray | None = None
    n_params: int = 0
    optimizer: torch.optim.Optimizer | None = None
    scheduler: Any = None
    sampler: Any = None
    diag_batch: tuple[torch.Tensor, ...] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    grad_state: float | None = None
    start_epoch: int = 0
    best_loss: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped: bool = False
    best_state: dict[str, torch.Tensor] | None = None
    best_delta: torch.Tensor | None = None

    @property
    def main(self) -> bool:
        return self.ctx.is_main

    @property
    def ckpt_path(self) -> Path:
        return self.run / CHECKPOINT_FILE

    @property
    def unit(self) -> float:
        return self.sc.value  # MAE in normalised units


def _train(ds: PtychoDataset, train_path: str | None, test_ds: PtychoDataset | None, test_path: str | None,
           run: Path, mcfg: ModelConfig, tcfg: TrainConfig, ctx: dist_mod.DistContext, progress: bool,
           t_start: float, init: tuple[ModelConfig, dict[str, torch.Tensor], str, Path] | None = None,
           observers: tuple[Any, ...] = ()) -> TrainResult:
    device = resolve_device(tcfg.device, ctx.local_rank)
    fp = {"labels": mcfg.kind == "supervised", "dose": tcfg.intensity_scale_source == "closed_form"}
    r = _Run(ds, train_path, test_ds, test_path, run, mcfg, tcfg, ctx, device, resolve_precision(tcfg.precision, device),
             progress and ctx.is_main, arrays_sha256(ds, **fp),
             arrays_sha256(test_ds, **fp) if test_ds is not None else None, init, observers)
    signature = _run_signature(mcfg, tcfg, r.data_sha, r.test_sha, ctx.world_size, init[2] if init else None)
    ck = _resume_policy(run, tcfg, signature, r.main)  # decided before any work
    dist_mod.barrier(ctx)
    _setup_data(r)
    _setup_model(r)
    if ck is not None:
        _restore(r, ck)
    del ck
    _announce(r)
    notify(observers, "setup", ds=ds, train_path=train_path, model_config=mcfg, train_config=tcfg, scale=r.sc,
           X=r.prep.X, groups=r.prep.groups, r=r.prep.r, train_idx=r.train_idx, model=r.model,
           probe_initial=r.probe_initial, loss_weights=r.weights, run_dir=run, start_epoch=r.start_epoch)
    for epoch in range(r.start_epoch, tcfg.epochs):
        if r.stopped:
            break
        t0 = time.perf_counter()
        train_loss, count, lr_end, train_seconds = _train_epoch(r, epoch)
        rec = _end_epoch(r, epoch, train_loss, count, lr_end, train_seconds, t0)
        _checkpoint(r, rec, signature)
        dist_mod.barrier(ctx)
    return _finish(r, t_start)


def _setup_data(r: _Run) -> None:
    """Scale, groups, split, test set and loss weights."""
    ds, mcfg, tcfg = r.ds, r.mcfg, r.tcfg
    r.sc = choose_intensity_scale(ds.diff3d, ds.metadata, tcfg.intensity_scale_source, mcfg.intensity_scale_trainable)
    r.prep = _prepare(ds, mcfg, tcfg, r.sc.input_scale, r.device, tcfg.n_groups, tcfg.oversample)
    if tcfg.refine_positions:
        r.prep.delta = nn.Parameter(torch.zeros(ds.n_patterns, 2, device=r.device))
    r.train_idx, r.val_idx = _split(int(r.prep.groups.shape[0]), tcfg.val_fraction, tcfg.seed)
    if r.test_ds is not None and not (mcfg.kind == "supervised" and r.test_ds.ground_truth_patches is None):
        # (no labels: no test loss for the supervised baseline)
        r.test_prep = _prepare(r.test_ds, mcfg, tcfg, input_scale(r.test_ds.diff3d), r.device, None, False)
    r.weights = losses_mod.LossWeights.for_kind(tcfg.loss, tcfg.nll_weight, tcfg.mae_weight)
    if mcfg.kind == "supervised":
        # sigmoid head range: 1.2 x the largest training label amplitude
        r.amp_scale = 1.2 * float(np.abs(ds.ground_truth_patches[r.train_idx.numpy()]).max()) or 1.0


def _setup_model(r: _Run) -> None:
    """Model (seeded weights, optional fine-tuning start), optimiser, scheduler, sampler."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(r.tcfg.seed)
        model = build_model(r.mcfg, r.ds.probe, r.sc.value, amplitude_scale=r.amp_scale)
    if r.init is not None:
        own = {"probe", "log_s", "amplitude_scale"}  # from this run's data, not the bundle's
        missing, unexpected = model.load_state_dict({k: v for k, v in r.init[1].items() if k not in own}, strict=False)
        if unexpected or set(missing) - own:
            raise ConfigError(f"init_from: the bundle's weights do not fit this model "
                              f"(missing {sorted(set(missing) - own)[:3]}, unexpected {unexpected[:3]})")
    r.model = model.to(r.device)
    r.probe_initial = torch.view_as_complex(r.model.probe.detach().cpu().float()).numpy().copy()
    r.n_params = count_parameters(r.model)
    r.ddp_model = r.model
    if r.ctx.enabled:
        r.ddp_model = nn.parallel.DistributedDataParallel(
            r.model, device_ids=[r.device.index] if r.device.type == "cuda" else None)
        from torch.utils.data import DistributedSampler

        r.sampler = DistributedSampler(range(r.train_idx.numel()), num_replicas=r.ctx.world_size, rank=r.ctx.rank,
                                       shuffle=True, seed=r.tcfg.seed, drop_last=False)
    tcfg = r.tcfg
    r.optimizer = torch.optim.Adam(_param_groups(r.model, tcfg, r.prep.delta), lr=tcfg.lr)
    r.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        r.optimizer, mode="min", factor=tcfg.lr_factor, patience=tcfg.lr_patience, min_lr=min(tcfg.min_lr, tcfg.lr))
    if tcfg.diagnostics and r.mcfg.kind == "pinn":
        d_idx = (r.val_idx if r.val_idx.numel() else r.train_idx)[:64]
        with torch.no_grad():  # with the initial positions, also when a run resumes
            x_d, off_d, xm_d, _ = _batch(r.prep, d_idx, r.device)
        r.diag_batch = (x_d, off_d, xm_d)


def _restore(r: _Run, ck: dict[str, Any]) -> None:
    """Continue from a checkpoint: weights, optimiser, scheduler, history and loop counters."""
    r.model.load_state_dict(ck["model"])
    r.optimizer.load_state_dict(ck["optimizer"])
    r.scheduler.load_state_dict(ck["scheduler"])
    r.history = list(ck["history"])
    r.start_epoch = int(ck["epoch"])
    r.best_loss, r.best_epoch = float(ck["best_loss"]), int(ck["best_epoch"])
    r.bad_epochs, r.stopped = int(ck["bad_epochs"]), bool(ck["stopped"])
    r.best_state = {k: v.to(r.device) for k, v in ck["best_state"].items()} if ck.get("best_state") else None
    r.grad_state = ck.get("grad_state")
    if r.prep.delta is not None:
        with torch.no_grad():
            r.prep.delta.copy_(ck["positions_delta"].to(r.device))
        r.best_delta = ck.get("best_positions_delta")


def _announce(r: _Run) -> None:
    if r.show:
        mcfg = r.mcfg
        print(f"ptychopinn train: {mcfg.kind} N={mcfg.N} gridsize={mcfg.gridsize} "
              f"({r.n_params / 1e6:.2f} M parameters) on {r.device} [{r.precision}, {torch.get_num_threads()} CPU threads], "
              f"{r.train_idx.numel()} train / {r.val_idx.numel()} val groups"
              + (f", resuming after epoch {r.start_epoch}" if r.start_epoch else ""), file=sys.stderr)


def _epoch_order(r: _Run, epoch: int) -> torch.Tensor:
    if r.sampler is not None:
        r.sampler.set_epoch(epoch)
        return r.train_idx[torch.tensor(list(iter(r.sampler)), dtype=torch.long)]
    return r.train_idx[_epoch_permutation(r.train_idx.numel(), r.tcfg.seed, epoch)]


def _set_step_rate(r: _Run, step_no: int, warm: int, n_batches: int, lr_now: float) -> None:
    """The network's rate at this step (cosine, or the plateau rate's warm-up), then the probe's
    and the positions' rates relative to it."""
    tcfg = r.tcfg
    if tcfg.schedule == "cosine":
        for grp in r.optimizer.param_groups:
            grp["lr"] = cosine_lr(tcfg, step_no, warm, tcfg.epochs * n_batches)
    elif step_no < warm:  # linear warmup: lr * (step + 1) / warmup_steps
        for grp in r.optimizer.param_groups:
            grp["lr"] = lr_now * (step_no + 1) / warm
    _side_rates(r.optimizer, tcfg, step_no / n_batches)


def _train_epoch(r: _Run, epoch: int) -> tuple[float, int, float, float]:
    """One pass over the training groups: (mean loss, groups seen, last rate, seconds)."""
    from tqdm.auto import tqdm

    tcfg, bs = r.tcfg, r.tcfg.batch_size
    t0 = time.perf_counter()
    order = _epoch_order(r, epoch)
    r.ddp_model.train()
    loss_sum, count = 0.0, 0
    n_batches = (order.numel() + bs - 1) // bs
    warm = int(round(tcfg.warmup_epochs * n_batches))
    if tcfg.schedule == "cosine":
        for grp in r.optimizer.param_groups:
            grp["lr"] = cosine_lr(tcfg, epoch * n_batches, warm, tcfg.epochs * n_batches)
    lr_now = r.optimizer.param_groups[0]["lr"]
    bar = tqdm(total=n_batches, desc=f"epoch {epoch + 1}/{tcfg.epochs}", disable=None if r.show else True,
               leave=False, file=sys.stderr, dynamic_ncols=True)
    for b in range(n_batches):
        gidx = order[b * bs:(b + 1) * bs]
        batch = _batch(r.prep, gidx, r.device)
        notify(r.observers, "batch", epoch=epoch + 1, index=b, x=batch[0], measured=batch[2])
        loss = _loss(r.ddp_model, r.mcfg.kind, batch, r.weights, r.unit, r.device, r.precision, r.prep.pixel_weight)
        value = float(loss.detach())
        if r.ctx.enabled:
            value = dist_mod.all_reduce_sum([value], r.ctx, r.device)[0] / r.ctx.world_size
        if not math.isfinite(value):
            bar.close()
            _diverged(r, epoch, f"the loss became {value} at epoch {epoch + 1}, batch {b + 1}")
        r.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        _set_step_rate(r, epoch * n_batches + b, warm, n_batches, lr_now)
        if tcfg.grad_clip > 0:
            r.grad_state = clip_gradients(r.model, tcfg.grad_clip, r.grad_state)
        r.optimizer.step()
        loss_sum += value * gidx.numel()
        count += gidx.numel()
        bar.update(1)
        if r.show and (b % 5 == 0 or b == n_batches - 1):
            bar.set_postfix(loss=f"{value:.4g}", refresh=False)
    bar.close()
    lr_end = r.optimizer.param_groups[0]["lr"]  # the rate of the epoch's last step (recorded)
    if tcfg.schedule == "plateau":
        for grp in r.optimizer.param_groups:  # the plateau scheduler works on the post-warmup rate
            grp["lr"] = lr_now
    train_seconds = time.perf_counter() - t0
    loss_sum, count = dist_mod.all_reduce_sum([loss_sum, float(count)], r.ctx, r.device)
    return loss_sum / max(count, 1), count, lr_end, train_seconds


def _diverged(r: _Run, epoch: int, what: str, in_batch: bool = True) -> None:
    """Tell the observers and raise TrainingDivergedError (the last good checkpoint stays)."""
    notify(r.observers, "diverged", history=r.history, epoch=epoch + 1, run_dir=r.run, checkpoint=r.ckpt_path)
    if not in_batch:
        raise TrainingDivergedError(f"training diverged: {what}; the last good checkpoint is kept in "
                                    f"{r.ckpt_path}; try a lower lr (--lr)")
    last_good = r.history[-1]["epoch"] if r.history else r.start_epoch
    good = (f"the last good checkpoint (epoch {last_good}) is kept in {r.ckpt_path}" if r.ckpt_path.exists()
            else "no good checkpoint exists (it diverged in the first epoch)")
    raise TrainingDivergedError(f"training diverged: {what}; {good}; try a lower lr (--lr) or check the data")


def _end_epoch(r: _Run, epoch: int, train_loss: float, count: int, lr_end: float, train_seconds: float,
               t0: float) -> dict[str, Any]:
    """Validation and test losses, the schedule, early stopping and the epoch's history record."""
    tcfg, bs = r.tcfg, r.tcfg.batch_size
    args = (r.weights, r.unit, r.device, r.precision, r.ctx)
    val_loss = _evaluate(r.ddp_model, r.mcfg.kind, r.prep, r.val_idx, bs, *args)
    test_loss = None
    if r.test_prep is not None:
        test_loss = _evaluate(r.ddp_model, r.mcfg.kind, r.test_prep, torch.arange(r.test_prep.groups.shape[0]),
                              bs, *args)
    monitor = val_loss if val_loss is not None else train_loss
    if not math.isfinite(monitor):
        _diverged(r, epoch, f"the validation loss became {monitor} at epoch {epoch + 1}", in_batch=False)
    if tcfg.schedule == "plateau":
        r.scheduler.step(monitor)
    if monitor < r.best_loss:
        r.best_loss, r.best_epoch, r.bad_epochs = monitor, epoch + 1, 0
        r.best_state = _state_copy(r.model) if tcfg.restore_best else None
        if r.prep.delta is not None and tcfg.restore_best:
            r.best_delta = r.prep.delta.detach().cpu().clone()
    else:
        r.bad_epochs += 1
        if tcfg.patience and r.bad_epochs >= tcfg.patience:
            r.stopped = True
    rec: dict[str, Any] = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss}
    if r.test_prep is not None:
        rec["test_loss"] = test_loss
    rec.update({"lr": lr_end, "seconds": time.perf_counter() - t0, "train_seconds": train_seconds,
                "train_patterns_per_s": count * r.mcfg.C / train_seconds if train_seconds > 0 else None})
    if r.prep.delta is not None:
        d = r.prep.delta.detach().cpu().numpy()
        rec["position_correction_rms"] = _rms(d - d.mean(axis=0))
    if r.diag_batch is not None and r.main:
        rec["diagnostics"] = epoch_diagnostics(r.model, *r.diag_batch)
    r.history.append(rec)
    notify(r.observers, "epoch", record=rec)
    return rec


def _checkpoint(r: _Run, rec: dict[str, Any], signature: str) -> None:
    """Write the checkpoint and history.json (main rank) and print the epoch's line."""
    if r.main:
        _save_checkpoint(r.ckpt_path, {
            "format": CHECKPOINT_FORMAT, "epoch": rec["epoch"], "signature": signature,
            "model": _state_copy(r.model), "optimizer": r.optimizer.state_dict(),
            "scheduler": r.scheduler.state_dict(), "history": r.history, "best_loss": r.best_loss,
            "best_epoch": r.best_epoch, "bad_epochs": r.bad_epochs, "stopped": r.stopped,
            "best_state": r.best_state, "grad_state": r.grad_state,
            "positions_delta": None if r.prep.delta is None else r.prep.delta.detach().cpu().clone(),
            "best_positions_delta": r.best_delta,
        })
        write_json_atomic(r.run / bundle_mod.HISTORY_FILE, r.history)
    if r.show:
        from tqdm.auto import tqdm

        val, test = rec["val_loss"], rec.get("test_loss")
        msg = (f"epoch {rec['epoch']}/{r.tcfg.epochs}: train {rec['train_loss']:.6g}"
               + (f", val {val:.6g}" if val is not None else "")
               + (f", test {test:.6g}" if test is not None else "")
               + f", lr {rec['lr']:.3g}, {rec['seconds']:.1f} s ({rec['train_patterns_per_s']:.1f} patterns/s)")
        tqdm.write(msg, file=sys.stderr)


def _finish(r: _Run, t_start: float) -> TrainResult:
    """Final weights (best validation epoch or last), refined positions, the bundle, the result."""
    tcfg, model = r.tcfg, r.model
    if tcfg.restore_best and r.best_state is not None:
        model.load_state_dict(r.best_state)
    extra: dict[str, Any] = {}
    if r.prep.delta is not None:
        delta = (r.best_delta if tcfg.restore_best and r.best_delta is not None else r.prep.delta.detach()).cpu().numpy()
        extra["refined_positions_yx"] = refined_positions(r.ds.positions_yx, delta)
    model.eval()
    scale_block = {**r.sc.to_dict(), "final": float(torch.exp(model.log_s.detach()).cpu())}
    tp = [h["train_patterns_per_s"] for h in r.history if h.get("train_patterns_per_s")]
    pps = float(np.median(tp)) if tp else 0.0
    seconds = time.perf_counter() - t_start
    best_val = None if not math.isfinite(r.best_loss) else r.best_loss
    if r.main:
        config = _bundle_config(r, scale_block, seconds, pps, best_val)
        if extra:
            config["positions"] = {"refined": True, "file": POSITIONS_FILE,
                                   "correction_rms_px": _rms(extra["refined_positions_yx"] - r.ds.positions_yx)}
            save_refined_positions(r.run / POSITIONS_FILE, r.ds.positions_yx, extra["refined_positions_yx"])
        bundle_mod.save_bundle(r.run, model, config, r.history, r.probe_initial, r.ds.probe)
        refinement = r.ds.metadata.get("probe_refinement")
        if refinement:  # the refined probe the training started from, beside the bundle
            save_probe_file(r.run / refinement["file"], r.ds.probe,
                            {"probe_source": r.ds.metadata.get("probe_source"), **refinement})
    dist_mod.barrier(r.ctx)
    result = TrainResult(
        run_dir=r.run, model=model, model_config=r.mcfg, train_config=tcfg, history=r.history,
        intensity_scale=scale_block, epochs_run=len(r.history), best_epoch=r.best_epoch,
        best_val_loss=best_val, stopped_early=r.stopped, seconds=seconds, train_patterns_per_s=pps,
        n_parameters=r.n_params, device=str(r.device), precision=r.precision, extra=extra,
    )
    notify(r.observers, "end", result=result)
    return result


def _bundle_config(r: _Run, scale_block: dict[str, Any], seconds: float, pps: float,
                   best_val: float | None) -> dict[str, Any]:
    """config.json of the bundle: package, model and training configs, scale, probe, data, result."""
    from ptychopinn import __version__

    ds, test_ds, tcfg, init = r.ds, r.test_ds, r.tcfg, r.init
    train_file = r.train_path or (ds.source if os.path.isfile(ds.source) else None)
    return {
        "package": "ptychopinn", "package_version": __version__, "torch_version": torch.__version__,
        "init_from": None if init is None else {"path": str(init[3]), "weights_sha256": init[2]},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": r.mcfg.to_dict(), "training": tcfg.to_dict(),
        "loss_weights": r.weights.to_dict(),
        "intensity_scale": scale_block,
        "probe": {"normalisation": "sum|P|^2 = (N/2)^2", "factor": float(r.model.probe_factor),
                  "source": ds.metadata.get("probe_source") or f"{ds.source}: probeGuess",
                  "trainable": bool(r.mcfg.probe_trainable), "file": bundle_mod.PROBE_FILE,
                  **_probe_refinement(ds)},
        "data": {
            "train": {"path": train_file or ds.source,
                      "sha256": sha256_file(train_file) if train_file else None,
                      "arrays_sha256": r.data_sha, "n_patterns": ds.n_patterns, "N": ds.N},
            "test": None if test_ds is None else {
                "path": r.test_path or test_ds.source, "sha256": sha256_file(r.test_path) if r.test_path else None,
                "arrays_sha256": r.test_sha, "n_patterns": test_ds.n_patterns},
            "n_groups": int(r.prep.groups.shape[0]), "n_train_groups": int(r.train_idx.numel()),
            "n_val_groups": int(r.val_idx.numel()), "group_size": r.mcfg.C,
        },
        "supervised": {"amplitude_scale": r.amp_scale} if r.mcfg.kind == "supervised" else None,
        "result": {"epochs_run": len(r.history), "best_epoch": r.best_epoch, "best_val_loss": best_val,
                   "stopped_early": r.stopped, "seconds": seconds, "train_patterns_per_s": pps,
                   "n_parameters": r.n_params, "device": str(r.device), "precision": r.precision,
                   "world_size": r.ctx.world_size,
                   "final_weights": "best" if tcfg.restore_best and r.best_state is not None else "last"},
        "files": {"weights": bundle_mod.WEIGHTS_FILE, "probe": bundle_mod.PROBE_FILE,
                  "history": bundle_mod.HISTORY_FILE, "checkpoint": CHECKPOINT_FILE},
    }


def _probe_refinement(ds: PtychoDataset) -> dict[str, Any]:
    """``{"ptychi_refinement": {file, seconds, final_loss}}`` when the probe was refined first."""
    ref = ds.metadata.get("probe_refinement")
    if not ref:
        return {}
    return {"ptychi_refinement": {"file": ref["file"], "seconds": ref["seconds"], "final_loss": ref["loss_history"][-1]}}


@torch.no_grad()
def _evaluate(model: nn.Module, kind: str, prep: _Prepared, idx: torch.Tensor, bs: int,
              weights: losses_mod.LossWeights, unit: float, device: torch.device, precision: str,
              ctx: dist_mod.DistContext) -> float | None:
    """Mean loss over the groups ``idx`` (sharded over ranks), or None when there are none."""
    if idx.numel() == 0:
        return None
    model.eval()
    mine = idx[ctx.rank::ctx.world_size] if ctx.enabled else idx
    total, count = 0.0, 0
    inner = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    for b in range(0, mine.numel(), bs):
        gidx = mine[b:b + bs]
        loss = _loss(inner, kind, _batch(prep, gidx, device), weights, unit, device, precision, prep.pixel_weight)
        total += float(loss) * gidx.numel()
        count += gidx.numel()
    total, count = dist_mod.all_reduce_sum([total, float(count)], ctx, device)
    return total / count if count else None
