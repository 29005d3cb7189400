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
  python benchmarks/bench_quality.py --preset heldout --probe-file ../shared/data/Run1084_recon3_postPC.npz

``--preset heldout`` tests the built-in general model (``--general``) on families its corpus never
holds (natural images, the real object, a Siemens star) with the measured and a simulated probe,
doses 1e6/1e4/1e3, dense and sparse jittered scans (step 0.3 / 0.7 of the probe's 90 %-energy
diameter), against pty-chi LSQML from a flat object (10 and 100 epochs, and its time-to-quality).

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


#: held-out preset (issue 16): test objects from families the general model's corpus never holds
HELDOUT = dict(families="natural,real,siemens", probes="measured,disk", doses="1e6,1e4,1e3", scans="dense,sparse",
               seeds="0,1,2", test_size=192, general="general-n64", snapshots="1,2,3,5,7,10,15,20,30,50,70,100",
               fit_epochs=None, before="")
STEP_FRACTION = {"dense": 0.3, "sparse": 0.7}
PHOTOS = ("camera", "astronaut", "coffee", "chelsea", "moon", "coins")
TEXTURES = ("brick", "grass", "gravel")


def heldout_object(family: str, size: int, seed: int, probe_file: str):
    """A held-out test object: ``natural`` (a photograph as amplitude 0.55..1.0, a texture photograph
    as phase +-0.6 rad, both from scikit-image's samples), ``real`` (the experiment's object, its
    scanned region) or ``siemens``."""
    import numpy as np
    from scipy import ndimage
    from skimage import data as skd
    from skimage.color import rgb2gray

    from ptychopinn.physics.objects import siemens_object

    rng = np.random.default_rng(seed)
    if family == "siemens":
        return siemens_object(size)
    if family == "real":
        o = np.load(probe_file)["objectGuess"]
        return np.asarray(o[36:192, 36:192], np.complex128)

    def photo(name: str) -> np.ndarray:
        a = getattr(skd, name)()
        a = rgb2gray(a) if a.ndim == 3 else a.astype(np.float64) / 255.0
        a = ndimage.zoom(a, size / min(a.shape), order=1)
        y = int(rng.integers(0, a.shape[0] - size + 1))
        x = int(rng.integers(0, a.shape[1] - size + 1))
        a = a[y:y + size, x:x + size]
        return (a - a.min()) / max(a.max() - a.min(), 1e-12)

    amp = 0.55 + 0.45 * photo(PHOTOS[seed % len(PHOTOS)])
    ph = 1.2 * photo(TEXTURES[seed % len(TEXTURES)]) - 0.6
    return amp * np.exp(1j * (ph - ph.mean()))


def heldout_scan(family: str, probe_kind: str, dose: float, scan: str, seed: int, a):
    """The simulated test scan of one held-out cell (jittered raster, step = fraction x the probe's
    90 %-energy diameter)."""
    from ptychopinn.data.corpus import probe_diameter
    from ptychopinn.data.simulate import SimulationConfig, simulate
    from ptychopinn.data.contract import load_probe
    from ptychopinn.physics.probe import default_probe

    probe = load_probe(a.probe_file, a.N) if probe_kind == "measured" else default_probe(a.N)
    step = STEP_FRACTION[scan] * probe_diameter(probe)
    obj = heldout_object(family, a.test_size, seed, a.probe_file)
    cfg = SimulationConfig(N=a.N, nphotons=dose, n_images=100_000, scan="jitter", step=step, seed=1000 + seed)
    ds = simulate(cfg, obj=obj, probe=probe)
    ds.metadata["heldout"] = {"family": family, "probe": probe_kind, "scan": scan, "step_px": step, "seed": seed}
    return ds


