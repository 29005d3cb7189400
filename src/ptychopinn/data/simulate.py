"""Dataset simulator: object + probe + scan -> Poisson diffraction (DESIGN section 2).

``seed`` feeds three independent streams (object, scan, noise) through ``numpy.random.SeedSequence``;
``scan_seed`` / ``noise_seed`` / ``object_seed`` override single streams, so two doses can share one
object and one trajectory while their noise differs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ptychopinn._config import Config, opt
from ptychopinn.data.contract import (
    PtychoDataset,
    check_positions_inside,
    load_object,
    load_probe,
)
from ptychopinn.errors import ConfigError
from ptychopinn.physics import dose
from ptychopinn.physics import objects as objects_mod
from ptychopinn.physics import scan as scan_mod
from ptychopinn.physics.forward import diffraction_intensity, extract_patches
from ptychopinn.physics.probe import default_probe

OBJECT_KINDS = ("lines", "grf", "siemens")
SCAN_KINDS = ("random", "raster", "jitter")
#: largest dose numpy's Poisson sampler handles (its limit is about 9.2e18 counts per pixel)
MAX_NPHOTONS = 1e18


@dataclass(frozen=True)
class SimulationConfig(Config):
    """Everything that defines a simulated dataset (round-trips to JSON)."""

    n_images: int = opt(2000, "number of diffraction patterns", check="positive")
    nphotons: float = opt(1e9, "mean total photons per pattern", check="dose")
    N: int = opt(64, "pattern / probe size", check="positive")
    object_size: int = opt(128, "synthetic object side (px)", check="positive")
    object_kind: str = opt("lines", "synthetic object", choices=OBJECT_KINDS, flag="--object")
    object_from: str | None = opt(None, "NPZ with objectGuess to use as the object (e.g. a real reconstruction)")
    probe_from: str | None = opt(None, "NPZ with probeGuess (resampled to N if needed)")
    probe_diameter: float | None = None  # default N/3
    probe_defocus: float = opt(0.0, "quadratic phase of the default probe (rad at its edge)", check="finite")
    scan: str = opt("random", "scan pattern", choices=SCAN_KINDS)
    step: float | None = opt(None, "raster/jitter step in px (default: none = fits --n-images)", check="positive")
    border: float = opt(0.0, "extra margin (px) kept free at the object edge", check="non_negative")
    seed: int = opt(0, "seed of the object, scan and noise streams", check="seed")
    object_seed: int | None = opt(None, "object stream seed (overrides --seed)", check="seed")
    scan_seed: int | None = opt(None, "scan stream seed (overrides --seed)", check="seed")
    noise_seed: int | None = opt(None, "noise stream seed (overrides --seed)", check="seed")
    noiseless: bool = opt(False, "store sqrt(expected counts) without Poisson noise")
    chunk: int = 1024

    def __post_init__(self) -> None:
        if self.object_kind not in OBJECT_KINDS:
            raise ConfigError(f"object kind must be one of {OBJECT_KINDS}; got {self.object_kind!r}")
        if self.scan not in SCAN_KINDS:
            raise ConfigError(f"scan must be one of {SCAN_KINDS}; got {self.scan!r}")
        if self.n_images < 1 or self.N < 4 or not (self.nphotons > 0 and math.isfinite(self.nphotons)):
            raise ConfigError(f"n_images >= 1, N >= 4 and a finite nphotons > 0 are required; got n_images="
                              f"{self.n_images}, N={self.N}, nphotons={self.nphotons}")
        if not self.noiseless and self.nphotons > MAX_NPHOTONS:
            raise ConfigError(f"nphotons must be <= {MAX_NPHOTONS:.0e} with Poisson noise (the sampler's "
                              f"range); got {self.nphotons:g}")
        for name in ("seed", "object_seed", "scan_seed", "noise_seed"):
            v = getattr(self, name)
            if v is not None and not 0 <= int(v) < 2 ** 63:
                raise ConfigError(f"{name} must be an integer in [0, 2**63); got {v}")
        if self.step is not None and self.step <= 0:
            raise ConfigError("step must be > 0")


    def stream_seeds(self) -> dict[str, int]:
        """The effective seed of each random stream (object, scan, noise)."""
        kids = np.random.SeedSequence(self.seed).spawn(3)
        derived = [int(k.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for k in kids]
        return {
            "object": self.object_seed if self.object_seed is not None else derived[0],
            "scan": self.scan_seed if self.scan_seed is not None else derived[1],
            "noise": self.noise_seed if self.noise_seed is not None else derived[2],
        }


def make_scan(cfg: SimulationConfig, object_shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(M, 2) patch centres (y, x) for the configured trajectory."""
    if cfg.scan == "random":
        return scan_mod.random_scan(object_shape, cfg.N, cfg.n_images, rng, cfg.border)
    h, w = object_shape
    step = cfg.step
    if step is None:  # spacing that gives about n_images positions
        span = (h - cfg.N - 2 * cfg.border) * (w - cfg.N - 2 * cfg.border)
        step = max(1.0, math.sqrt(max(span, 1) / cfg.n_images))
        # shrink until the raster (with the jitter margin) holds at least n_images positions
        margin = step / 4.0 if cfg.scan == "jitter" else 0.0
        while step > 1.0 and len(scan_mod.raster_scan(object_shape, cfg.N, step, cfg.border + margin)) < cfg.n_images:
            step *= 0.97
            margin = step / 4.0 if cfg.scan == "jitter" else 0.0
    if cfg.scan == "raster":
        pos = scan_mod.raster_scan(object_shape, cfg.N, step, cfg.border)
    else:
        pos = scan_mod.jitter_scan(object_shape, cfg.N, step, rng, border=cfg.border)
    return pos[: cfg.n_images]


