"""The end-to-end demo: simulate -> train a small PINN -> reconstruct held-out data -> pty-chi
(when installed) -> compare -> one summary figure. Every step is a plain library call.

The data: one lines object scanned on a jittered raster; the scan is split along y, the PINN is
trained on the top half and reconstructs the bottom half (no test position lies in the training
half); pty-chi reconstructs the same bottom half.

Every setting is checked before the simulation, and all files are built in a staging folder next
to the output directory and moved into place at the end (:func:`ptychopinn._io.staged_dir`): a
failed or killed demo leaves no partial output.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn._io import staged_dir, write_json_atomic


@dataclass(frozen=True)
class DemoConfig:
    N: int = 32
    object_size: int = 160
    step: float = 3.0
    nphotons: float = 1e6
    gridsize: int = 1
    n_filters_scale: int = 1
    epochs: int = 40
    batch_size: int = 16
    ptychi: bool = True
    ptychi_epochs: int = 50
    seed: int = 0
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DemoConfig:
        return cls(**d)


def run_demo(out_dir: str | Path, config: DemoConfig | None = None, progress: bool = True,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the demo into ``out_dir``; return a summary dict (also written as ``demo_summary.json``)."""
    from ptychopinn.data.simulate import SimulationConfig
    from ptychopinn.errors import ConfigError
    from ptychopinn.model.config import ModelConfig
    from ptychopinn.training.config import TrainConfig

    cfg = config or DemoConfig()
    final = Path(out_dir)
    # every step's settings are checked before any work
    sim = SimulationConfig(n_images=100000, nphotons=cfg.nphotons, N=cfg.N, object_size=cfg.object_size,
                           object_kind="lines", scan="jitter", step=cfg.step, seed=cfg.seed)
    mcfg = ModelConfig(N=cfg.N, gridsize=cfg.gridsize, n_filters_scale=cfg.n_filters_scale)
    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, seed=cfg.seed, device=cfg.device,
                       overwrite=True)
    if cfg.ptychi_epochs < 1:
        raise ConfigError(f"ptychi_epochs must be >= 1; got {cfg.ptychi_epochs}")
    with staged_dir(final) as out:
        summary = _run_steps(out, cfg, sim, mcfg, tcfg, progress, log)
    log(f"figure: {final / summary['figure']}")
    return summary


