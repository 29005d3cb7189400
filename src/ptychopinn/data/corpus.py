"""The general-model training corpus: many small simulated scans, generated on the fly and seeded.

Scan ``i`` of a corpus is a pure function of ``(CorpusConfig, i)``: an object of a random texture
and amplitude-phase relation (:mod:`ptychopinn.physics.families`), a random probe (procedural kinds
or a measured probe file, resampled at a random zoom), a dose drawn log-uniformly, and a random,
raster or jittered scan whose step is a random fraction of the probe diameter. Nothing is stored:
the trainer draws scans as it goes, so the corpus size is set by the training budget, not by disk.

Natural images, the real object of an experiment and the Siemens star never enter the corpus: they
are the held-out families of ``benchmarks/bench_quality.py --preset heldout``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ptychopinn._config import Config, opt
from ptychopinn.data.contract import PtychoDataset, load_probe
from ptychopinn.errors import ConfigError
from ptychopinn.physics import families
from ptychopinn.physics import scan as scan_mod


@dataclass(frozen=True)
class CorpusConfig(Config):
    """What the corpus draws from. ``probe_files``: NPZ files with a measured ``probeGuess``
    (each drawn with weight ``probe_file_weight`` in total, at a random zoom in ``probe_zoom``);
    ``step_fraction``: scan step / probe diameter range (0.2 dense .. 0.8 sparse)."""

    N: int = opt(64, "pattern size", check="positive")
    patterns_per_scan: int = opt(128, "patterns of each corpus scan", check="positive")
    textures: tuple[str, ...] = families.TEXTURES
    relations: tuple[str, ...] = families.RELATIONS
    probe_kinds: tuple[str, ...] = families.PROBE_KINDS
    probe_files: tuple[str, ...] = ()
    probe_file_weight: float = 0.25
    probe_zoom: tuple[float, float] = (0.7, 1.1)
    dose_range: tuple[float, float] = opt((1e3, 1e9), "photons per pattern, drawn log-uniformly", check="doses",
                                          metavar="LOW,HIGH")
    scans: tuple[str, ...] = ("random", "raster", "jitter")
    step_fraction: tuple[float, float] = (0.2, 0.8)
    seed: int = opt(0, "seed of the corpus", check="seed", flag="--corpus-seed")

    def __post_init__(self) -> None:
        bad = [t for t in self.textures if t not in families.TEXTURES]
        bad += [r for r in self.relations if r not in families.RELATIONS]
        bad += [k for k in self.probe_kinds if k not in families.PROBE_KINDS]
        bad += [s for s in self.scans if s not in ("random", "raster", "jitter")]
        if bad:
            raise ConfigError(f"corpus: unknown texture, relation, probe kind or scan {bad[0]!r}")
        if not (self.textures and self.relations and self.scans and (self.probe_kinds or self.probe_files)):
            raise ConfigError("corpus: textures, relations, scans and probes must not be empty")
        lo, hi = self.dose_range
        if not 0 < lo <= hi:
            raise ConfigError(f"corpus: dose_range must be 0 < low <= high; got {self.dose_range}")
        if not 0 < self.step_fraction[0] <= self.step_fraction[1]:
            raise ConfigError(f"corpus: step_fraction must be 0 < low <= high; got {self.step_fraction}")
        if self.patterns_per_scan < 8 or self.N < 16:
            raise ConfigError("corpus: patterns_per_scan >= 8 and N >= 16 are required")
        if not 0 <= self.probe_file_weight <= 1:
            raise ConfigError("corpus: probe_file_weight must be in [0, 1]")


def probe_diameter(probe: np.ndarray) -> float:
    """Diameter (px) of the disc holding 90 % of sum|P|^2 around the probe's centre of mass."""
    e = np.abs(probe) ** 2
    n = e.shape[0]
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    tot = e.sum()
    cy, cx = (e * yy).sum() / tot, (e * xx).sum() / tot
    r = np.hypot(yy - cy, xx - cx).ravel()
    order = np.argsort(r)
    k = np.searchsorted(np.cumsum(e.ravel()[order]) / tot, 0.9)
    return 2.0 * float(r[order][min(k, r.size - 1)])


