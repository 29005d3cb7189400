"""Beamline-style data end to end: a simulated CXI file with an approximate probe.

    OMP_NUM_THREADS=1 python benchmarks/bench_real_data.py [--out bench_out/real_data] [--epochs 8]

1. Simulate N=64 Poisson patterns of a Siemens star with the *true* probe (the Run1084 probe from
   ../shared/data/Run1084_recon3_postPC.npz, or a defocused default probe when that file is absent).
2. Write them as a beamline would: a CXI 1.6 file (h5py by hand: integer counts, translations in
   metres, energy in joules, detector distance and pixel size) whose probe ``entry_1/image_1`` is
   only *approximate* (amplitude blurred with sigma 2 px, phase halved, a little defocus added).
3. ``ptychopinn iterative`` on the CXI file (pty-chi LSQML, probe refined): the reference.
4. ``ptychopinn train --probe-from-ptychi E`` (short pty-chi probe refinement, then the PINN with
   that probe) and, as a control, ``ptychopinn train`` keeping the approximate probe; ``infer`` both.
5. Score every arm against the ground truth, and the PINN against pty-chi (phase Pearson r, FRC50),
   with ``ptychopinn.evaluation``; write the side-by-side figure (``compare``) and print one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

EV = 1.602176634e-19


def approximate_probe(p: np.ndarray, seed: int = 0) -> np.ndarray:
    from scipy import ndimage

    n = p.shape[0]
    amp = ndimage.gaussian_filter(np.abs(p), 2.0)
    yy, xx = np.mgrid[:n, :n] - n // 2
    defocus = 0.6 * (yy ** 2 + xx ** 2) / (n / 3) ** 2
    approx = amp * np.exp(1j * (0.5 * np.angle(p) + defocus))
    return (approx * np.sqrt(np.sum(np.abs(p) ** 2) / np.sum(amp ** 2))).astype(np.complex64)


def write_beamline_cxi(path: Path, ds, probe: np.ndarray, energy_ev: float, distance: float, pixel: float) -> float:
    """Counts + metres, as a facility writes them (no ptychopinn writer). Returns the object pixel size."""
    import h5py

    n = ds.N
    lam = 6.62607015e-34 * 299792458.0 / (energy_ev * EV)
    dx = lam * distance / (n * pixel)
    t = np.zeros((ds.n_patterns, 3))
    t[:, 0] = (ds.xcoords - ds.xcoords.mean()) * dx
    t[:, 1] = (ds.ycoords - ds.ycoords.mean()) * dx
    with h5py.File(path, "w") as f:
        f["cxi_version"] = 160
        f["entry_1/instrument_1/detector_1/data"] = np.rint(ds.diff3d.astype(np.float64) ** 2).astype(np.uint32)
        f["entry_1/data_1/data"] = h5py.SoftLink("/entry_1/instrument_1/detector_1/data")
        f["entry_1/instrument_1/detector_1/distance"] = distance
        f["entry_1/instrument_1/detector_1/x_pixel_size"] = pixel
        f["entry_1/instrument_1/detector_1/y_pixel_size"] = pixel
        f["entry_1/instrument_1/source_1/energy"] = energy_ev * EV
        f["entry_1/sample_1/geometry_1/translation"] = t
        f["entry_1/image_1/data"] = probe
    return dx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench_out/real_data")
    ap.add_argument("--probe-npz", default=str(Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
                                               / "Run1084_recon3_postPC.npz"))
    ap.add_argument("--n-images", type=int, default=400)
    ap.add_argument("--object-size", type=int, default=200)
    ap.add_argument("--nphotons", type=float, default=1e6)
    ap.add_argument("--epochs", type=int, default=8, help="PINN epochs")
    ap.add_argument("--refine-epochs", type=int, default=30, help="pty-chi probe refinement epochs")
    ap.add_argument("--ptychi-epochs", type=int, default=100, help="pty-chi reference epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse", action="store_true", help="reuse the outputs (and timings) of a run with this --out")
    a = ap.parse_args()

    from ptychopinn.cli.main import main as cli
    from ptychopinn.data.contract import PtychoDataset, load_dataset
    from ptychopinn.data.simulate import SimulationConfig, simulate
    from ptychopinn.evaluation.compare import CompareConfig, compare, compute_comparison, load_reconstruction

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    probe_from = a.probe_npz if os.path.isfile(a.probe_npz) else None
    cfg = SimulationConfig(n_images=a.n_images, nphotons=a.nphotons, N=64, object_size=a.object_size,
                           object_kind="siemens", probe_from=probe_from, probe_defocus=0.0 if probe_from else 2.0,
                           seed=a.seed)
    sim = simulate(cfg)
    true_probe = np.asarray(sim.probe)
    approx = approximate_probe(true_probe, a.seed)
    cxi = out / "scan.cxi"
    if not (a.reuse and cxi.is_file()):
        write_beamline_cxi(cxi, sim, approx, 8000.0, 2.0, 75e-6)
    ds = load_dataset(cxi)
    shift = (float(np.mean(ds.ycoords - sim.ycoords)), float(np.mean(ds.xcoords - sim.xcoords)))
    assert np.allclose(ds.xcoords - sim.xcoords, shift[1], atol=1e-6)  # one frame offset, no distortion

    tfile = out / "timings.json"
    timings = json.loads(tfile.read_text()) if (a.reuse and tfile.is_file()) else {}

    def timed(argv):
        key = argv[0] + ":" + argv[argv.index("-o") + 1]
        if a.reuse and key in timings:
            return timings[key]  # outputs of an earlier run with the same --out
        t0 = time.perf_counter()
        rc = cli(argv)
        if rc != 0:
            raise SystemExit(f"{argv[0]} failed ({rc})")
        timings[key] = time.perf_counter() - t0
        tfile.write_text(json.dumps(timings))
        return timings[key]

    common = ["--device", "cpu", "--overwrite"]
    t_pty = timed(["iterative", "--data", str(cxi), "-o", str(out / "ptychi"), "--epochs", str(a.ptychi_epochs),
                   "-q", *common])
    tr = ["--epochs", str(a.epochs), "--quiet", "--patience", "0", "--seed", str(a.seed), *common]
    t_train_ref = timed(["train", "--train", str(cxi), "-o", str(out / "pinn_refined"), *tr,
                         "--probe-from-ptychi", str(a.refine_epochs)])
    t_train_apx = timed(["train", "--train", str(cxi), "-o", str(out / "pinn_approx"), *tr])
    t_inf = timed(["infer", "--model", str(out / "pinn_refined"), "--data", str(cxi), "-o", str(out / "inf_refined"),
                   "--no-progress", *common])
    timed(["infer", "--model", str(out / "pinn_approx"), "--data", str(cxi), "-o", str(out / "inf_approx"),
           "--no-progress", *common])

    cfg_ref = json.loads((out / "pinn_refined" / "config.json").read_text())
    refine_s = cfg_ref["probe"]["ptychi_refinement"]["seconds"]
    arms = {"PtyChi": out / "ptychi" / "ptychi_reconstruction.npz",
            "PtychoPINN": out / "inf_refined" / "reconstruction.npz",
            "PINN_approx_probe": out / "inf_approx" / "reconstruction.npz"}
    recs = {}
    for label, path in arms.items():  # into the simulation frame of the ground truth
        r = load_reconstruction(str(path), label)
        recs[label] = (r.object, (r.origin[0] - shift[0], r.origin[1] - shift[1]))
    gt = compare(sim, recs, out / "compare_vs_ground_truth", CompareConfig(plot=True))
    # versus pty-chi: its object is the reference
    pobj, porig = recs["PtyChi"]
    ref = PtychoDataset(diff3d=sim.diff3d, probe=sim.probe, xcoords=sim.xcoords - porig[1],
                        ycoords=sim.ycoords - porig[0], object=pobj, source="pty-chi reconstruction")
    vs = compute_comparison(ref, {k: (o, (g[0] - porig[0], g[1] - porig[1])) for k, (o, g) in recs.items()
                                  if k != "PtyChi"}, CompareConfig(plot=False))

    from ptychopinn.evaluation.metrics import threshold_crossing

    def frc_band(res, label, comp):
        """FRC 0.5 crossing and mean FRC above the lowest rings (f > 0.05 cycles/px): on this star the
        lowest four to six rings sit below 0.5 for every arm (pty-chi too), so the plain first crossing says nothing."""
        fr = res.frc[label][comp]
        keep = fr.frequency > 0.05
        cross, _ = threshold_crossing(fr.frequency[keep], fr.frc[keep], 0.5)
        return round(cross, 4), round(float(np.nanmean(fr.frc[keep])), 4)

    def pick(res, label):
        m = res.metrics[label]
        f50, fmean = frc_band(res, label, "phase")
        return {"phase_pearson_r": round(m["phase"]["pearson_r"], 4), "phase_frc50_above_0.05": f50,
                "phase_frc_mean_above_0.05": fmean, "phase_frc50_first_ring": round(m["phase"]["frc50"], 4),
                "amp_pearson_r": round(m["amplitude"]["pearson_r"], 4), "amp_ssim": round(m["amplitude"]["ssim"], 4),
                "phase_ssim": round(m["phase"]["ssim"], 4)}

    probe_err = {}
    refined = np.load(out / "pinn_refined" / "ptychi_probe.npz")["probeGuess"]
    for name, p in (("approximate", approx), ("ptychi_refined", refined)):
        q = p * np.vdot(p, true_probe) / np.vdot(p, p)  # best complex scale
        probe_err[name] = round(float(np.linalg.norm(q - true_probe) / np.linalg.norm(true_probe)), 4)
    result = {
        "N": 64, "patterns": sim.n_patterns, "nphotons": a.nphotons, "true_probe": probe_from or "default defocused",
        "threads": os.environ.get("OMP_NUM_THREADS"),
        "probe_relative_error": probe_err,
        "seconds": {"ptychi_reference": round(t_pty, 1), "ptychi_probe_refinement": round(refine_s, 1),
                    "train_with_refined_probe_total": round(t_train_ref, 1),
                    "train_with_approx_probe": round(t_train_apx, 1), "infer": round(t_inf, 1)},
        "vs_ground_truth": {k: pick(gt, k) for k in recs},
        "vs_ptychi": {k: pick(vs, k) for k in recs if k != "PtyChi"},
        "figure": str(out / "compare_vs_ground_truth"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
