"""Simulator throughput: patterns/s and peak RSS for 10,000 patterns of 64x64 (issue: >= 2,000/s on 2 cores).

Usage: python benchmarks/bench_simulate.py [--n-images 10000] [--scan random|raster|jitter] [--repeats 3]
Prints one JSON line per run (best-of-repeats time).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-images", type=int, default=10000)
    ap.add_argument("--N", type=int, default=64)
    ap.add_argument("--object-size", type=int, default=392)
    ap.add_argument("--nphotons", type=float, default=1e9)
    ap.add_argument("--scan", default="random")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    from ptychopinn.data.simulate import simulate

    times = []
    for r in range(a.repeats):
        t = time.perf_counter()
        ds = simulate(n_images=a.n_images, nphotons=a.nphotons, N=a.N, object_size=a.object_size, scan=a.scan, seed=r)
        times.append(time.perf_counter() - t)
    best = min(times)
    print(json.dumps({
        "bench": "simulate", "n_images": ds.n_patterns, "N": a.N, "scan": a.scan, "object_size": a.object_size,
        "best_seconds": round(best, 3), "patterns_per_s": round(ds.n_patterns / best, 1),
        "all_seconds": [round(t, 3) for t in times], "torch_threads": torch.get_num_threads(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    main()
