"""Photon-grid datasets (seed 000): one object, probe and scan simulated at several doses.

Every dose shares the object, scan and probe (same object/scan seed streams); only the noise stream
differs per dose. It is derived from the seed and the dose *value* (its float64 bits), not its
position in the list, and no file holds a wall-clock time, so the same command gives byte-identical
files and ``data_p1e5.npz`` is the same file whether made alone or in a sweep. Writes
``data_p1eK.npz`` files (deflate-compressed) plus ``manifest.json`` / ``manifest.md`` with SHA-256 and the timings.
Every dose's settings are checked before the first simulation, and the files are built in a
staging folder next to the root and moved into place together at the end, so a failed or killed
run leaves no partial grid (:func:`ptychopinn._io.staged_dir`).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn._config import Config, field_like, opt
from ptychopinn._io import sha256_file, staged_dir, write_json_atomic, write_text_atomic
from ptychopinn.data.simulate import SimulationConfig
from ptychopinn.errors import ConfigError

DEFAULT_DOSES = (1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9)


def dose_label(dose: float) -> str:
    """1e5 -> 'p1e5'; 2.5e4 -> 'p2.5e4' (the file-name tag of a dose)."""
    exp = int(math.floor(math.log10(dose)))
    mant = dose / 10 ** exp
    m = f"{mant:.6g}"
    return f"p{m}e{exp}"


def noise_seed(seed: int, dose: float) -> int:
    """The noise-stream seed of one dose: from the study seed and the dose's float64 bits."""
    bits = int(np.float64(dose).view(np.uint64))
    return int(np.random.SeedSequence([int(seed), 1, bits]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class PhotonGridConfig(Config):
    """One object, probe and scan at several doses (the fields it shares with
    :class:`~ptychopinn.data.simulate.SimulationConfig` mean the same)."""

    doses: tuple[float, ...] = opt(DEFAULT_DOSES, "comma-separated photons per pattern", check="doses")
    n_images: int = field_like(SimulationConfig, "n_images", 5000)
    N: int = field_like(SimulationConfig, "N")
    object_size: int = field_like(SimulationConfig, "object_size", 232)
    object_kind: str = field_like(SimulationConfig, "object_kind")
    object_from: str | None = field_like(SimulationConfig, "object_from")
    probe_from: str | None = field_like(SimulationConfig, "probe_from")
    scan: str = field_like(SimulationConfig, "scan")
    seed: int = field_like(SimulationConfig, "seed")

    def __post_init__(self) -> None:
        if not self.doses or any(not (math.isfinite(d) and d > 0) for d in self.doses):
            raise ConfigError(f"doses must be a non-empty list of positive, finite photon counts; got "
                              f"{list(self.doses)}")
        if len(set(self.doses)) != len(self.doses):
            raise ConfigError("doses must be distinct")


def photon_grid(config: PhotonGridConfig, root: str | os.PathLike, progress: bool = True) -> dict[str, Any]:
    """Simulate every dose of ``config`` into ``root``; return the manifest dict."""
    from tqdm.auto import tqdm

    from ptychopinn.data.simulate import simulate

    root = Path(root)
    base = SimulationConfig(
        n_images=config.n_images, nphotons=config.doses[0], N=config.N, object_size=config.object_size,
        object_kind=config.object_kind, object_from=config.object_from, probe_from=config.probe_from,
        scan=config.scan, seed=config.seed,
    )
    seeds = base.stream_seeds()
    # every dose's configuration is built (and so checked) before the first simulation
    cfgs = [dataclasses.replace(base, nphotons=float(dose), object_seed=seeds["object"], scan_seed=seeds["scan"],
                                noise_seed=noise_seed(config.seed, dose)) for dose in config.doses]
    with staged_dir(root) as stage:
        return _simulate_grid(config, cfgs, seeds, stage, progress, tqdm, simulate)


def _simulate_grid(config: PhotonGridConfig, cfgs: list[Any], seeds: dict[str, int], root: Path,
                   progress: bool, tqdm: Any, simulate: Any) -> dict[str, Any]:
    entries = []
    obj = probe = None
    for dose, cfg in tqdm(list(zip(config.doses, cfgs)), desc="photon grid", disable=None if progress else True):
        t0 = time.perf_counter()
        ds = simulate(cfg, obj=obj, probe=probe)
        obj, probe = ds.object, ds.probe  # reuse: identical object/probe across doses by construction
        ds.metadata["photon_grid"] = {"dose": float(dose)}
        path = root / f"data_{dose_label(dose)}.npz"
        ds.save(path, compress=True)  # deflate: the noisy patterns shrink several-fold, bytes stay reproducible
        entries.append({
            "file": path.name, "dose": float(dose), "patterns": ds.n_patterns,
            "diff3d_shape": list(ds.diff3d.shape), "measured_photons_per_pattern": ds.photons_per_pattern(),
            "sha256": sha256_file(path), "size_bytes": path.stat().st_size, "seconds": time.perf_counter() - t0,
        })
    from ptychopinn import __version__

    manifest = {"generator": "ptychopinn photon-grid", "package_version": __version__,
                "config": config.to_dict(), "seeds": seeds, "datasets": entries}
    write_json_atomic(root / "manifest.json", manifest)
    write_text_atomic(root / "manifest.md", render_manifest_md(manifest))
    return manifest


def render_manifest_md(manifest: dict[str, Any]) -> str:
    lines = [
        "# Photon-grid datasets", "",
        f"Generator: {manifest['generator']} {manifest['package_version']}; seed {manifest['config']['seed']}; "
        f"{manifest['config']['object_kind']} object {manifest['config']['object_size']} px, N = {manifest['config']['N']}.",
        "", "| file | dose | patterns | shape | measured photons/pattern | SHA-256 | size (bytes) |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in manifest["datasets"]:
        lines.append(f"| {e['file']} | {e['dose']:.0e} | {e['patterns']} | {tuple(e['diff3d_shape'])} | "
                     f"{e['measured_photons_per_pattern']:.4g} | `{e['sha256']}` | {e['size_bytes']} |")
    return "\n".join(lines) + "\n"
