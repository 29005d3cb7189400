"""Inference benchmark (not a test): throughput and peak memory of ``ptychopinn.reconstruct``.

Measures, at N=64 with an *untrained* model from ``ptychopinn.model.build_model`` (no bundle needed;
weights do not change the cost):

* predict-only throughput (patterns/s) over ``--n-patterns`` (default 10,000) patterns;
* predict+stitch throughput (the full ``reconstruct``) and the share of time spent stitching
  (target: < 10 %), for the default Fourier sub-pixel stitching;
* stitch-only throughput on the same device for ``fourier`` and ``round`` placement;
* peak resident memory (``resource.getrusage(RUSAGE_SELF).ru_maxrss`` in a fresh subprocess) of a
  full reconstruction of ``--rss-patterns`` (default 50,000) patterns (target: < 3 GB), next to the
  size of the diffraction data itself and the peak before inference started.

Synthetic data: random amplitudes (float32, generated in chunks) at random sub-pixel positions with
a density of one pattern per 4 x 4 px. Prints one JSON line with all results (last line of stdout).

    python benchmarks/bench_inference.py [--n-patterns 10000] [--rss-patterns 50000] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

import numpy as np


def make_data(m: int, n: int = 64, seed: int = 0, chunk: int = 4096):
    """Synthetic PtychoDataset (no object), built chunk-wise so the data is the only large array."""
    from ptychopinn.data.contract import PtychoDataset
    from ptychopinn.physics.probe import default_probe

    rng = np.random.default_rng(seed)
    diff = np.empty((m, n, n), np.float32)
    for i in range(0, m, chunk):
        k = min(chunk, m - i)
        diff[i:i + k] = rng.random((k, n, n), dtype=np.float32) * 4.0
    side = 4.0 * np.sqrt(m)  # one pattern per 4 x 4 px
    pos = n // 2 + 1 + rng.random((m, 2)) * side
    return PtychoDataset(diff3d=diff, probe=default_probe(n).astype(np.complex64),
                         xcoords=pos[:, 1].copy(), ycoords=pos[:, 0].copy(), source="<synthetic>")


def make_model(n: int, gridsize: int, n_filters_scale: int):
    import torch

    from ptychopinn.model import build_model
    from ptychopinn.model.config import ModelConfig
    from ptychopinn.physics.probe import default_probe

    torch.manual_seed(0)
    cfg = ModelConfig(N=n, gridsize=gridsize, n_filters_scale=n_filters_scale)
    return build_model(cfg, default_probe(n), 1.0)


def _sync(dev) -> None:
    import torch

    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def throughput(args: argparse.Namespace) -> dict:
    import torch

    from ptychopinn.inference.predict import (
        data_input_scale,
        iter_patches,
        resolve_model,
    )
    from ptychopinn.inference.reconstruct import reconstruct
    from ptychopinn.inference.stitch import Stitcher

    n = 64
    ds = make_data(args.n_patterns, n)
    im = resolve_model(make_model(n, args.gridsize, args.n_filters_scale), args.device)
    dev = im.device
    pos = ds.positions_yx
    # warm-up (kernels, allocator)
    warm = ds.subset(np.arange(min(2 * args.batch_size, ds.n_patterns)))
    reconstruct(im, warm, batch_size=args.batch_size, progress=False)

    _sync(dev)
    t0 = time.perf_counter()
    r = data_input_scale(ds.diff3d)
    for _sl, p in iter_patches(im, ds.diff3d, pos, batch_size=args.batch_size, r=r, progress=False):
        del p
    _sync(dev)
    t_pred_only = time.perf_counter() - t0

    t0 = time.perf_counter()
    rec = reconstruct(im, ds, batch_size=args.batch_size, progress=False, subpixel="fourier")
    _sync(dev)
    t_full = time.perf_counter() - t0
    tm = rec.timing

    # stitch-only on the model's device with stand-in patches (same chunking)
    patches = torch.polar(torch.rand(args.batch_size, n, n, device=dev), torch.rand(args.batch_size, n, n, device=dev))
    stitch_only = {}
    for mode in ("fourier", "round"):
        st = Stitcher.for_centres(pos, n, None, subpixel=mode, device=dev)
        _sync(dev)
        t0 = time.perf_counter()
        for i in range(0, ds.n_patterns, args.batch_size):
            c = pos[i:i + args.batch_size]
            st.add(patches[:len(c)], c)
        st.result()
        _sync(dev)
        stitch_only[mode] = ds.n_patterns / (time.perf_counter() - t0)

    return {
        "n_patterns": ds.n_patterns,
        "predict_only_patterns_per_s": ds.n_patterns / t_pred_only,
        "predict_stitch_patterns_per_s": ds.n_patterns / t_full,
        "predict_stitch_wall_s": t_full,
        "predict_only_wall_s": t_pred_only,
        "stitch_s_in_reconstruct": tm["stitch_s"],
        "stitch_fraction": tm["stitch_s"] / max(tm["predict_s"] + tm["stitch_s"], 1e-12),
        "stitch_fraction_by_wall_difference": max(t_full - t_pred_only, 0.0) / t_full,
        "stitch_only_patterns_per_s": stitch_only,
        "canvas_shape": list(rec.object.shape),
    }


def rss_child(m: int, args: argparse.Namespace) -> dict:
    """Run in a fresh process: peak RSS of one full reconstruction of m patterns."""
    from ptychopinn.inference.reconstruct import reconstruct

    ds = make_data(m, 64)
    model = make_model(64, args.gridsize, args.n_filters_scale)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    rec = reconstruct(model, ds, batch_size=args.batch_size, device=args.device, progress=False)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kb = 1024.0 if sys.platform != "darwin" else 1024.0 * 1024.0  # ru_maxrss: KiB on Linux, bytes on macOS
    return {
        "n_patterns": m,
        "peak_rss_mb": peak / kb,
        "peak_rss_before_inference_mb": before / kb,
        "diff3d_mb": ds.diff3d.nbytes / 2**20,
        "all_patches_would_be_mb": m * 64 * 64 * 8 / 2**20,
        "wall_s": wall,
        "canvas_shape": list(rec.object.shape),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-patterns", type=int, default=10_000)
    ap.add_argument("--rss-patterns", type=int, default=50_000, help="0 skips the memory run")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--gridsize", type=int, default=1)
    ap.add_argument("--n-filters-scale", type=int, default=2)
    ap.add_argument("--child-rss", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child_rss is not None:
        print(json.dumps(rss_child(args.child_rss, args)))
        return 0

    memory = None
    if args.rss_patterns > 0:
        # first, while this process is small: Linux keeps the parent's RSS high-water mark in a
        # forked child across exec, so a child started after the throughput run would inherit it
        cmd = [sys.executable, os.path.abspath(__file__), "--child-rss", str(args.rss_patterns),
               "--batch-size", str(args.batch_size), "--device", args.device, "--gridsize", str(args.gridsize),
               "--n-filters-scale", str(args.n_filters_scale)]
        out = subprocess.run(cmd, check=False, capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            return 1
        memory = json.loads(out.stdout.strip().splitlines()[-1])

    import torch

    from ptychopinn.inference.predict import resolve_device

    dev = resolve_device(args.device)
    result: dict = {
        "benchmark": "inference", "N": 64, "gridsize": args.gridsize, "n_filters_scale": args.n_filters_scale,
        "batch_size": args.batch_size, "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
    }
    if args.n_patterns > 0:
        result["throughput"] = throughput(args)
    if memory is not None:
        result["memory"] = memory
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
