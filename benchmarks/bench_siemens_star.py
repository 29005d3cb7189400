"""Experimental data: the tike Siemens-star scan, PINN (reconstruct mode) and pty-chi side by side.

    OMP_NUM_THREADS=1 python benchmarks/bench_siemens_star.py ../shared/data/tike_siemens-star-small.npz.bz2 \
        [--out bench_out/siemens] [--ptychi-epochs 100] [--epochs 30] [--figure docs/images/siemens_star.png]

No ground truth exists: pty-chi LSQML (100 epochs, probe refined) is the reference, and the PINN's
reconstruction is aligned to it (sub-pixel registration, global phase, amplitude scale) and scored
against it with ``ptychopinn.evaluation`` (SSIM, FRC50: the agreement of the two, not a truth).
pty-chi's object is also scored against itself at 10 epochs (how far 10 epochs are from 100).
Writes the figure (both reconstructions, colour bars, times, FRC curves) and one JSON file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np


def reference_dataset(ds, obj: np.ndarray, origin) -> tuple[object, np.ndarray]:
    """(``ds`` with pty-chi's object as objectGuess, the (y, x) shift applied): positions and canvas are
    moved by a whole-pixel shift so that the object frame starts at 0 (scan coordinates of measured
    data may be negative); unscanned pixels = the object's mean. Shift every other arm's origin too."""
    n = ds.N
    y0, x0 = (int(round(float(v))) for v in origin)
    shift = np.array([max(0, -min(y0, int(np.floor(ds.ycoords.min())) - n)),
                      max(0, -min(x0, int(np.floor(ds.xcoords.min())) - n))], dtype=np.int64)
    y0, x0 = y0 + int(shift[0]), x0 + int(shift[1])
    yc, xc = ds.ycoords + shift[0], ds.xcoords + shift[1]
    h = max(int(np.ceil(yc.max())) + n, y0 + obj.shape[0]) + 1
    w = max(int(np.ceil(xc.max())) + n, x0 + obj.shape[1]) + 1
    frame = np.full((h, w), obj.mean(), dtype=np.complex64)
    frame[y0:y0 + obj.shape[0], x0:x0 + obj.shape[1]] = obj
    return dataclasses.replace(ds, object=frame, xcoords=xc, ycoords=yc, xcoords_start=None,
                               ycoords_start=None), shift.astype(np.float64)


def figure(path: Path, arrays: dict, frc: dict, title: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(2, 3, figsize=(13, 8), constrained_layout=True)
    for row, comp, cmap in ((0, "amplitude", "gray"), (1, "phase", "twilight")):
        ref = arrays[f"ground_truth_{comp}"]
        pin = arrays[f"PtychoPINN_{comp}"]
        lo, hi = np.percentile(np.concatenate([ref.ravel(), pin.ravel()]), [1, 99])
        for col, (img, lab) in enumerate(((ref, title["ref"]), (pin, title["pinn"]))):
            im = ax[row, col].imshow(img, cmap=cmap, vmin=lo, vmax=hi)
            ax[row, col].set_title(f"{lab}\n{comp}", fontsize=9)
            ax[row, col].axis("off")
            fig.colorbar(im, ax=ax[row, col], shrink=0.8, label="rad" if comp == "phase" else "a.u.")
        c = frc[comp]
        ax[row, 2].plot(c["freq"], c["frc"], label="PINN vs pty-chi")
        ax[row, 2].axhline(0.5, color="k", lw=0.6, ls="--")
        ax[row, 2].set_xlabel("spatial frequency (cycles / px)")
        ax[row, 2].set_ylabel("FRC")
        ax[row, 2].set_ylim(-0.1, 1.05)
        ax[row, 2].set_title(f"{comp}: FRC50 = {c['frc50']:.3f} cycles/px, SSIM = {c['ssim']:.3f}", fontsize=9)
    fig.suptitle(title["suptitle"], fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("data", help="tike_siemens-star-small.npz.bz2 (or any dataset path)")
    p.add_argument("--out", default="bench_out/siemens")
    p.add_argument("--ptychi-epochs", type=int, default=100)
    p.add_argument("--epochs", type=int, default=30, help="PINN fit epochs (maximum; early stopping)")
    p.add_argument("--n-filters-scale", type=int, default=1)
    p.add_argument("--figure", default=None, help="also write the figure here (e.g. docs/images/siemens_star.png)")
    p.add_argument("--pinn-from", default=None, help="reuse an earlier reconstruct output folder (no new fit)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()

    import torch

    from ptychopinn.data.contract import as_dataset
    from ptychopinn.evaluation.compare import CompareConfig, aligned_arrays, compute_comparison
    from ptychopinn.inference.fit import DEFAULT_MODEL, DEFAULT_TRAIN, reconstruct_scan
    from ptychopinn.iterative.ptychi_runner import PtychiConfig, import_ptychi, run_ptychi

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ds = as_dataset(a.data)
    import_ptychi()  # import outside the timings
    t = time.perf_counter()
    pres = run_ptychi(ds, PtychiConfig(epochs=a.ptychi_epochs), progress=False, snapshot_epochs=(10,))
    ptychi_wall = time.perf_counter() - t
    np.savez(out / "ptychi.npz", object=pres.object, origin=np.asarray(pres.origin), snapshot10=pres.snapshots[10],
             seconds=pres.computation_time_seconds, wall_seconds=ptychi_wall)
    if a.pinn_from:  # an earlier reconstruct run of this data (its reconstruction.npz and model/config.json)
        z = np.load(Path(a.pinn_from) / "reconstruction.npz")
        recon_obj, recon_origin = z["object"], z["origin"]
        res_cfg = json.loads((Path(a.pinn_from) / "model" / "config.json").read_text())["result"]
        epochs_run, fit_seconds = res_cfg["epochs_run"], res_cfg["seconds"]
        pinn_wall = float("nan")
    else:
        mcfg = dataclasses.replace(DEFAULT_MODEL, n_filters_scale=a.n_filters_scale)
        tcfg = dataclasses.replace(DEFAULT_TRAIN, epochs=a.epochs, overwrite=True)
        t = time.perf_counter()
        fit = reconstruct_scan(ds, out / "pinn", mcfg, tcfg, from_bundle=None, progress=False)
        pinn_wall = time.perf_counter() - t
        recon_obj, recon_origin = fit.reconstruction.object, fit.reconstruction.origin
        epochs_run, fit_seconds = fit.training.epochs_run, fit.training.seconds
    ref, shift = reference_dataset(ds, pres.object, pres.origin)
    arms = {"PtychoPINN": {"object": recon_obj, "origin": np.asarray(recon_origin, np.float64) + shift},
            "PtyChi10": {"object": pres.snapshots[10], "origin": np.asarray(pres.origin, np.float64) + shift}}
    res = compute_comparison(ref, arms, CompareConfig(plot=False))
    m = {lab: {c: {k: float(res.metrics[lab][c][k]) for k in ("ssim", "frc50", "pearson_r")}
               for c in ("amplitude", "phase")} for lab in arms}
    frc = {}
    for c in ("amplitude", "phase"):
        f = res.frc["PtychoPINN"][c]
        frc[c] = {"freq": np.asarray(f.frequency), "frc": np.asarray(f.frc), "frc50": m["PtychoPINN"][c]["frc50"],
                  "ssim": m["PtychoPINN"][c]["ssim"]}
    summary = {
        "data": str(a.data), "n_patterns": ds.n_patterns, "N": ds.N, "threads": a.threads,
        "ptychi": {"epochs": a.ptychi_epochs, "seconds": round(pres.computation_time_seconds, 1),
                   "wall_seconds": round(ptychi_wall, 1)},
        "pinn": {"epochs_run": epochs_run, "n_filters_scale": a.n_filters_scale,
                 "fit_seconds": round(fit_seconds, 1), "wall_seconds": round(pinn_wall, 1)},
        "pinn_vs_ptychi": m["PtychoPINN"], "ptychi10_vs_ptychi100": m["PtyChi10"],
    }
    (out / "siemens.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))
    title = {
        "ref": f"pty-chi LSQML {a.ptychi_epochs} ep ({summary['ptychi']['wall_seconds']:.0f} s)",
        "pinn": f"PINN reconstruct, {epochs_run} ep (fit {fit_seconds:.0f} s)",
        "suptitle": (f"tike Siemens star, {ds.n_patterns} patterns, N={ds.N}; PINN aligned to pty-chi; "
                     f"1 CPU thread each (AMD EPYC, AVX2)"),
    }
    arrays = aligned_arrays(res)
    for path in filter(None, (out / "siemens_star.png", a.figure and Path(a.figure))):
        figure(path, arrays, frc, title)


if __name__ == "__main__":
    main()