#: patterns per noise block; each block draws from its own child of the noise seed, so the draws
#: do not depend on chunking or on the number of threads
NOISE_BLOCK = 256


def _poisson_blocks(lam_src: np.ndarray, s2: float, out: np.ndarray, seed: int, threads: int) -> None:
    """out = sqrt(Poisson(s2 * lam_src)) block-wise, in parallel threads (numpy releases the GIL)."""
    m = lam_src.shape[0]
    starts = list(range(0, m, NOISE_BLOCK))
    children = np.random.SeedSequence(seed).spawn(len(starts))

    def work(i: int) -> None:
        a = starts[i]
        lam = np.multiply(lam_src[a:a + NOISE_BLOCK], s2, dtype=np.float64)
        k = np.random.default_rng(children[i]).poisson(lam)
        np.sqrt(k, out=out[a:a + NOISE_BLOCK], casting="unsafe")

    if threads <= 1 or len(starts) == 1:
        for i in range(len(starts)):
            work(i)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads) as ex:
            list(ex.map(work, range(len(starts))))


def simulate_patterns(
    obj: np.ndarray, probe: np.ndarray, positions_yx: np.ndarray, nphotons: float,
    rng: np.random.Generator | int | None, chunk: int = 1024, threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Simulate amplitudes sqrt(k), k ~ Poisson(s^2 |F(P O_patch)|^2), for the given centres.

    Returns (diff3d float32 (M,N,N), object patches complex64 (M,N,N), dose scale s).
    ``rng``: an int noise seed (blocks of NOISE_BLOCK patterns drawn in parallel threads from
    independent children of that seed), a ``numpy.random.Generator`` (drawn sequentially), or
    ``None`` for the noiseless amplitudes sqrt(lam).
    """
    n = probe.shape[0]
    m = positions_yx.shape[0]
    # single precision for the Fourier work (relative error ~1e-7, 3x faster than double);
    # the dose scaling and the Poisson draw run in float64
    obj_t = torch.from_numpy(np.ascontiguousarray(obj, dtype=np.complex64))
    probe_t = torch.from_numpy(np.ascontiguousarray(probe, dtype=np.complex64))
    pos_t = torch.from_numpy(np.ascontiguousarray(positions_yx, dtype=np.float64))
    inten = np.empty((m, n, n), dtype=np.float32)
    patches = np.empty((m, n, n), dtype=np.complex64)
    for a in range(0, m, chunk):
        p = extract_patches(obj_t, pos_t[a:a + chunk], n)
        patches[a:a + chunk] = p.numpy()
        inten[a:a + chunk] = diffraction_intensity(probe_t, p).numpy()
    try:
        s = dose.dose_scale(inten, nphotons)
    except ValueError:
        raise ConfigError("object x probe gives zero intensity; cannot scale to a dose") from None
    diff = np.empty((m, n, n), dtype=np.float32)
    if isinstance(rng, (int, np.integer)):
        _poisson_blocks(inten, s * s, diff, int(rng), threads or min(2, os.cpu_count() or 1))
        return diff, patches, s
    for a in range(0, m, chunk):
        lam = np.multiply(inten[a:a + chunk], s * s, dtype=np.float64)
        k = lam if rng is None else rng.poisson(lam)
        np.sqrt(k, out=diff[a:a + chunk], casting="unsafe")
    return diff, patches, s


def simulate(
    config: SimulationConfig | None = None,
    *,
    obj: np.ndarray | None = None,
    probe: np.ndarray | None = None,
    **overrides: Any,
) -> PtychoDataset:
    """Simulate a dataset. Pass a :class:`SimulationConfig` and/or keyword overrides of its fields;
    ``obj`` / ``probe`` arrays take precedence over the configured sources."""
    cfg = config or SimulationConfig()
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    seeds = cfg.stream_seeds()
    if obj is None:
        if cfg.object_from:
            obj = load_object(cfg.object_from)
        else:
            obj = objects_mod.make_object(cfg.object_kind, cfg.object_size, np.random.default_rng(seeds["object"]))
    obj = np.asarray(obj, dtype=np.complex128)
    if probe is None:
        probe = (load_probe(cfg.probe_from, cfg.N) if cfg.probe_from
                 else default_probe(cfg.N, cfg.probe_diameter, cfg.probe_defocus))
    probe = np.asarray(probe, dtype=np.complex128)
    if probe.shape != (cfg.N, cfg.N):
        raise ConfigError(f"probe shape {probe.shape} does not match N={cfg.N}")
    try:
        pos = make_scan(cfg, obj.shape, np.random.default_rng(seeds["scan"]))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    check_positions_inside(obj.shape, pos[:, 0], pos[:, 1], cfg.N, source="simulation")
    noise = None if cfg.noiseless else int(seeds["noise"])
    diff, patches, s = simulate_patterns(obj, probe, pos, cfg.nphotons, noise, cfg.chunk)
    measured = dose.mean_total_counts(diff)
    from ptychopinn import __version__

    meta = {
        "generator": "ptychopinn.simulate",
        "package_version": __version__,
        "config": cfg.to_dict(),
        "seeds": {"seed": cfg.seed, **{f"{k}_seed": v for k, v in seeds.items()}},
        "nphotons_requested": cfg.nphotons,
        "nphotons_measured": measured,
        "dose_scale": s,
        "object_shape": list(obj.shape),
        "probe_normalisation": {"method": "as generated (peak amplitude 1)" if not cfg.probe_from
                                else "as stored in probe file", "factor": 1.0},
        "noise": "none" if cfg.noiseless else "poisson",
        "numpy_version": np.__version__,
        "torch_version": torch.__version__,
    }
    json.dumps(meta)  # fail early if anything is not JSON
    return PtychoDataset(
        diff3d=diff, probe=probe, xcoords=pos[:, 1].copy(), ycoords=pos[:, 0].copy(), object=obj,
        ground_truth_patches=patches[..., None], metadata=meta,
    )