def _run_steps(out: Path, cfg: DemoConfig, sim: Any, mcfg: Any, tcfg: Any, progress: bool,
               log: Callable[[str], None]) -> dict[str, Any]:
    from ptychopinn.data.grouping import spatial_split
    from ptychopinn.data.simulate import simulate
    from ptychopinn.errors import DependencyError
    from ptychopinn.evaluation.compare import compare, load_reconstruction
    from ptychopinn.inference.reconstruct import reconstruct
    from ptychopinn.training.trainer import train

    timings: dict[str, float] = {}
    t = time.perf_counter()

    # 1. simulate one object, split the scan spatially into train (top) and test (bottom)
    full = simulate(sim)
    tr, te = spatial_split(full.positions_yx, "y", 0.5)
    train_ds, test_ds = full.subset(tr), full.subset(te)
    train_ds.save(out / "train.npz")
    test_ds.save(out / "test.npz")
    timings["simulate_s"] = time.perf_counter() - t
    log(f"[1/5] simulated {full.n_patterns} patterns ({cfg.N}x{cfg.N}, {cfg.nphotons:.0e} photons): "
        f"{len(tr)} train (top half), {len(te)} test (bottom half)")

    # 2. train the PINN
    t = time.perf_counter()
    res = train(train_ds, out / "pinn_run", mcfg, tcfg, progress=progress)
    timings["train_s"] = time.perf_counter() - t
    log(f"[2/5] trained PINN: {res.epochs_run} epochs, {res.train_patterns_per_s:.0f} patterns/s, "
        f"final val loss {res.best_val_loss}")

    # 3. reconstruct the held-out half
    t = time.perf_counter()
    rec = reconstruct(out / "pinn_run", test_ds, out_dir=out / "pinn_recon", device=cfg.device, progress=False)
    timings["reconstruct_s"] = time.perf_counter() - t
    log(f"[3/5] reconstructed {test_ds.n_patterns} patterns in {rec.timing['total_s']:.2f} s")

    # 4. pty-chi on the same data (optional extra)
    recons: dict[str, Any] = {"PtychoPINN": "pinn_recon/reconstruction.npz"}  # relative to the output
    ptychi_note = "skipped (disabled)"
    if cfg.ptychi:
        try:
            from ptychopinn.iterative.ptychi_runner import (
                PtychiConfig,
                run_ptychi,
                save_result,
            )

            t = time.perf_counter()
            pres = run_ptychi(test_ds, PtychiConfig(epochs=cfg.ptychi_epochs, device=cfg.device, seed=cfg.seed),
                              progress=progress)
            save_result(pres, out / "ptychi")
            timings["ptychi_s"] = time.perf_counter() - t
            recons["PtyChi"] = "ptychi/ptychi_reconstruction.npz"
            ptychi_note = f"LSQML {cfg.ptychi_epochs} epochs, {pres.computation_time_seconds:.1f} s"
        except DependencyError as exc:
            ptychi_note = f"skipped: {exc}"
    log(f"[4/5] pty-chi: {ptychi_note}")

    # 5. compare and summarise
    t = time.perf_counter()
    # read from the staging folder, recorded under the path relative to the output directory
    arms = {label: dataclasses.replace(load_reconstruction(out / rel, label), source=rel) for label, rel in recons.items()}
    cmp = compare(test_ds, arms, out / "comparison")
    timings["compare_s"] = time.perf_counter() - t
    fig = save_demo_figure(full, test_ds, out / "comparison" / "reconstructions_aligned.npz",
                           list(recons), out / "demo_summary.png")
    metrics = _metrics_table(cmp)
    summary = {"config": cfg.to_dict(), "timings_s": timings, "ptychi": ptychi_note, "metrics": metrics,
               "figure": str(fig.relative_to(out)), "files": sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())}
    write_json_atomic(out / "demo_summary.json", summary)
    for label, row in metrics.items():
        log(f"[5/5] {label}: amplitude SSIM {row.get('ssim_amplitude', float('nan')):.3f}, "
            f"phase SSIM {row.get('ssim_phase', float('nan')):.3f}, amplitude Pearson r "
            f"{row.get('pearson_r_amplitude', float('nan')):.3f}")
    return summary


def _metrics_table(cmp: Any) -> dict[str, dict[str, float]]:
    """{model: {metric_component: value}} from a ComparisonResult."""
    return {label: {f"{metric}_{comp}": float(v) for comp, d in comps.items() for metric, v in d.items()}
            for label, comps in cmp.metrics.items()}


def save_demo_figure(full: Any, test_ds: Any, aligned_npz: Path, labels: list[str], path: Path) -> Path:
    """Object, probe, scan, a few patterns (top row) and aligned reconstructions (bottom rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ptychopinn._io import atomic_path

    with np.load(aligned_npz) as z:
        aligned = {k: z[k] for k in z.files}
    arms = ["ground_truth", *labels]
    fig, axes = plt.subplots(3, max(4, len(arms)), figsize=(3.2 * max(4, len(arms)), 9.5))
    for ax in axes.ravel():
        ax.axis("off")
    top = axes[0]
    top[0].imshow(np.abs(full.object), cmap="gray")
    top[0].set_title("object amplitude")
    top[1].imshow(np.abs(full.probe), cmap="magma")
    top[1].set_title("probe amplitude")
    top[2].imshow(np.abs(full.object), cmap="gray")
    top[2].scatter(full.xcoords, full.ycoords, s=1, c="tab:blue", label="train")
    top[2].scatter(test_ds.xcoords, test_ds.ycoords, s=1, c="tab:orange", label="test")
    top[2].set_title("scan (blue train, orange test)")
    top[3].imshow(np.log1p(full.diff3d[0].astype(np.float64) ** 2), cmap="viridis")
    top[3].set_title("a pattern, log(1+counts)")
    for j, arm in enumerate(arms):
        amp = aligned.get(f"{arm}_amplitude")
        ph = aligned.get(f"{arm}_phase")
        if amp is None:
            continue
        axes[1, j].imshow(amp, cmap="gray")
        axes[1, j].set_title(f"{arm} amplitude")
        axes[2, j].imshow(ph, cmap="twilight")
        axes[2, j].set_title(f"{arm} phase")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path


def load_summary(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