def zoom_probe(probe: np.ndarray, n: int, factor: float) -> np.ndarray:
    """The probe magnified by ``factor`` (cubic spline, real and imaginary parts), centred in (n, n)."""
    re = ndimage.zoom(probe.real, factor, order=3)
    im = ndimage.zoom(probe.imag, factor, order=3)
    z = re + 1j * im
    out = np.zeros((n, n), np.complex128)
    m = z.shape[0]
    if m >= n:
        a = (m - n) // 2
        out[:] = z[a:a + n, a:a + n]
    else:
        a = (n - m) // 2
        out[a:a + m, a:a + m] = z
    return out


class Corpus:
    """Scans of a :class:`CorpusConfig` by index; measured probe files are read once."""

    def __init__(self, cfg: CorpusConfig) -> None:
        self.cfg = cfg
        self._file_probes = [load_probe(p) for p in cfg.probe_files]

    def _probe(self, rng: np.random.Generator) -> tuple[np.ndarray, str]:
        n = self.cfg.N
        if self._file_probes and (not self.cfg.probe_kinds or rng.random() < self.cfg.probe_file_weight):
            i = int(rng.integers(len(self._file_probes)))
            p = self._file_probes[i]
            zoom = rng.uniform(*self.cfg.probe_zoom) * n / p.shape[0]
            return zoom_probe(p / np.abs(p).max(), n, zoom), f"file{i}"
        kind = str(rng.choice(self.cfg.probe_kinds))
        return families.random_probe(n, kind, rng), kind

    def scan(self, index: int) -> PtychoDataset:
        """Scan ``index`` (deterministic): a simulated dataset with ground truth and its recipe in
        ``metadata['corpus']``."""
        from ptychopinn.data.simulate import simulate_patterns

        cfg = self.cfg
        n = cfg.N
        rng = np.random.default_rng(np.random.SeedSequence([int(cfg.seed), int(index)]))
        probe, probe_kind = self._probe(rng)
        diam = max(4.0, probe_diameter(probe))
        frac = rng.uniform(*cfg.step_fraction)
        step = max(1.0, frac * diam)
        kind = str(rng.choice(cfg.scans))
        m = cfg.patterns_per_scan
        side = int(math.ceil(math.sqrt(m)))
        size = int(math.ceil(n + (side + 0.5) * step)) + 4
        obj, desc = families.random_object(size, rng, cfg.textures, cfg.relations)
        if kind == "random":
            pos = scan_mod.random_scan(obj.shape, n, m, rng, border=1.0)
        elif kind == "raster":
            pos = scan_mod.raster_scan(obj.shape, n, step, border=1.0)[:m]
        else:
            pos = scan_mod.jitter_scan(obj.shape, n, step, rng, border=1.0)[:m]
        dose = math.exp(rng.uniform(math.log(cfg.dose_range[0]), math.log(cfg.dose_range[1])))
        noise_seed = int(rng.integers(2 ** 62))
        diff, patches, s = simulate_patterns(obj, probe, pos, dose, noise_seed, threads=1)
        meta: dict[str, Any] = {
            "generator": "ptychopinn.corpus", "nphotons_requested": dose, "dose_scale": s,
            "corpus": {"index": int(index), "seed": int(cfg.seed), "probe": probe_kind, "scan": kind,
                       "step_px": step, "step_fraction": frac, "probe_diameter_px": diam, **desc},
        }
        return PtychoDataset(diff3d=diff, probe=probe, xcoords=pos[:, 1].copy(), ycoords=pos[:, 0].copy(),
                             object=obj, ground_truth_patches=patches[..., None], metadata=meta)
