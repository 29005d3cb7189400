"""Position refinement: the PINN fit and pty-chi on a scan whose recorded positions carry random errors.

    OMP_NUM_THREADS=1 python benchmarks/bench_positions.py [--N 64] [--n-images 400] [--dose 1e6]
        [--error-rms 2.0] [--epochs 30] [--position-lr 0.01] [--arms true,recorded,refined,ptychi]

Simulates one scan (lines object by default, jittered raster, Poisson noise), draws the recorded
positions as the true ones plus Gaussian errors of the given 2-D RMS (px), and reconstructs:

- ``true``: the PINN fit (``reconstruct_scan``) on the true positions (the error-free reference);
- ``recorded``: the same fit on the recorded positions, no refinement;
- ``refined``: the same fit with ``refine_positions=True`` (positions learnt through the physics);
- ``ptychi`` / ``ptychi_pc``: pty-chi LSQML on the recorded positions without / with its position
  correction (and ``ptychi_true`` on the true positions).

Each arm is scored against the ground truth (aligned amplitude / phase SSIM and FRC50, evaluated
on the true scan's region), and the refined positions against the truth: RMS error after removing
the mean offset (the scan's absolute frame is not observable). One JSON line per arm, and a JSON
file with all of them under ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np


def position_rms(est_yx: np.ndarray, true_yx: np.ndarray) -> float:
    """RMS (px) of the 2-D position error after removing the mean offset."""
    d = np.asarray(est_yx, np.float64) - np.asarray(true_yx, np.float64)
    d -= d.mean(axis=0, keepdims=True)
    return float(np.sqrt(np.mean(np.sum(d * d, axis=1))))


def scan_with_errors(a: argparse.Namespace):
    from ptychopinn.data.simulate import SimulationConfig, simulate

    truth = simulate(SimulationConfig(N=a.N, n_images=a.n_images, nphotons=a.dose, object_kind=a.object,
                                      object_size=a.object_size, scan=a.scan, seed=a.seed))
    rng = np.random.default_rng(a.seed + 101)
    err = rng.normal(0.0, a.error_rms / np.sqrt(2.0), size=(truth.n_patterns, 2))
    rec_yx = truth.positions_yx + err
    lo, hi = a.N / 2 + 1, a.object_size - a.N / 2 - 1  # recorded positions must stay on the object
    rec_yx = np.clip(rec_yx, lo, hi)
    recorded = dataclasses.replace(truth, xcoords=rec_yx[:, 1].copy(), ycoords=rec_yx[:, 0].copy(),
                                   xcoords_start=None, ycoords_start=None)
    return truth, recorded


def score(truth, arms: dict) -> dict:
    from ptychopinn.evaluation.compare import CompareConfig, compute_comparison

    res = compute_comparison(truth, arms, CompareConfig(plot=False))
    return {lab: {f"{c}_{k}": round(float(m[c][k]), 4) for c in ("amplitude", "phase") for k in ("ssim", "frc50")}
            for lab, m in res.metrics.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bench_out/positions")
    p.add_argument("--N", type=int, default=64)
    p.add_argument("--n-images", type=int, default=400)
    p.add_argument("--object", default="lines")
    p.add_argument("--object-size", type=int, default=160)
    p.add_argument("--scan", default="random")
    p.add_argument("--dose", type=float, default=1e6)
    p.add_argument("--error-rms", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--position-lr", type=float, default=0.01)
    p.add_argument("--position-warmup", type=float, default=1.0)
    p.add_argument("--from-bundle", default="none", help="'none' (from scratch), 'general' or a bundle")
    p.add_argument("--ptychi-epochs", type=int, default=100)
    p.add_argument("--arms", default="true,recorded,refined,ptychi,ptychi_pc,ptychi_true")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()

    import torch

    from ptychopinn.inference.fit import DEFAULT_MODEL, DEFAULT_TRAIN, FINETUNE_TRAIN, reconstruct_scan

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    truth, recorded = scan_with_errors(a)
    print(json.dumps({"recorded_rms_px": round(position_rms(recorded.positions_yx, truth.positions_yx), 3),
                      "N": a.N, "n_images": a.n_images, "dose": a.dose}), flush=True)
    want = a.arms.split(",")
    bundle = None if a.from_bundle == "none" else a.from_bundle
    base = DEFAULT_TRAIN if bundle is None else FINETUNE_TRAIN  # reconstruct mode's own defaults
    tcfg = dataclasses.replace(base, epochs=a.epochs, overwrite=True, seed=a.seed)
    rows = []

    def emit(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), flush=True)

    fits = {"true": (truth, False), "recorded": (recorded, False), "refined": (recorded, True)}
    for arm, (ds, refine) in fits.items():
        if arm not in want:
            continue
        cfg = dataclasses.replace(tcfg, refine_positions=refine, position_lr=a.position_lr,
                                  position_warmup_epochs=a.position_warmup)
        t = time.perf_counter()
        r = reconstruct_scan(ds, out / arm, None if bundle else DEFAULT_MODEL, cfg, from_bundle=bundle,
                             progress=False)
        secs = time.perf_counter() - t
        row = {"arm": arm, "seconds": round(secs, 1), "epochs_run": r.training.epochs_run,
               **score(truth, {arm: {"object": r.reconstruction.object, "origin": r.reconstruction.origin}})[arm]}
        ref = r.training.extra.get("refined_positions_yx")
        if ref is not None:
            row["position_rms_px"] = round(position_rms(ref, truth.positions_yx), 3)
        emit(row)
    from ptychopinn.iterative.ptychi_runner import PtychiConfig, run_ptychi

    pty = {"ptychi": (recorded, False), "ptychi_pc": (recorded, True), "ptychi_true": (truth, False)}
    for arm, (ds, pc) in pty.items():
        if arm not in want:
            continue
        t = time.perf_counter()
        res = run_ptychi(ds, PtychiConfig(epochs=a.ptychi_epochs, position_correction=pc), progress=False)
        secs = time.perf_counter() - t
        row = {"arm": arm, "seconds": round(secs, 1), "ptychi_seconds": round(res.computation_time_seconds, 1),
               **score(truth, {arm: {"object": res.object, "origin": res.origin}})[arm]}
        if res.refined_positions is not None:
            row["position_rms_px"] = round(position_rms(res.refined_positions, truth.positions_yx), 3)
        emit(row)
    (out / "positions.json").write_text(json.dumps({"args": vars(a), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
