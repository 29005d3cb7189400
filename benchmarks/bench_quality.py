"""PINN reconstruction quality versus pty-chi LSQML on held-out simulated data.

For every (object kind, dose, gridsize) cell: simulate a training object and a *different* test
object (same probe, same dose), train the PINN on the training scan for each seed, reconstruct the
test scan (predict + stitch), run pty-chi LSQML on the same test scan, align everything to the test
ground truth and score amplitude and phase (SSIM, FRC50, PSNR). Prints one row per arm with the
mean and the spread (min..max) over seeds, and the wall times.

Usage:
  python benchmarks/bench_quality.py --preset quick            # minutes on a 2-core CPU
  python benchmarks/bench_quality.py --preset full --device cuda
  python benchmarks/bench_quality.py --preset quick --arch classic   # the reference network

Options override the preset (``--objects lines --gridsizes 2 --doses 1e9 --seeds 0,1,2 ...``).
``--json FILE`` writes every number; ``--threads`` sets torch's intra-op threads (default: all cores).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

PRESETS = {
    # N=64 everywhere; sizes chosen so that the quick preset runs in minutes on 2 CPU cores
    "quick": dict(objects="lines", gridsizes="1,2", doses="1e9,1e4", seeds="0,1,2", n_train=1024,
                  train_size=160, n_test=400, test_size=128, epochs=12, ptychi_epochs="10,33,100",
                  fit_epochs=20, fit_gridsizes="2", handoff_epochs="10,33"),
    "full": dict(objects="lines,grf,siemens", gridsizes="1,2", doses="1e9,1e4", seeds="0,1,2",
                 n_train=4096, train_size=256, n_test=1000, test_size=192, epochs=50, ptychi_epochs="10,33,100",
                 fit_epochs=50, fit_gridsizes="2", handoff_epochs="10,33"),
}


def _floats(s: str) -> list[float]:
    return [float(v) for v in s.split(",") if v]


def _ints(s: str) -> list[int]:
    return [int(v) for v in s.split(",") if v]


def _sets(items: list[str] | None) -> dict:
    """``["key=json", ...]`` -> dict (values parsed as JSON, else kept as strings)."""
    out = {}
    for it in items or []:
        k, _, v = it.partition("=")
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def score(test, recons: dict) -> dict[str, dict[str, float]]:
    """Aligned amplitude / phase metrics of each arm on the test ground truth."""
    from ptychopinn.evaluation.compare import CompareConfig, compute_comparison

    res = compute_comparison(test, recons, CompareConfig(plot=False))
    plane = compute_comparison(test, recons, CompareConfig(plot=False, phase_plane=True))
    out = {}
    for lab, m in res.metrics.items():
        out[lab] = {f"{c}_{k}": float(m[c][k]) for c in ("amplitude", "phase")
                    for k in ("ssim", "frc50", "psnr", "pearson_r")}
        # a refined probe lets pty-chi trade a linear phase ramp with the probe: also score the phase
        # with the best-fitting phase plane removed
        out[lab]["phase_plane_ssim"] = float(plane.metrics[lab]["phase"]["ssim"])
    return out


def run(a: argparse.Namespace) -> list[dict]:
    import numpy as np
    import torch

    from ptychopinn.data.simulate import SimulationConfig, simulate
    from ptychopinn.inference.reconstruct import reconstruct
    from ptychopinn.model.config import ModelConfig
    from ptychopinn.training.config import TrainConfig
    from ptychopinn.training.trainer import train

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    rows: list[dict] = []
    for kind in a.objects.split(","):
        for dose in _floats(a.doses):
            base = SimulationConfig(N=a.N, nphotons=dose, object_kind=kind)
            tr = simulate(replace(base, n_images=a.n_train, object_size=a.train_size, seed=a.data_seed))
            te = simulate(replace(base, n_images=a.n_test, object_size=a.test_size, seed=a.data_seed + 1000))
            ptychi_rows = []
            for ep in _ints(str(a.ptychi_epochs)):
                from ptychopinn.iterative.ptychi_runner import PtychiConfig, run_ptychi

                t = time.perf_counter()
                pres = run_ptychi(te, PtychiConfig(epochs=ep, device=a.device), progress=False)
                secs = time.perf_counter() - t
                m = score(te, {"PtyChi": {"object": pres.object, "origin": pres.origin}})["PtyChi"]
                ptychi_rows.append({"object": kind, "dose": dose, "gridsize": "-", "arm": f"PtyChi LSQML {ep} ep",
                                    "seed": 0, "train_s": 0.0, "infer_s": secs, **m})
            for gs in _ints(a.gridsizes):
                for seed in _ints(a.seeds):
                    run_dir = out / f"{kind}_p{dose:.0e}_gs{gs}_s{seed}"
                    arch_kw = {"arch": a.arch} if "arch" in ModelConfig.__dataclass_fields__ else {}
                    mcfg = ModelConfig(gridsize=gs, n_filters_scale=a.nfs, **arch_kw, **_sets(a.model_set))
                    tcfg = TrainConfig(epochs=a.epochs, seed=seed, device=a.device, overwrite=True,
                                       patience=0, loss=a.loss, **({"lr": a.lr} if a.lr else {}),
                                       **_sets(a.train_set))
                    t = time.perf_counter()
                    res = train(tr, run_dir, mcfg, tcfg, progress=a.progress)
                    train_s = time.perf_counter() - t
                    t = time.perf_counter()
                    rec = reconstruct(run_dir, te, device=a.device, progress=False)
                    infer_s = time.perf_counter() - t
                    m = score(te, {"PtychoPINN": {"object": rec.object, "origin": rec.origin}})["PtychoPINN"]
                    row = {"object": kind, "dose": dose, "gridsize": gs, "arm": f"PINN {a.arch}", "seed": seed,
                           "train_s": train_s, "infer_s": infer_s, "epochs": res.epochs_run,
                           "final_val_loss": res.history[-1]["val_loss"], **m}
                    rows.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
                    if a.handoff_epochs and seed == _ints(a.seeds)[0]:
                        rows += handoff(a, te, rec, kind, dose, gs, infer_s)
                if a.fit_epochs and gs in _ints(a.fit_gridsizes):
                    bundles = {seed: out / f"{kind}_p{dose:.0e}_gs{gs}_s{seed}" for seed in _ints(a.seeds)}
                    rows += fit_rows(a, te, kind, dose, gs, out, bundles)
            for row in ptychi_rows:
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def handoff(a, te, rec, kind, dose, gs, infer_s) -> list[dict]:
    """pty-chi LSQML started from the PINN reconstruction, for each of ``--handoff-epochs``."""
    from ptychopinn.iterative.ptychi_runner import PtychiConfig, run_ptychi

    rows = []
    for ep in _ints(a.handoff_epochs):
        t = time.perf_counter()
        pres = run_ptychi(te, PtychiConfig(epochs=ep, device=a.device), progress=False, init_object=rec)
        secs = time.perf_counter() - t
        m = score(te, {"PtyChi": {"object": pres.object, "origin": pres.origin}})["PtyChi"]
        row = {"object": kind, "dose": dose, "gridsize": gs, "arm": f"PtyChi {ep} ep from PINN", "seed": 0,
               "train_s": 0.0, "infer_s": secs + infer_s, **m}
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def fit_rows(a, te, kind, dose, gs, out, bundles) -> list[dict]:
    """Reconstruct mode: fit the PINN on the test scan itself (no labels), one row per seed and
    start (``--fit-init``: from random weights and/or fine-tuning the seed's trained bundle)."""
    from ptychopinn.inference.fit import DEFAULT_TRAIN, reconstruct_scan
    from ptychopinn.model.config import ModelConfig

    rows = []
    starts = ["scratch", "bundle"] if a.fit_init == "both" else [a.fit_init]
    for start in starts:
        for seed in _ints(a.seeds):
            tcfg = replace(DEFAULT_TRAIN, epochs=a.fit_epochs, seed=seed, device=a.device, overwrite=True,
                               warmup_epochs=1.0 if start == "scratch" else 0.0,
                               **({"lr": a.lr} if a.lr and start == "scratch" else {}),
                               **({"lr": a.fit_lr} if start == "bundle" else {}))
            mcfg = ModelConfig(gridsize=gs, n_filters_scale=a.nfs, arch=a.arch) if start == "scratch" else None
            res = reconstruct_scan(te, out / f"fit_{start}_{kind}_p{dose:.0e}_gs{gs}_s{seed}", mcfg, tcfg,
                                   from_bundle=bundles[seed] if start == "bundle" else None, progress=a.progress)
            rec = res.reconstruction
            m = score(te, {"PtychoPINN": {"object": rec.object, "origin": rec.origin}})["PtychoPINN"]
            label = "fit on scan" if start == "scratch" else "trained + fine-tuned on scan"
            row = {"object": kind, "dose": dose, "gridsize": gs, "arm": f"PINN {a.arch} {label}", "seed": seed,
                   "train_s": 0.0, "infer_s": res.seconds, "epochs": res.training.epochs_run, **m}
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    """Markdown table: mean and min..max over seeds per arm."""
    import numpy as np

    keys = ["amplitude_ssim", "phase_ssim", "phase_plane_ssim", "amplitude_frc50", "phase_frc50", "amplitude_psnr"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["object"], r["dose"], r["gridsize"], r["arm"]), []).append(r)
    head = ("| object | dose | gridsize | arm | seeds | amp SSIM | phase SSIM | phase SSIM, plane removed "
            "| amp FRC50 | phase FRC50 | amp PSNR (dB) | train s | recon s |\n|" + "---|" * 13)
    lines = [head]
    for (obj, dose, gs, arm), rs in groups.items():
        cells = []
        for k in keys:
            v = np.array([r.get(k, np.nan) for r in rs], dtype=float)
            prec = 1 if k.endswith("psnr") else 3
            cells.append(f"{v.mean():.{prec}f}" + (f" ({v.min():.{prec}f}..{v.max():.{prec}f})" if len(v) > 1 else ""))
        tr = np.mean([r["train_s"] for r in rs])
        inf = np.mean([r["infer_s"] for r in rs])
        lines.append(f"| {obj} | {dose:.0e} | {gs} | {arm} | {len(rs)} | " + " | ".join(cells)
                     + f" | {tr:.0f} | {inf:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="quick")
    for k in ("objects", "gridsizes", "doses", "seeds"):
        ap.add_argument(f"--{k}")
    ap.add_argument("--ptychi-epochs", help="pty-chi LSQML runs from a flat object, comma list of epochs")
    for k in ("n_train", "train_size", "n_test", "test_size", "epochs"):
        ap.add_argument(f"--{k.replace('_', '-')}", dest=k, type=int)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--fit-epochs", type=int, help="reconstruct-mode arm: epochs of the fit on the test scan (0 = off)")
    ap.add_argument("--fit-gridsizes", help="gridsizes of the reconstruct-mode arm")
    ap.add_argument("--fit-init", choices=("scratch", "bundle", "both"), default="bundle",
                    help="reconstruct-mode start: random weights, the trained bundle (fine-tune), or both")
    ap.add_argument("--fit-lr", type=float, default=3e-4, help="fine-tuning learning rate")
    ap.add_argument("--handoff-epochs", help="pty-chi epochs started from the PINN reconstruction (e.g. 10,33)")
    ap.add_argument("--nfs", type=int, default=1, help="n_filters_scale (default 1)")
    ap.add_argument("--arch", default="unet", help="network: unet (default) or classic")
    ap.add_argument("--loss", default="nll")
    ap.add_argument("--model-set", action="append", metavar="KEY=VALUE", help="extra ModelConfig field (repeatable)")
    ap.add_argument("--train-set", action="append", metavar="KEY=VALUE", help="extra TrainConfig field (repeatable)")
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--data-seed", type=int, default=7, help="training object/scan seed (test: +1000)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--out", default="bench_out/quality")
    ap.add_argument("--json", help="write all rows to this JSON file")
    a = ap.parse_args(argv)
    for k, v in PRESETS[a.preset].items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    t0 = time.perf_counter()
    rows = run(a)
    print(table(rows))
    print(f"\npreset {a.preset}, arch {a.arch}, N={a.N}, nfs {a.nfs}, {a.epochs} epochs, {a.n_train} train / "
          f"{a.n_test} test patterns, device {a.device}, {a.threads} threads; total {time.perf_counter() - t0:.0f} s")
    if a.json:
        Path(a.json).write_text(json.dumps({"args": vars(a), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
