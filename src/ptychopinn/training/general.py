"""Train a *general* PINN on a corpus of many simulated scans (:mod:`ptychopinn.data.corpus`).

Unlike :func:`ptychopinn.training.trainer.train`, which fits one dataset with its one probe and
intensity scale, every batch here mixes groups from many scans, each with its own probe, dose and
object family. The network is probe-conditioned (``ModelConfig.probe_conditioned``): each sample's
back-projected input and forward model use its own scan's probe, so the bundle reconstructs a new
scan with that scan's probe (``ptychopinn infer`` / ``reconstruct --from-bundle``).

Units: inputs ``x = X r`` (each scan's own normalisation r, DESIGN section 2) and the loss compares
the predicted amplitude at scale 1 with x, so the Poisson NLL ``mean(A^2 - x^2 log A^2)`` equals the
count-unit NLL divided by the scan's s^2: every dose weighs the same in a batch.

Data are drawn in *rounds*: ``scans_per_round`` fresh scans, every group of them once, in a seeded
random order; no scan is seen twice, so the loss on fresh data is the validation loss too (a fixed
set of ``val_scans`` other scans is scored every ``val_every`` steps for a smooth curve).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ptychopinn._config import Config, opt
from ptychopinn._device import resolve_device
from ptychopinn._io import write_json_atomic
from ptychopinn._observe import notify
from ptychopinn.data.corpus import Corpus, CorpusConfig
from ptychopinn.data.grouping import DEFAULT_NEIGHBOR_COUNT, make_groups
from ptychopinn.errors import ConfigError
from ptychopinn.model import build_model, count_parameters
from ptychopinn.model import losses as losses_mod
from ptychopinn.model.config import ModelConfig
from ptychopinn.physics.dose import input_scale
from ptychopinn.physics.probe import default_probe, normalise_probe_energy
from ptychopinn.model import bundle as bundle_mod
from ptychopinn.training.config import TrainConfig
from ptychopinn.training.trainer import clip_gradients, resolve_precision

#: the general model's network: gridsize 2, full-frame support (measured probes carry side lobes
#: outside the central N/2), GroupNorm (no frozen seeds), amplitude head up to 3x the RMS
GENERAL_MODEL = ModelConfig(gridsize=2, n_filters_scale=1, border_branch=True, norm="group", amp_max=3.0,
                            probe_conditioned=True)


@dataclass(frozen=True)
class GeneralTrainConfig(Config):
    """Optimisation of the general model: Adam, linear warm-up over ``warmup_steps`` then a half
    cosine from ``lr`` to ``min_lr`` at ``steps``; ``grad_clip`` as in :class:`TrainConfig`."""

    steps: int = opt(4000, "optimiser steps", check="positive")
    batch_size: int = opt(16, "groups per step", check="positive")
    lr: float = opt(1e-3, "peak learning rate (cosine schedule)", check="positive")
    min_lr: float = 2e-5
    warmup_steps: int = 100
    scans_per_round: int = 32
    val_scans: int = 8
    val_every: int = opt(250, "steps between validation scores and bundle writes", check="positive")
    grad_clip: float = 0.0
    seed: int = opt(0, "weight initialisation and batch order seed", check="seed")
    device: str = "auto"
    precision: str = "auto"
    init_from: str | None = opt(None, "continue from the weights of this general bundle (a directory or a built-in "
                                      "name, e.g. general-n64): its network, a fresh warm-up and cosine schedule, and "
                                      "corpus scans after those it saw", metavar="RUN_DIR")

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.scans_per_round < 1 or self.val_every < 1:
            raise ConfigError("steps, batch_size, scans_per_round and val_every must be >= 1")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ConfigError(f"need lr > 0 and 0 <= min_lr <= lr; got lr={self.lr}, min_lr={self.min_lr}")
        if self.warmup_steps < 0 or self.val_scans < 0 or self.grad_clip < 0:
            raise ConfigError("warmup_steps, val_scans and grad_clip must be >= 0")


@dataclass
class Pool:
    """Groups of several scans, ready for batching: normalised patterns ``x`` (P, N, N), groups
    (G, C) into x, offsets (G, C, 2), the scan of each group, normalised probes (S, N, N)."""

    x: torch.Tensor
    groups: torch.Tensor
    offsets: torch.Tensor
    scan_of_group: torch.Tensor
    probes: torch.Tensor

    @classmethod
    def from_scans(cls, scans: list, gridsize: int, seed: int) -> Pool:
        xs, gs, offs, owner, probes = [], [], [], [], []
        base = 0
        for j, ds in enumerate(scans):
            r = input_scale(ds.diff3d)
            g = make_groups(ds.positions_yx, gridsize, DEFAULT_NEIGHBOR_COUNT, None, seed=seed + j)
            xs.append(torch.from_numpy(np.asarray(ds.diff3d, np.float32) * np.float32(r)))
            gs.append(torch.from_numpy(g.indices.astype(np.int64) + base))
            offs.append(torch.from_numpy(g.offsets.astype(np.float32)))
            owner.append(torch.full((g.indices.shape[0],), j, dtype=torch.long))
            probes.append(torch.from_numpy(normalise_probe_energy(ds.probe)[0].astype(np.complex64)))
            base += ds.n_patterns
        return cls(torch.cat(xs), torch.cat(gs), torch.cat(offs), torch.cat(owner), torch.stack(probes))

    @property
    def n_groups(self) -> int:
        return int(self.groups.shape[0])

    def batch(self, gidx: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.x[self.groups[gidx]].to(device)
        off = self.offsets[gidx].to(device)
        probe = self.probes[self.scan_of_group[gidx]][:, None].to(device)
        return x, off, probe


def _lr(cfg: GeneralTrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - 1 - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, t)))


def _loss(model: torch.nn.Module, x: torch.Tensor, off: torch.Tensor, probe: torch.Tensor,
          device: torch.device, precision: str) -> torch.Tensor:
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        out = model(x, off, probe=probe, scale=torch.ones((), device=device))
    return losses_mod.poisson_nll(out["amplitude"], x.square())


@torch.no_grad()
def _evaluate(model: torch.nn.Module, pool: Pool, bs: int, device: torch.device, precision: str) -> float:
    model.eval()
    tot = 0.0
    for a in range(0, pool.n_groups, bs):
        gidx = torch.arange(a, min(a + bs, pool.n_groups))
        tot += float(_loss(model, *pool.batch(gidx, device), device, precision)) * gidx.numel()
    model.train()
    return tot / max(pool.n_groups, 1)


def train_general(run_dir: str | os.PathLike, corpus: CorpusConfig | None = None,
                  model_config: ModelConfig | None = None, train_config: GeneralTrainConfig | None = None,
                  progress: bool = True, observers: tuple[Any, ...] = ()) -> Path:
    """Train a probe-conditioned PINN on the corpus and write its bundle to ``run_dir``.

    The bundle is rewritten every ``val_every`` steps (the last one is the result), so a run cut short
    leaves a usable model. ``observers`` get ``step(step, loss, lr)`` and ``validation(record)``.
    Returns the bundle directory.
    """
    ccfg = corpus or CorpusConfig()
    tcfg = train_config or GeneralTrainConfig()
    mcfg = (model_config or GENERAL_MODEL).with_N(ccfg.N)
    if not mcfg.probe_conditioned:
        raise ConfigError("the general model must be probe_conditioned (ModelConfig.probe_conditioned=True)")
    run = Path(run_dir)
    device = resolve_device(tcfg.device)
    precision = resolve_precision(tcfg.precision, device)
    data = Corpus(ccfg)
    val_data = Corpus(CorpusConfig.from_dict({**ccfg.to_dict(), "seed": ccfg.seed + 1_000_003}))
    ref_probe = default_probe(ccfg.N)
    previous = start = None
    if tcfg.init_from is not None:
        start, previous = _previous_run(tcfg.init_from, ccfg)
        mcfg = start.model_config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(tcfg.seed)
        model = build_model(mcfg, ref_probe, 1.0).to(device)
    if start is not None:
        model.load_state_dict(start.model.state_dict())
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=tcfg.lr)
    val_pool = Pool.from_scans([val_data.scan(i) for i in range(tcfg.val_scans)], mcfg.gridsize, tcfg.seed)
    n_params = count_parameters(model)
    if progress:
        print(f"ptychopinn train-general: N={ccfg.N} gridsize={mcfg.gridsize} ({n_params / 1e6:.2f} M parameters) "
              f"on {device} [{precision}, {torch.get_num_threads()} threads], {tcfg.steps} steps of "
              f"{tcfg.batch_size} groups", file=sys.stderr, flush=True)
    history: list[dict[str, Any]] = []
    gen = torch.Generator().manual_seed(tcfg.seed)
    t0 = time.perf_counter()
    step, n_scans, run_loss, run_n, grad_state = 0, 0, 0.0, 0, None
    scan_index = 0 if previous is None else previous["first_scan"] + previous["scans_seen"]
    model.train()
    while step < tcfg.steps:
        tg = time.perf_counter()
        pool = Pool.from_scans([data.scan(scan_index + j) for j in range(tcfg.scans_per_round)],
                               mcfg.gridsize, tcfg.seed + scan_index)
        gen_s = time.perf_counter() - tg
        scan_index += tcfg.scans_per_round
        n_scans += tcfg.scans_per_round
        order = torch.randperm(pool.n_groups, generator=gen)
        for a in range(0, pool.n_groups - tcfg.batch_size + 1, tcfg.batch_size):
            if step >= tcfg.steps:
                break
            for grp in opt.param_groups:
                grp["lr"] = _lr(tcfg, step)
            loss = _loss(model, *pool.batch(order[a:a + tcfg.batch_size], device), device, precision)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise ConfigError(f"train-general diverged at step {step + 1} (loss {value}); lower --lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if tcfg.grad_clip > 0:
                grad_state = clip_gradients(model, tcfg.grad_clip, grad_state)
            opt.step()
            step += 1
            run_loss += value
            run_n += 1
            notify(observers, "step", step=step, loss=value, lr=opt.param_groups[0]["lr"])
            if step % tcfg.val_every == 0 or step == tcfg.steps:
                rec = {"step": step, "train_loss": run_loss / run_n, "val_loss": _evaluate(model, val_pool,
                       tcfg.batch_size, device, precision), "lr": opt.param_groups[0]["lr"],
                       "scans_seen": n_scans, "patterns_seen": step * tcfg.batch_size * mcfg.C,
                       "seconds": time.perf_counter() - t0, "corpus_generation_s_last_round": gen_s}
                history.append(rec)
                run_loss, run_n = 0.0, 0
                notify(observers, "validation", record=rec)
                if progress:
                    print(f"step {step}/{tcfg.steps}: train {rec['train_loss']:.5g}, val {rec['val_loss']:.5g}, "
                          f"lr {rec['lr']:.2g}, {rec['seconds']:.0f} s, {n_scans} scans", file=sys.stderr, flush=True)
                _save(run, model, mcfg, tcfg, ccfg, history, ref_probe, n_params, precision, device,
                      scan_index - n_scans, previous)
    return run


def _previous_run(init_from: str, ccfg: CorpusConfig) -> tuple[Any, dict[str, Any]]:
    """(the bundle, its run's ``general`` block) of the general bundle a run continues; its corpus
    must be this one (the continuation draws the scans after those it saw)."""
    path = bundle_mod.resolve_bundle(init_from)
    bundle = bundle_mod.load_bundle(path)
    cfg = bundle.config
    prev = cfg.get("general")
    if not isinstance(prev, dict) or not cfg.get("model", {}).get("probe_conditioned"):
        raise ConfigError(f"{path}: config.json: not a general model bundle (no 'general' block); "
                          "--init-from continues a train-general run")
    def comparable(d: dict[str, Any]) -> dict[str, Any]:  # probe files by name: the folder may move
        return {**d, "probe_files": [os.path.basename(f) for f in d.get("probe_files") or ()]}

    mine, theirs = comparable(ccfg.to_dict()), comparable(prev.get("corpus") or {})
    if mine != theirs:
        diff = sorted(k for k in mine if theirs.get(k) != mine[k])
        raise ConfigError(f"{path}: config.json: key 'general.corpus': differs from this run's corpus in "
                          f"{', '.join(diff)} (give the same corpus options)")
    seen = int(cfg.get("data", {}).get("train", {}).get("n_scans", 0))
    return bundle, {**prev, "bundle": str(init_from),
                                                "first_scan": int(prev.get("first_scan", 0)), "scans_seen": seen}


def _save(run: Path, model: torch.nn.Module, mcfg: ModelConfig, tcfg: GeneralTrainConfig, ccfg: CorpusConfig,
          history: list[dict[str, Any]], ref_probe: np.ndarray, n_params: int, precision: str,
          device: torch.device, first_scan: int = 0, previous: dict[str, Any] | None = None) -> None:
    from ptychopinn import __version__

    # the TrainConfig block is what fine-tuning from this bundle starts from (gridsize-2 grouping)
    tc = TrainConfig(epochs=1, batch_size=tcfg.batch_size, lr=tcfg.lr, seed=tcfg.seed, val_fraction=0.0,
                     patience=0)
    config = {
        "package": "ptychopinn", "package_version": __version__, "torch_version": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "init_from": tcfg.init_from,
        "model": mcfg.to_dict(), "training": tc.to_dict(),
        "general": {"train": tcfg.to_dict(), "corpus": ccfg.to_dict(), "first_scan": first_scan,
                    "previous": previous},
        "loss_weights": losses_mod.LossWeights().to_dict(),
        "intensity_scale": {"value": 1.0, "final": 1.0, "source": "per scan (probe-conditioned general model)"},
        "probe": {"normalisation": "sum|P|^2 = (N/2)^2", "factor": float(model.probe_factor),
                  "source": "default probe (placeholder: a general model takes each scan's own probe)",
                  "trainable": False, "file": bundle_mod.PROBE_FILE},
        "data": {"train": {"path": "corpus", "n_scans": history[-1]["scans_seen"], "N": ccfg.N}},
        "result": {"steps": history[-1]["step"], "seconds": history[-1]["seconds"], "n_parameters": n_params,
                   "device": str(device), "precision": precision, "threads": torch.get_num_threads(),
                   "final_val_loss": history[-1]["val_loss"]},
    }
    hist = [{**h, "epoch": i + 1} for i, h in enumerate(history)]
    model.eval()
    bundle_mod.save_bundle(run, model, config, hist, ref_probe, ref_probe)
    model.train()
    write_json_atomic(run / "general_history.json", history)
