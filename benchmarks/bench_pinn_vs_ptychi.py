"""Time to reconstruction on one test set, one machine, one run: PINN inference (predict + stitch)
versus pty-chi LSQML (100 epochs by default).

Usage:
  python benchmarks/bench_pinn_vs_ptychi.py --model RUN_DIR --data TEST.npz [--epochs 100] [--device cpu]
  python benchmarks/bench_pinn_vs_ptychi.py --data-dir ../shared/data/reference_lines   # trains 5 epochs first

Prints one JSON line: seconds and patterns/s of each arm, their ratio, and both arms' amplitude
SSIM / phase RMSE against objectGuess (scored as in bench_reference_lines.py).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="trained bundle directory (default: train one on the reference train file)")
    ap.add_argument("--data", help="test NPZ (default: reference lines p1e9 test)")
    ap.add_argument("--data-dir", default="../shared/data/reference_lines")
    ap.add_argument("--epochs", type=int, default=100, help="pty-chi epochs")
    ap.add_argument("--batch-size", type=int, default=32, help="pty-chi batch size")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="bench_out/pinn_vs_ptychi")
    a = ap.parse_args()
    sys_path = Path(__file__).resolve().parent
    import sys

    sys.path.insert(0, str(sys_path))
    from bench_reference_lines import score

    from ptychopinn.data.contract import load_dataset
    from ptychopinn.inference.reconstruct import reconstruct
    from ptychopinn.iterative.ptychi_runner import PtychiConfig, run_ptychi

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    data = Path(a.data) if a.data else Path(a.data_dir) / "lines_gs1_p1e9_test.npz"
    model = a.model
    if model is None:
        from ptychopinn.model.config import ModelConfig
        from ptychopinn.training.config import TrainConfig
        from ptychopinn.training.trainer import train

        model = out / "run"
        train(Path(a.data_dir) / "lines_gs1_p1e9_train.npz", model, ModelConfig(n_filters_scale=2),
              TrainConfig(epochs=5, val_fraction=0.05, patience=0, device=a.device, overwrite=True), progress=False)
    ds = load_dataset(data)
    t = time.perf_counter()
    rec = reconstruct(model, ds, stitch_crop=20, device=a.device, progress=False)
    pinn_s = time.perf_counter() - t
    pres = run_ptychi(ds, PtychiConfig(epochs=a.epochs, batch_size=a.batch_size, device=a.device), progress=False)

    class _R:  # pty-chi result in the shape score() expects
        object = pres.object
        origin = pres.origin

    q_pinn, q_pty = score(rec, ds.object), score(_R, ds.object)
    res = {
        "bench": "pinn_vs_ptychi", "data": str(data), "patterns": ds.n_patterns, "device": a.device,
        "pinn_seconds": pinn_s, "pinn_patterns_per_s": ds.n_patterns / pinn_s,
        "ptychi_epochs": a.epochs, "ptychi_seconds": pres.computation_time_seconds,
        "ptychi_patterns_per_s": ds.n_patterns / pres.computation_time_seconds,
        "speedup_pinn_over_ptychi": pres.computation_time_seconds / pinn_s,
        "pinn_amp_ssim": q_pinn["amp_ssim"], "pinn_phase_rmse": q_pinn["phase_rmse_rad"],
        "ptychi_amp_ssim": q_pty["amp_ssim"], "ptychi_phase_rmse": q_pty["phase_rmse_rad"],
    }
    print(json.dumps(res))
    (out / "results.json").write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