def run_heldout(a: argparse.Namespace) -> list[dict]:
    """Every held-out cell: the general model in one pass, pty-chi 10 epochs started from it,
    the general model fine-tuned on the scan (reconstruct mode), and pty-chi LSQML from a flat object
    at 10 and 100 epochs and at its time-to-quality (the first snapshot epoch where amplitude and
    phase SSIM reach 99 % of their 100-epoch value). Times include everything of the arm
    (fine-tune: fit + predict + stitch; pty-chi: task build + epochs, snapshot copies excluded)."""
    import numpy as np
    import torch

    from ptychopinn.inference.fit import FINETUNE_TRAIN, reconstruct_scan
    from ptychopinn.inference.reconstruct import reconstruct
    from ptychopinn.iterative.ptychi_runner import PtychiConfig, run_ptychi
    from ptychopinn.model.bundle import resolve_bundle

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    general = resolve_bundle(a.general)
    snaps = _ints(a.snapshots)
    rows: list[dict] = []

    def emit(row: dict) -> None:
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    for fam in a.families.split(","):
        for pk in a.probes.split(","):
            for dose in _floats(a.doses):
                for scan in a.scans.split(","):
                    for seed in _ints(a.seeds):
                        te = heldout_scan(fam, pk, dose, scan, seed, a)
                        cell = {"object": fam, "probe": pk, "dose": dose, "scan": scan, "seed": seed,
                                "n_patterns": te.n_patterns}
                        t = time.perf_counter()
                        rec = reconstruct(general, te, device=a.device, progress=False)
                        secs = time.perf_counter() - t
                        m = score(te, {"PtychoPINN": {"object": rec.object, "origin": rec.origin}})["PtychoPINN"]
                        emit({**cell, "arm": "PINN general, one pass", "seconds": secs, **m})
                        t = time.perf_counter()
                        hand = run_ptychi(te, PtychiConfig(epochs=10, device=a.device), progress=False,
                                          init_object=rec)
                        m = score(te, {"PtyChi": {"object": hand.object, "origin": hand.origin}})["PtyChi"]
                        emit({**cell, "arm": "PtyChi 10 ep from PINN general", "seconds": secs + time.perf_counter() - t,
                              **m})
                        if a.fit_epochs != 0:
                            tc = FINETUNE_TRAIN if a.fit_epochs is None else replace(FINETUNE_TRAIN, epochs=a.fit_epochs)
                            tc = replace(tc, seed=seed, device=a.device, overwrite=True)
                            t = time.perf_counter()
                            res = reconstruct_scan(te, out / f"fit_{fam}_{pk}_{dose:.0e}_{scan}_s{seed}", None, tc,
                                                   from_bundle=general, progress=False)
                            secs = time.perf_counter() - t
                            rr = res.reconstruction
                            m = score(te, {"PtychoPINN": {"object": rr.object, "origin": rr.origin}})["PtychoPINN"]
                            emit({**cell, "arm": "PINN general + fine-tune", "seconds": secs,
                                  "epochs": res.training.epochs_run, **m})
                        if (a.before and f"{fam}/{pk}/{dose:.0e}/{scan}" in a.before.split(",")
                                and seed == _ints(a.seeds)[0]):
                            from ptychopinn.inference.fit import DEFAULT_TRAIN

                            t = time.perf_counter()
                            res = reconstruct_scan(te, out / f"scratch_{fam}_{pk}_{dose:.0e}_{scan}_s{seed}", None,
                                                   replace(DEFAULT_TRAIN, seed=seed, device=a.device, overwrite=True),
                                                   progress=False)
                            secs = time.perf_counter() - t
                            rr = res.reconstruction
                            m = score(te, {"PtychoPINN": {"object": rr.object, "origin": rr.origin}})["PtychoPINN"]
                            emit({**cell, "arm": "before: reconstruct from scratch (30 ep)", "seconds": secs, **m})
                        pres = run_ptychi(te, PtychiConfig(epochs=max(snaps), device=a.device), progress=False,
                                          snapshot_epochs=snaps)
                        cum = np.cumsum(pres.metadata["epoch_wall_seconds"])
                        build = pres.metadata["build_seconds"]
                        sc = {e: score(te, {"PtyChi": {"object": o, "origin": pres.origin}})["PtyChi"]
                              for e, o in pres.snapshots.items()}
                        last = sc[max(snaps)]
                        for e in (10, max(snaps)):
                            if e in sc:
                                emit({**cell, "arm": f"PtyChi LSQML {e} ep", "seconds": build + cum[e - 1], **sc[e]})
                        ttq = next(e for e in sorted(sc) if sc[e]["amplitude_ssim"] >= 0.99 * last["amplitude_ssim"]
                                   and sc[e]["phase_ssim"] >= 0.99 * last["phase_ssim"])
                        emit({**cell, "arm": "PtyChi LSQML to 99 %", "seconds": build + cum[ttq - 1], "epochs": ttq,
                              **sc[ttq]})
    return rows


