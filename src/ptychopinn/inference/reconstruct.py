"""End-to-end reconstruction: chunked prediction accumulated straight into the stitching canvas.

Neither all network inputs nor all predicted patches are ever held at once: each chunk of
``batch_size`` patterns is normalised, predicted and scatter-added into the canvas (on the model's
device), then dropped. Outputs (``reconstruction.npz``, ``amplitude.png``, ``phase.png``) are written
under temporary names and renamed into place only when all of them are complete.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ptychopinn._observe import notify
from ptychopinn.data.contract import as_dataset
from ptychopinn.data.reconstruction import Reconstruction
from ptychopinn.errors import BundleError, ConfigError, DataError, MissingProbeError
from ptychopinn.inference.predict import (
    InferenceModel,
    data_input_scale,
    iter_cover_patches,
    iter_patches,
    resolve_device,
    resolve_model,
)
from ptychopinn.inference.stitch import Stitcher, check_crop, default_crop

NPZ_NAME = "reconstruction.npz"
PNG_NAMES = ("amplitude.png", "phase.png")
#: ``groups=`` of :func:`reconstruct` (gridsize > 1)
GROUPINGS = ("auto", "anchor", "cover")
#: ``label`` of the :class:`~ptychopinn.data.reconstruction.Reconstruction` this stage returns
LABEL = "PtychoPINN"


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def reconstruct(
    model: Any,
    data: Any,
    out_dir: str | os.PathLike | None = None,
    stitch_crop: int | None = None,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    *,
    subpixel: str = "fourier",
    progress: bool | None = None,
    seed: int = 0,
    observers: tuple[Any, ...] | list[Any] = (),
    groups: str = "auto",
) -> Reconstruction:
    """Predict every pattern of ``data`` with ``model`` and stitch the patches into one object.

    ``model``: bundle directory, loaded ``Bundle`` or ``nn.Module`` (see
    :func:`~ptychopinn.inference.predict.resolve_model`); ``data``: NPZ path or ``PtychoDataset``.
    ``stitch_crop``: kept central square (default ``round(N*20/64)``); ``subpixel``: ``fourier`` or
    ``round`` (see :mod:`ptychopinn.inference.stitch`). With ``out_dir``, writes
    ``reconstruction.npz``, ``amplitude.png`` and ``phase.png`` there. ``seed``: the grouping
    seed of gridsize > 1 models (which C-1 of the K nearest neighbours join each anchor).

    ``observers`` (:mod:`ptychopinn._observe`) are called with keyword arguments:
    ``setup(ds, model, r)`` (model: the :class:`InferenceModel`), ``batch(patterns, patches)``
    for every chunk (patterns: slice of pattern indices; patches: anchor patches on the device) and
    ``end(reconstruction, ds, out_dir)`` after the outputs are written.

    ``groups`` (gridsize > 1): ``anchor`` runs one group per pattern and stitches its anchor patch;
    ``cover`` runs only the groups needed to cover every pattern once
    (:func:`~ptychopinn.inference.predict.cover_groups`) and stitches all their members' patches
    (2-4x fewer forward passes; the observers' ``patterns`` is then an index array); ``auto``:
    ``cover`` for probe-conditioned (general) models, where it was measured as good and 3x faster,
    ``anchor`` otherwise.
    """
    if groups not in GROUPINGS:
        raise ConfigError(f"groups must be 'auto', 'anchor' or 'cover'; got {groups!r}")
    t0 = time.perf_counter()
    if int(batch_size) < 1:
        raise ConfigError(f"batch size must be >= 1; got {batch_size}")
    im, ds, crop = _prepare(model, data, stitch_crop, device)
    pos = ds.positions_yx
    st = Stitcher.for_centres(pos, ds.N, crop, subpixel=subpixel, device=im.device)
    try:
        r = data_input_scale(ds.diff3d)
    except DataError as exc:
        raise DataError(f"{ds.source}: key 'diff3d': {exc}") from None
    t_setup = time.perf_counter()
    notify(observers, "setup", ds=ds, model=im, r=r)

    groups, t_pred, t_stitch = _predict_into(st, im, ds, groups, int(batch_size), r, progress, int(seed),
                                             observers)
    t1 = time.perf_counter()
    canvas, origin, counts = st.result()
    t_stitch += time.perf_counter() - t1
    total = time.perf_counter() - t0
    timing = {
        "setup_s": t_setup - t0, "predict_s": t_pred, "stitch_s": t_stitch, "total_s": total,
        "patterns_per_s": ds.n_patterns / max(t_pred + t_stitch, 1e-12),
    }
    meta = _metadata(im, ds, groups, crop, subpixel, r, batch_size, seed, timing)
    rec = Reconstruction(object=canvas, origin=origin, label=LABEL, counts=counts, stitch_crop=crop, input_scale=r,
                         timing=timing, metadata=meta)
    if out_dir is not None:
        write_outputs(rec, out_dir, ds.xcoords, ds.ycoords)
    notify(observers, "end", reconstruction=rec, ds=ds, out_dir=out_dir)
    return rec


def load_scan(model: str | os.PathLike, path: str | os.PathLike, options: Any = None) -> Any:
    """The dataset at ``path`` read for reconstruction with the bundle ``model`` (a directory or a
    built-in name): a file without a probe is read with the bundle's probe (recorded as the probe
    source), which the network does not use; a probe-conditioned (general) model reconstructs
    with the scan's own probe, so there a missing probe stays an error. ``options``: the
    :class:`~ptychopinn.data.cxi.InputOptions` of :func:`~ptychopinn.data.contract.load_dataset`."""
    from ptychopinn.data.contract import load_dataset
    from ptychopinn.model.bundle import load_bundle, resolve_bundle

    try:
        return load_dataset(path, options=options)
    except MissingProbeError:
        if getattr(options, "probe_from", None):
            raise
        bundle = load_bundle(resolve_bundle(model))
        if bundle.model_config.probe_conditioned:
            raise MissingProbeError(f"{path}: no probe in this file, and the general model {Path(model).name} reconstructs "
                            "with the scan's own probe: pass --probe-from FILE") from None
    return load_dataset(path, options=options, probe=bundle.probe, probe_source=f"{model}: bundle probe")


def _probe_conditioned(im: InferenceModel) -> bool:
    """A general model: it takes each scan's probe as an input."""
    return bool(getattr(getattr(im.module, "config", None), "probe_conditioned", False))


