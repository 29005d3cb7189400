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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ptychopinn._config import Config, opt
from ptychopinn._io import staged_dir, write_json_atomic


@dataclass(frozen=True)
class DemoConfig(Config):
    N: int = opt(32, "pattern size (32 keeps the demo fast on a CPU)", check="positive")
    object_size: int = 160
    step: float = 3.0
    nphotons: float = opt(1e6, "mean photons per pattern", check="dose")
    gridsize: int = opt(2, "patterns per group = gridsize^2", check="positive")
    n_filters_scale: int = 1
    epochs: int = opt(40, "PINN training epochs (early stopping may end sooner)", check="positive")
    batch_size: int = 16
    ptychi: bool = opt(True, "skip the pty-chi arm", flag="--no-ptychi")
    ptychi_epochs: int = opt(50, "pty-chi LSQML epochs", check="positive")
    seed: int = opt(0, "seed of the simulation and the training", check="seed")
    device: str = "auto"


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
    import torch

    log(f"[1/5] simulated {full.n_patterns} patterns ({cfg.N}x{cfg.N}, {cfg.nphotons:.0e} photons): "
        f"{len(tr)} train (top half), {len(te)} test (bottom half); {torch.get_num_threads()} CPU threads")

    # 2. train the PINN
    t = time.perf_counter()
    res = train(train_ds, out / "pinn_run", mcfg, tcfg, progress=progress)
    timings["train_s"] = time.perf_counter() - t
    val = "no validation loss" if res.best_val_loss is None else f"best val loss {res.best_val_loss:.4g}"
    log(f"[2/5] trained PINN: {res.epochs_run} epochs, {res.train_patterns_per_s:.0f} patterns/s, {val}")

    # 3. reconstruct the held-out half
    t = time.perf_counter()
    rec = reconstruct(out / "pinn_run", test_ds, out_dir=out / "pinn_recon", device=cfg.device, progress=False,
                    seed=cfg.seed)
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
                           list(recons), out / "demo_summary.png", metrics=cmp.metrics)
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


def save_demo_figure(full: Any, test_ds: Any, aligned_npz: Path, labels: list[str], path: Path,
                     metrics: dict[str, dict[str, dict[str, float]]] | None = None) -> Path:
    """Top row: object amplitude with the scan (train / test halves), probe, one pattern. Below:
    aligned amplitude and phase of the ground truth and every arm, shared colour limits per row,
    metrics (``metrics[label][component]``, as in ComparisonResult.metrics) in the titles."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ptychopinn._plot import (
        cmap,
        metrics_title,
        robust_range,
        row_height,
        save_figure,
        show_image,
    )

    with np.load(aligned_npz) as z:
        aligned = {k: z[k] for k in z.files}
    arms = ["ground_truth", *[lab for lab in labels if f"{lab}_amplitude" in aligned]]
    width = 3.2 * max(3, len(arms)) + 0.4
    h_row = row_height(aligned["ground_truth_amplitude"].shape, width / len(arms))
    fig = Figure(figsize=(width, 3.0 + 2 * h_row), layout="constrained")
    FigureCanvasAgg(fig)
    top_fig, bottom_fig = fig.subfigures(2, 1, height_ratios=[3.0, 2 * h_row])
    top = top_fig.subplots(1, 3)
    amp = np.abs(full.object)
    lo, hi = robust_range(amp)
    top[0].imshow(amp, cmap=cmap("amplitude"), vmin=lo, vmax=hi)
    top[0].scatter(full.xcoords, full.ycoords, s=1, c="tab:blue", label="train")
    top[0].scatter(test_ds.xcoords, test_ds.ycoords, s=1, c="tab:orange", label="test")
    top[0].set_title("object amplitude and scan\n(blue: train, orange: test)", fontsize=9)
    top[0].set_xticks([])
    top[0].set_yticks([])
    show_image(top[1], np.abs(full.probe), "probe", title=f"probe amplitude ({full.N}x{full.N})")
    show_image(top[2], np.log10(1 + full.diff3d[0].astype(np.float64) ** 2), "counts",
               title="pattern 0, log10(1 + counts)")
    axes = bottom_fig.subplots(2, len(arms), squeeze=False)
    names = {"ground_truth": "Ground truth"}
    for r, comp in enumerate(("amplitude", "phase")):
        vlo, vhi = robust_range(aligned[f"ground_truth_{comp}"])
        for j, arm in enumerate(arms):
            m = (metrics or {}).get(arm, {}).get(comp)
            show_image(axes[r, j], aligned[f"{arm}_{comp}"], comp, vrange=(vlo, vhi),
                       title=metrics_title(f"{names.get(arm, arm)} {comp}", m), remove_offset=False,
                       colorbar=j == len(arms) - 1)
    return save_figure(fig, path, dpi=90)
