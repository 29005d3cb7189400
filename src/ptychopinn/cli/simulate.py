"""``ptychopinn simulate``: simulate a Poisson ptychography dataset (DESIGN §2-3)."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck

HELP = "simulate a dataset (object, probe, scan, Poisson diffraction) to an NPZ"
DESCRIPTION = """Simulate diffraction amplitudes sqrt(counts) with counts ~ Poisson(s^2 |F(P*O)|^2), scaled
so the mean total counts per pattern equal --nphotons. --seed feeds three independent streams
(object, scan, noise); --object-seed/--scan-seed/--noise-seed override one stream each, so two doses
can share one object and one trajectory."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", required=True, help="output NPZ path")
    ck.add_overwrite(p, "an existing output file")
    p.add_argument("--object", dest="object_kind", default="lines", choices=["lines", "grf", "siemens"])
    p.add_argument("--object-from", help="NPZ with objectGuess to use as the object (e.g. a real reconstruction)")
    p.add_argument("--probe-from", help="NPZ with probeGuess (resampled to N if needed)")
    p.add_argument("--probe-defocus", type=ck.finite_float, default=0.0, help="quadratic phase of the default probe (rad at its edge)")
    p.add_argument("--n-images", type=ck.positive_int, default=2000)
    p.add_argument("--nphotons", type=ck.dose, default=1e9, help="mean total photons per pattern")
    p.add_argument("--N", type=ck.positive_int, default=64, help="pattern / probe size")
    p.add_argument("--object-size", type=ck.positive_int, default=128, help="synthetic object side (px)")
    p.add_argument("--scan", default="random", choices=["random", "raster", "jitter"])
    p.add_argument("--step", type=ck.positive_float, help="raster/jitter step in px (default: fits --n-images)")
    p.add_argument("--border", type=ck.non_negative_float, default=0.0, help="extra margin (px) kept free at the object edge")
    p.add_argument("--seed", type=ck.seed, default=0)
    p.add_argument("--object-seed", type=ck.seed)
    p.add_argument("--scan-seed", type=ck.seed)
    p.add_argument("--noise-seed", type=ck.seed)
    p.add_argument("--noiseless", action="store_true", help="store sqrt(expected counts) without Poisson noise")


def run(args: argparse.Namespace) -> int:
    from ptychopinn.data.simulate import SimulationConfig, simulate

    ck.check_output(args.output, "file", overwrite=args.overwrite)
    cfg = SimulationConfig(
        n_images=args.n_images, nphotons=args.nphotons, N=args.N, object_size=args.object_size,
        object_kind=args.object_kind, object_from=args.object_from, probe_from=args.probe_from,
        probe_defocus=args.probe_defocus, scan=args.scan, step=args.step, border=args.border,
        seed=args.seed, object_seed=args.object_seed, scan_seed=args.scan_seed,
        noise_seed=args.noise_seed, noiseless=args.noiseless,
    )
    ds = simulate(cfg)
    ds.save(args.output)
    if args.telemetry:
        from ptychopinn.telemetry.hooks import record_simulation

        record_simulation(args.telemetry, ds, args.output, probe_from=args.probe_from)
    m = ds.metadata
    print(f"wrote {args.output}: {ds.n_patterns} patterns {ds.N}x{ds.N}, object {ds.object.shape[0]}x{ds.object.shape[1]}, "
          f"photons/pattern requested {cfg.nphotons:.4g} measured {m['nphotons_measured']:.4g} "
          f"({m['seconds']:.2f} s)")
    return 0