def _prepare(model: Any, data: Any, stitch_crop: int | None,
             device: str | torch.device) -> tuple[InferenceModel, Any, int]:
    """The model, the dataset and the stitch crop, checked against each other (cheap checks
    first, then the data, then the (possibly large) model)."""
    dev = resolve_device(device)
    if isinstance(model, (str, os.PathLike)):
        from ptychopinn.model.bundle import resolve_bundle

        model = resolve_bundle(model)
    if isinstance(model, (str, os.PathLike)) and not os.path.exists(model):
        raise BundleError(f"{model}: model bundle directory not found")
    ds = as_dataset(data)
    crop = default_crop(ds.N) if stitch_crop is None else check_crop(ds.N, stitch_crop)
    im: InferenceModel = model if isinstance(model, InferenceModel) else resolve_model(model, dev)
    n = ds.N
    if _probe_conditioned(im):
        im.module.set_probe(ds.probe)  # a general model reconstructs each scan with its own probe
    if im.N and n != im.N:
        raise DataError(f"{ds.source}: key 'diff3d': pattern size {n} does not match the model's N={im.N}")
    if ds.n_patterns < im.gridsize ** 2:
        raise DataError(f"{ds.source}: key 'diff3d': {ds.n_patterns} patterns are too few for "
                        f"gridsize {im.gridsize} groups")
    return im, ds, crop


