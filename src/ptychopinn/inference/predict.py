"""Chunked prediction of object patches (DESIGN section 6).

Memory stays bounded: network inputs are built from ``diff3d`` one chunk at a time and outputs are
yielded chunk by chunk (:func:`iter_patches`), so a caller can accumulate them straight into a
stitching canvas. :func:`predict` collects all patches for small datasets and tests.

Input normalisation: ``x = diff3d * r`` with ``r = sqrt((N/2)^2 / mean_patterns sum diff3d^2)``
computed from the data being reconstructed (DESIGN section 2), never taken from training.

Gridsize > 1 models: every pattern is the anchor (column 0) of exactly one group
(``make_groups(..., n_groups=None)``: no oversampling at inference); the group is fed with its
neighbours and only the anchor's patch is kept, so each pattern contributes one patch at its own
position and the stitched object weights every scan position equally.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ptychopinn._device import resolve_device
from ptychopinn.data.contract import as_dataset
from ptychopinn.data.grouping import DEFAULT_NEIGHBOR_COUNT
from ptychopinn.errors import BundleError, ConfigError, DataError


@dataclass(frozen=True)
class InferenceModel:
    """What inference needs from a model: the module (eval mode, on ``device``) and its geometry."""

    module: nn.Module
    N: int
    gridsize: int
    kind: str
    neighbor_count: int
    device: torch.device
    source: str


def model_geometry(module: nn.Module, config: Any = None, train_config: Any = None) -> tuple[int, int, str, int]:
    """The inference interface of a model: ``(N, gridsize, kind, neighbor_count)``.

    Each is read from ``config`` (a ``ModelConfig`` or a mapping), else from the module's
    attribute of that name; ``neighbor_count`` from ``train_config`` first. Defaults: N 0
    (unknown: any pattern size), gridsize 1, kind 'pinn', K :data:`DEFAULT_NEIGHBOR_COUNT`. The
    module's forward is ``module(x (B, C, N, N), offsets (B, C, 2))["patches"]``, or its
    ``predict_patches(x, offsets)`` when it has one."""
    def get(name: str, default: Any, *sources: Any) -> Any:
        for src in sources:
            v = src.get(name) if isinstance(src, Mapping) else getattr(src, name, None)
            if v is not None:
                return v
        return default

    return (int(get("N", 0, config, module) or 0), int(get("gridsize", 1, config, module)),
            str(get("kind", "pinn", config, module)),
            int(get("neighbor_count", DEFAULT_NEIGHBOR_COUNT, train_config, config, module)))


def resolve_model(model: Any, device: str | torch.device = "auto") -> InferenceModel:
    """Accept a bundle directory, a training ``checkpoint.pt``, a loaded ``Bundle`` or a bare ``nn.Module``.

    A bare module describes itself through ``module.config`` or attributes (see
    :func:`model_geometry`). The module is put in eval mode and moved to ``device``.
    """
    from ptychopinn.model.bundle import Bundle, load_bundle

    dev = resolve_device(device)
    if isinstance(model, (str, os.PathLike)):
        from ptychopinn.model.bundle import resolve_bundle

        path = str(resolve_bundle(model))
        if os.path.isfile(path):  # checkpoint.pt of an interrupted training run
            from ptychopinn.model.bundle import load_checkpoint

            model = load_checkpoint(path, device=str(dev))
        elif not os.path.isdir(path):
            raise BundleError(f"{path}: model bundle directory not found")
        else:
            model = load_bundle(path, device=str(dev))
    if isinstance(model, Bundle):
        module, source = model.model, str(model.run_dir)
        geometry = model_geometry(module, model.model_config, model.train_config)
    elif isinstance(model, nn.Module):
        module, source = model, type(model).__name__
        geometry = model_geometry(module, getattr(model, "config", None))
    else:
        raise ConfigError(f"expected a bundle directory, a Bundle or a torch module; got {type(model).__name__}")
    n, g, kind, k = geometry
    return InferenceModel(module=module.to(dev).eval(), N=n, gridsize=g, kind=kind, neighbor_count=k,
                          device=dev, source=source)


def data_input_scale(diff3d: np.ndarray) -> float:
    """Normalisation r of DESIGN section 2 for the data being reconstructed
    (:func:`ptychopinn.model.scaling.input_scale`, float64 and chunked: no full-size copy)."""
    from ptychopinn.model.scaling import input_scale

    return float(input_scale(diff3d))


def build_groups(positions_yx: np.ndarray, gridsize: int, neighbor_count: int = DEFAULT_NEIGHBOR_COUNT,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(indices (M, C) int64 with column 0 == arange(M), offsets (M, C, 2) float32) for inference;
    ``seed`` picks the C-1 neighbours of each anchor among its K nearest."""
    pos = np.asarray(positions_yx, dtype=np.float64)
    m = pos.shape[0]
    if gridsize == 1:
        return np.arange(m, dtype=np.int64)[:, None], np.zeros((m, 1, 2), dtype=np.float32)
    from ptychopinn.data.grouping import make_groups

    groups = make_groups(pos, gridsize, neighbor_count=max(neighbor_count, gridsize * gridsize),
                         n_groups=None, seed=seed)
    if not np.array_equal(groups.indices[:, 0], np.arange(m)):
        raise ConfigError("internal: inference groups must have one anchor per pattern in order")
    return groups.indices, groups.offsets.astype(np.float32)


