"""``ptychopinn simulate``: simulate a Poisson ptychography dataset (DESIGN §2-3)."""

from __future__ import annotations

import argparse
import time

from ptychopinn.cli import _checks as ck

HELP = "simulate a dataset (object, probe, scan, Poisson diffraction) to an NPZ"
DESCRIPTION = """Simulate diffraction amplitudes sqrt(counts) with counts ~ Poisson(s^2 |F(P*O)|^2), scaled
so the mean total counts per pattern equal --nphotons. --seed feeds three independent streams
(object, scan, noise); --object-seed/--scan-seed/--noise-seed override one stream each, so two doses
can share one object and one trajectory."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ptychopinn.cli import _common
    from ptychopinn.data.simulate import SimulationConfig

    _common.add_command_options(p, {"simulation": SimulationConfig}, "output NPZ path", overwrite="an existing output file")


def effective_config_path(args: argparse.Namespace):
    """OUT.npz -> OUT.run_config.json beside it."""
    from pathlib import Path

    out = Path(args.output)
    return out.with_name(out.stem + ".run_config.json")


def run(args: argparse.Namespace) -> int:
    from ptychopinn.cli._common import config_for
    from ptychopinn.data.simulate import SimulationConfig, simulate

    ck.refuse_pairs([
        (bool(args.noiseless and args.noise_seed is not None), "--noiseless", "--noise-seed",
         "mean nothing together (no noise is drawn)"),
        (bool(args.object_from and args.object_seed is not None), "--object-from", "--object-seed",
         "mean nothing together (the object is read, not generated)"),
        (bool(args.object_from and args.object_kind != "lines"), "--object-from", "--object",
         "exclude each other (one object source)"),
        (bool(args.probe_from and args.probe_defocus), "--probe-from", "--probe-defocus",
         "mean nothing together (the probe is read, not generated)"),
        (bool(args.scan == "random" and args.step is not None), "--scan random", "--step",
         "mean nothing together (--step sets the raster/jitter step)"),
    ])
    ck.check_output(args.output, "file", overwrite=args.overwrite)
    cfg = config_for(args, "simulation", SimulationConfig)
    t0 = time.perf_counter()
    ds = simulate(cfg)
    ds.save(args.output)
    if args.telemetry:
        from ptychopinn.telemetry.observers import record_simulation

        record_simulation(args.telemetry, ds, args.output, probe_from=cfg.probe_from, scenario=args.scenario,
                          pipeline=args.pipeline)
    m = ds.metadata
    print(f"wrote {args.output}: {ds.n_patterns} patterns {ds.N}x{ds.N}, object {ds.object.shape[0]}x"
          f"{ds.object.shape[1]}, photons/pattern requested {cfg.nphotons:.4g} measured "
          f"{m['nphotons_measured']:.4g} ({time.perf_counter() - t0:.2f} s, {args.threads} CPU threads)")
    return 0