def heldout_table(rows: list[dict], by: tuple[str, ...] = ("dose", "scan")) -> str:
    """Markdown: per (``by``) and arm, the mean over families, probes and seeds (min..max over cells)."""
    import numpy as np

    keys = ["amplitude_ssim", "phase_ssim", "amplitude_frc50", "amplitude_psnr"]
    order = ["PINN general, one pass", "PINN general + fine-tune", "before: reconstruct from scratch (30 ep)",
             "PtyChi 10 ep from PINN general", "PtyChi LSQML 10 ep", "PtyChi LSQML to 99 %", "PtyChi LSQML 100 ep"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in by) + (r["arm"],), []).append(r)
    head = ("| " + " | ".join(by) + " | arm | cells | amp SSIM | phase SSIM | amp FRC50 | amp PSNR (dB) | seconds |\n|"
            + "---|" * (len(by) + 7))
    lines = [head]
    for key in sorted(groups, key=lambda k: (k[:-1], order.index(k[-1]) if k[-1] in order else 99)):
        rs = groups[key]
        cells = []
        for k in keys:
            v = np.array([r.get(k, np.nan) for r in rs], dtype=float)
            prec = 1 if k.endswith("psnr") else 3
            cells.append(f"{np.nanmean(v):.{prec}f}" + (f" ({np.nanmin(v):.{prec}f}..{np.nanmax(v):.{prec}f})"
                                                       if len(v) > 1 else ""))
        sec = np.mean([r["seconds"] for r in rs])
        lab = [f"{x:.0e}" if isinstance(x, float) else str(x) for x in key[:-1]]
        lines.append("| " + " | ".join(lab) + f" | {key[-1]} | {len(rs)} | " + " | ".join(cells) + f" | {sec:.1f} |")
    return "\n".join(lines)


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
    ap.add_argument("--preset", choices=sorted(PRESETS) + ["heldout"], default="quick")
    for k in ("objects", "gridsizes", "doses", "seeds"):
        ap.add_argument(f"--{k}")
    ap.add_argument("--ptychi-epochs", help="pty-chi LSQML runs from a flat object, comma list of epochs")
    for k in ("n_train", "train_size", "n_test", "test_size", "epochs"):
        ap.add_argument(f"--{k.replace('_', '-')}", dest=k, type=int)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--fit-epochs", type=int, help="reconstruct-mode arm: epochs of the fit on the test scan (0 = off; "
                                                   "heldout preset: default the fine-tuning default)")
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
    ap.add_argument("--families", help="heldout preset: natural,real,siemens")
    ap.add_argument("--probes", help="heldout preset: measured,disk")
    ap.add_argument("--scans", help="heldout preset: dense,sparse (step 0.3 / 0.7 of the probe diameter)")
    ap.add_argument("--general", help="heldout preset: the general model (built-in name or bundle directory)")
    ap.add_argument("--snapshots", help="heldout preset: pty-chi epochs scored for its time-to-quality")
    ap.add_argument("--before", help="heldout preset: cells FAMILY/PROBE/DOSE/SCAN (comma list; first seed only) "
                                     "that also run the old default (reconstruct from scratch, 30 epochs)")
    ap.add_argument("--probe-file", default=str(Path(__file__).resolve().parents[1].parent
                                                / "shared/data/Run1084_recon3_postPC.npz"),
                    help="measured probe and real object (heldout preset)")
    a = ap.parse_args(argv)
    if a.preset == "heldout":
        for k, v in HELDOUT.items():
            if getattr(a, k, None) is None:
                setattr(a, k, v)
        if a.doses is None:
            a.doses = HELDOUT["doses"]
        if a.seeds is None:
            a.seeds = HELDOUT["seeds"]
        if a.test_size is None:
            a.test_size = HELDOUT["test_size"]
        t0 = time.perf_counter()
        rows = run_heldout(a)
        print(heldout_table(rows))
        print()
        print(heldout_table(rows, ("object", "probe", "dose", "scan")))
        print(f"\npreset heldout, general model {a.general}, device {a.device}, {a.threads} threads; "
              f"total {time.perf_counter() - t0:.0f} s")
        if a.json:
            Path(a.json).write_text(json.dumps({"args": vars(a), "rows": rows}, indent=1))
        return
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