def cover_groups(indices: np.ndarray) -> np.ndarray:
    """Rows of ``indices`` (M, C) (one group per anchor pattern) that together contain every pattern:
    a group is kept when its anchor is not yet in a kept group (greedy, in anchor order). Each
    kept group yields C stitched patches, so about M/C...M/2 forward passes replace M."""
    m = indices.shape[0]
    covered = np.zeros(m, dtype=bool)
    keep = np.zeros(m, dtype=bool)
    for a in range(m):  # O(M) bookkeeping, no tensor work; ~50 ms per 1e5 patterns
        if not covered[a]:
            keep[a] = True
            covered[indices[a]] = True
    return np.flatnonzero(keep)


def iter_cover_patches(
    model: InferenceModel, diff3d: np.ndarray, positions_yx: np.ndarray, *, batch_size: int = 256,
    r: float | None = None, seed: int = 0,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(pattern indices (B*C,), patches (B*C, N, N))``: every member patch of the groups that
    :func:`cover_groups` keeps, each to be stitched at its own pattern's position (gridsize > 1)."""
    if model.gridsize < 2:
        raise ConfigError("group cover needs a gridsize > 1 model")
    r = data_input_scale(diff3d) if r is None else float(r)
    indices, offsets = build_groups(positions_yx, model.gridsize, model.neighbor_count, seed)
    rows = cover_groups(indices)
    n = diff3d.shape[-1]
    with torch.inference_mode():
        for i in range(0, rows.size, batch_size):
            sel = rows[i:i + batch_size]
            x = torch.from_numpy(np.ascontiguousarray(diff3d[indices[sel]], dtype=np.float32)).to(model.device) * r
            off = torch.from_numpy(offsets[sel]).to(model.device)
            p = _forward(model.module, x, off)
            yield indices[sel].reshape(-1), p.reshape(-1, n, n)


def _forward(module: nn.Module, x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    if hasattr(module, "predict_patches"):
        return module.predict_patches(x, offsets)
    return module(x, offsets)["patches"]


def iter_patches(
    model: InferenceModel,
    diff3d: np.ndarray,
    positions_yx: np.ndarray,
    *,
    batch_size: int = 256,
    r: float | None = None,
    progress: bool | None = None,
    seed: int = 0,
) -> Iterator[tuple[slice, torch.Tensor]]:
    """Yield ``(patterns slice, patches (B, N, N) complex on model.device)`` chunk by chunk.

    Patches are the anchor (column 0) prediction of each pattern's group, in pattern order;
    ``seed`` is the grouping seed (gridsize > 1).
    ``progress`` None or True shows a tqdm bar on a terminal (or in a notebook) only; False never.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1; got {batch_size}")
    m, n = diff3d.shape[0], diff3d.shape[-1]
    if model.N and n != model.N:
        raise DataError(f"diff3d: pattern size {n} does not match the model's N={model.N}")
    r = data_input_scale(diff3d) if r is None else float(r)
    indices, offsets = build_groups(positions_yx, model.gridsize, model.neighbor_count, seed)
    dev = model.device
    cuda = dev.type == "cuda"
    from tqdm.auto import tqdm

    bar = tqdm(total=m, unit="pat", desc="predict", disable=None if progress in (None, True) else True,
               leave=False, dynamic_ncols=True)
    try:
        with torch.inference_mode():
            for i in range(0, m, batch_size):
                sl = slice(i, min(i + batch_size, m))
                if model.gridsize == 1:
                    x_np = diff3d[sl][:, None]
                else:
                    x_np = diff3d[indices[sl]]
                x = torch.from_numpy(np.ascontiguousarray(x_np, dtype=np.float32))
                off = torch.from_numpy(offsets[sl])
                if cuda:
                    x = x.pin_memory().to(dev, non_blocking=True)
                    off = off.to(dev, non_blocking=True)
                x = x * r
                p = _forward(model.module, x, off)
                if p.ndim != 4 or p.shape[0] != x.shape[0] or p.shape[-2:] != (n, n):
                    raise ConfigError(f"model returned patches of shape {tuple(p.shape)}; "
                                      f"expected ({x.shape[0]}, C, {n}, {n})")
                yield sl, p[:, 0]
                bar.update(sl.stop - sl.start)
    finally:
        bar.close()


def predict(
    model: Any,
    dataset: Any,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    *,
    progress: bool | None = None,
    seed: int = 0,
) -> np.ndarray:
    """All predicted patches (M, N, N) complex64 (anchor patch per pattern), chunked through the model.

    ``model``: bundle directory, ``Bundle`` or ``nn.Module``; ``dataset``: a ``PtychoDataset`` or
    an NPZ path. Holds every output patch in memory: use :func:`ptychopinn.inference.reconstruct`
    (which stitches chunk by chunk) for large scans. ``seed``: the grouping seed (gridsize > 1).
    """
    im = model if isinstance(model, InferenceModel) else resolve_model(model, device)
    ds = as_dataset(dataset)
    out = np.empty((ds.n_patterns, ds.N, ds.N), dtype=np.complex64)
    for sl, p in iter_patches(im, ds.diff3d, ds.positions_yx, batch_size=batch_size, progress=progress,
                                 seed=seed):
        out[sl] = p.to(torch.complex64).cpu().numpy()
    return out
