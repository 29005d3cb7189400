"""Side by side with the older TensorFlow implementation on its own data (shared/data/reference_lines).

Trains on lines_gs1_p{dose}_train.npz (N=64, gridsize 1, Poisson NLL, batch 16, 5 epochs,
n_filters_scale 2, 95 % of the 1089 groups fitted per epoch = 1035, as the reference did),
reconstructs the matching test file (stitch crop M=20) and scores it exactly as
shared/data/README.md describes:

* amplitude: stitched canvas registered to the ground truth (sub-pixel), 10 px rim dropped,
  amplitude scaled by the ratio of means, both divided by the ground-truth maximum, SSIM with
  data_range 1 (a flat image scores 0.35);
* phase: RMSE after removing the global phase offset (a zero phase scores 0.24).

Usage: python benchmarks/bench_reference_lines.py --data-dir ../shared/data/reference_lines
       [--doses 1e9,1e4] [--epochs 5] [--out bench_out/reference_lines]
Prints one JSON line per dose (also written to OUT/results.json).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import numpy as np


def score(rec, gt_obj: np.ndarray, rim: int = 10) -> dict:
    from skimage.metrics import structural_similarity

    from ptychopinn.evaluation.align import estimate_shift, fourier_shift_image

    y0, x0 = (int(round(v)) for v in rec.origin)
    h, w = rec.object.shape
    # canvas pixels that lie inside the object and were covered by a patch
    gy0, gx0 = max(y0, 0), max(x0, 0)
    gy1, gx1 = min(y0 + h, gt_obj.shape[0]), min(x0 + w, gt_obj.shape[1])
    recon = rec.object[gy0 - y0:gy1 - y0, gx0 - x0:gx1 - x0]
    gt = gt_obj[gy0:gy1, gx0:gx1]
    shift = estimate_shift(np.abs(gt), np.abs(recon))
    recon = fourier_shift_image(recon, shift)
    sl = (slice(rim, -rim), slice(rim, -rim))
    recon, gt = recon[sl], gt[sl]
    ga, ra = np.abs(gt), np.abs(recon)
    ra = ra * (ga.mean() / ra.mean())
    peak = ga.max()
    ssim_amp = structural_similarity(ga / peak, ra / peak, data_range=1.0)
    flat = structural_similarity(ga / peak, np.full_like(ga, ga.mean()) / peak, data_range=1.0)
    d = np.angle(recon) - np.angle(gt)
    offset = np.angle(np.mean(np.exp(1j * d)))
    res = np.angle(np.exp(1j * (d - offset)))
    zero = np.angle(np.exp(1j * (-np.angle(gt) - np.angle(np.mean(np.exp(-1j * np.angle(gt)))))))
    return {"amp_ssim": float(ssim_amp), "phase_rmse_rad": float(np.sqrt(np.mean(res ** 2))),
            "flat_amp_ssim": float(flat), "zero_phase_rmse_rad": float(np.sqrt(np.mean(zero ** 2))),
            "registration_shift_px": [float(s) for s in shift]}


def run_dose(data_dir: Path, dose: str, epochs: int, out: Path, device: str, threads: int | None) -> dict:
    import torch

    from ptychopinn.data.contract import load_dataset
    from ptychopinn.inference.reconstruct import reconstruct
    from ptychopinn.model.config import ModelConfig
    from ptychopinn.training.config import TrainConfig
    from ptychopinn.training.trainer import train

    if threads:
        torch.set_num_threads(threads)
    train_ds = load_dataset(data_dir / f"lines_gs1_p{dose}_train.npz")
    test_ds = load_dataset(data_dir / f"lines_gs1_p{dose}_test.npz")
    mcfg = ModelConfig(gridsize=1, n_filters_scale=2)
    tcfg = TrainConfig(epochs=epochs, batch_size=16, loss="nll", val_fraction=0.05, patience=0, seed=0,
                       device=device, overwrite=True)
    t0 = time.perf_counter()
    res = train(train_ds, out / f"run_p{dose}", mcfg, tcfg, progress=False)
    train_wall = time.perf_counter() - t0
    epoch_s = [h["seconds"] for h in res.history]
    rec = reconstruct(out / f"run_p{dose}", test_ds, out_dir=out / f"recon_p{dose}", stitch_crop=20,
                      batch_size=256, device=device, progress=False)
    t = rec.timing
    q = score(rec, test_ds.object)
    return {
        "dose": dose, "epochs": res.epochs_run, "n_parameters": res.n_parameters,
        "s_per_epoch": float(np.mean(epoch_s)), "train_wall_s": train_wall,
        "train_patterns_per_s": res.train_patterns_per_s, "precision": res.precision,
        "predict_patterns_per_s": test_ds.n_patterns / t["predict_s"],
        "predict_stitch_patterns_per_s": test_ds.n_patterns / (t["predict_s"] + t["stitch_s"]),
        "stitch_fraction": t["stitch_s"] / (t["predict_s"] + t["stitch_s"]),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2,
        "torch_threads": torch.get_num_threads(), **q,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default="../shared/data/reference_lines")
    ap.add_argument("--doses", default="1e9,1e4")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--out", default="bench_out/reference_lines")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for dose in a.doses.split(","):
        r = run_dose(Path(a.data_dir), dose.strip(), a.epochs, out, a.device, a.threads)
        print(json.dumps(r), flush=True)
        results.append(r)
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
