"""``ptychopinn train-general``: train the probe-conditioned general model on the procedural corpus."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck

HELP = "train a general (probe-conditioned) PINN on a seeded corpus of many object families, probes and doses"
DESCRIPTION = """\
Draws fresh simulated scans as it trains (nothing is stored): object textures (lines, Gaussian
random fields, cells, polygons, particles, 1/f noise, fibres, mixtures) with independent, thickness-
coupled, phase-only or amplitude-only contrast; disk, Gaussian, defocused, aberrated and annular
probes (and measured probes from --probe-file, at random zoom); doses log-uniform in --dose-range;
random, raster and jittered scans with steps of 0.2..0.8 probe diameters. Natural images, real
objects and Siemens stars are never drawn: they are the held-out test families.

Writes a bundle to -o/--output every --val-every steps (the last is the result) with the corpus and
optimiser settings in config.json ("general"). The built-in general-n64 was made by this command
(docs/general_model.md). Exit status: 0 written; 2 bad option or input."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ptychopinn.cli import _common
    from ptychopinn.data.corpus import CorpusConfig
    from ptychopinn.training.general import GENERAL_MODEL, GeneralTrainConfig

    g = _common.field_defaults(GeneralTrainConfig)
    c = _common.field_defaults(CorpusConfig)
    p.add_argument("-o", "--output", required=True, metavar="RUN_DIR", help="bundle directory")
    ck.add_overwrite(p, "an existing bundle in RUN_DIR")
    p.add_argument("--N", type=ck.positive_int, default=c["N"], help="pattern size")
    p.add_argument("--probe-file", action="append", default=None, metavar="NPZ",
                   help="measured probe (probeGuess) to include in the corpus (repeatable)")
    p.add_argument("--dose-range", type=ck.dose_list, default=c["dose_range"], metavar="LOW,HIGH",
                   help="photons per pattern, drawn log-uniformly")
    p.add_argument("--patterns-per-scan", type=ck.positive_int, default=c["patterns_per_scan"],
                   help="patterns of each corpus scan")
    p.add_argument("--corpus-seed", type=ck.seed, default=c["seed"], help="seed of the corpus")
    p.add_argument("--steps", type=ck.positive_int, default=g["steps"], help="optimiser steps")
    p.add_argument("--batch-size", type=ck.positive_int, default=g["batch_size"], help="groups per step")
    p.add_argument("--lr", type=ck.positive_float, default=g["lr"], help="peak learning rate (cosine schedule)")
    p.add_argument("--val-every", type=ck.positive_int, default=g["val_every"],
                   help="steps between validation scores and bundle writes")
    p.add_argument("--seed", type=ck.seed, default=g["seed"], help="weight initialisation and batch order seed")
    p.add_argument("--n-filters-scale", type=ck.positive_int, default=GENERAL_MODEL.n_filters_scale,
                   help="network width multiplier")
    _common.add_device(p)
    _common.add_threads(p)
    _common.add_quiet(p)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import shutil
    from pathlib import Path

    from ptychopinn.data.corpus import CorpusConfig
    from ptychopinn.errors import ConfigError
    from ptychopinn.training.general import GENERAL_MODEL, GeneralTrainConfig, train_general

    ck.check_output(args.output, "dir", overwrite=args.overwrite)
    if len(args.dose_range) != 2:
        raise ConfigError(f"--dose-range: give two doses LOW,HIGH; got {len(args.dose_range)}")
    corpus = CorpusConfig(N=args.N, probe_files=tuple(args.probe_file or ()), dose_range=tuple(args.dose_range),
                          patterns_per_scan=args.patterns_per_scan, seed=args.corpus_seed)
    tcfg = GeneralTrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, val_every=args.val_every,
                              seed=args.seed, device=args.device)
    mcfg = dataclasses.replace(GENERAL_MODEL, n_filters_scale=args.n_filters_scale)
    if args.overwrite and Path(args.output).exists():
        shutil.rmtree(args.output)
    run_dir = train_general(args.output, corpus, mcfg, tcfg, progress=not args.quiet)
    print(f"wrote {run_dir} ({args.threads} CPU threads)")
    return 0