def _predict_into(st: Stitcher, im: InferenceModel, ds: Any, groups: str, batch_size: int, r: float,
                  progress: bool | None, seed: int, observers: Any) -> tuple[str, float, float]:
    """Predict the patches chunk by chunk and add them to ``st``; returns the grouping used
    (``anchor`` or ``cover``) and the prediction and stitching seconds."""
    pos = ds.positions_yx
    t_pred = t_stitch = 0.0
    _sync(im.device)
    tick = time.perf_counter()
    if groups == "auto":
        groups = "cover" if _probe_conditioned(im) else "anchor"
    if groups == "cover" and im.gridsize > 1:
        chunks = iter_cover_patches(im, ds.diff3d, pos, batch_size=batch_size, r=r, seed=seed)
    else:
        groups = "anchor"
        chunks = iter_patches(im, ds.diff3d, pos, batch_size=batch_size, r=r, progress=progress, seed=seed)
    for sl, patches in chunks:
        _sync(im.device)
        t1 = time.perf_counter()
        t_pred += t1 - tick
        st.add(patches, pos[sl])
        notify(observers, "batch", patterns=sl, patches=patches)
        _sync(im.device)
        tick = time.perf_counter()
        t_stitch += tick - t1
    return groups, t_pred, t_stitch


def _metadata(im: InferenceModel, ds: Any, groups: str, crop: int, subpixel: str, r: float, batch_size: int,
              seed: int, timing: dict[str, float]) -> dict[str, Any]:
    """The ``metadata`` of a :class:`Reconstruction` (written into ``reconstruction.npz``)."""
    meta = {
        "model": im.source, "kind": im.kind, "N": ds.N, "gridsize": im.gridsize,
        "group_patch_stitched": ("own patch" if im.gridsize == 1 else "anchor (column 0) of one group per pattern"
                                 if groups == "anchor" else "every member of a covering set of groups"),
        "data": ds.source, "n_patterns": ds.n_patterns, "stitch_crop": crop, "subpixel": subpixel,
        "input_scale_r": r, "input_scale_source": "data being reconstructed",
        "origin_convention": "canvas[i, j] == object[origin_y + i, origin_x + j]",
        "device": str(im.device), "batch_size": int(batch_size), "grouping_seed": int(seed), "timing": timing,
    }
    from ptychopinn._plot import pixel_size_of

    if pixel_size_of(ds.metadata) is not None:  # real data: the PNGs get a scale bar
        meta["object_pixel_m"] = pixel_size_of(ds.metadata)
    from ptychopinn import __version__

    meta["package_version"] = __version__
    return meta


def write_outputs(rec: Reconstruction, out_dir: str | os.PathLike, xcoords: np.ndarray,
                  ycoords: np.ndarray) -> dict[str, Path]:
    """reconstruction.npz + amplitude/phase PNGs; temporary files renamed only if all succeed."""
    from ptychopinn._io import atomic_path

    out = Path(out_dir)
    paths = {"npz": out / NPZ_NAME, "amplitude_png": out / PNG_NAMES[0], "phase_png": out / PNG_NAMES[1]}
    with contextlib.ExitStack() as stack:
        tmp = {k: stack.enter_context(atomic_path(p)) for k, p in paths.items()}
        with open(tmp["npz"], "wb") as fh:
            np.savez(fh, **rec.arrays(xcoords=np.asarray(xcoords, dtype=np.float64),
                                      ycoords=np.asarray(ycoords, dtype=np.float64)))
        from ptychopinn._plot import image_png, pixel_size_of

        amplitude = rec.amplitude
        px = pixel_size_of(rec.metadata)
        image_png(amplitude, "amplitude", tmp["amplitude_png"], mask=rec.coverage, origin=rec.origin,
                  title="Amplitude", pixel_size=px)
        image_png(rec.phase, "phase", tmp["phase_png"], mask=rec.coverage, origin=rec.origin,
                  title="Phase (global offset removed)", pixel_size=px, weight=amplitude)
    return paths
