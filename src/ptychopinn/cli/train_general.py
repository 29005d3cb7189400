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

    _common.add_output(p, "bundle directory", metavar="RUN_DIR", overwrite="an existing bundle in RUN_DIR")
    p.add_argument("--probe-file", action="append", default=None, metavar="NPZ",
                   help="measured probe (probeGuess) to include in the corpus (repeatable)")
    _common.add_fields(p, CorpusConfig, seed={"dest": "corpus_seed"})
    _common.add_fields(p, GeneralTrainConfig)
    p.add_argument("--n-filters-scale", type=ck.positive_int, default=GENERAL_MODEL.n_filters_scale,
                   help="network width multiplier")
    _common.add_device(p)
    _common.add_threads(p)
    _common.add_quiet(p)


def run(args: argparse.Namespace) -> int:
    import dataclasses
    import shutil
    from pathlib import Path

    from ptychopinn.cli._common import config_for
    from ptychopinn.data.corpus import CorpusConfig
    from ptychopinn.errors import ConfigError
    from ptychopinn.training.general import (
        GENERAL_MODEL,
        GeneralTrainConfig,
        train_general,
    )

    ck.check_output(args.output, "dir", overwrite=args.overwrite)
    if len(args.dose_range) != 2:
        raise ConfigError(f"--dose-range: give two doses LOW,HIGH; got {len(args.dose_range)}")
    corpus = config_for(args, "corpus", CorpusConfig, {"seed": args.corpus_seed, "dose_range": tuple(args.dose_range),
                                                       "probe_files": tuple(args.probe_file or ())})
    tcfg = config_for(args, "general", GeneralTrainConfig)
    mcfg = dataclasses.replace(GENERAL_MODEL, n_filters_scale=args.n_filters_scale)
    if tcfg.init_from is not None:
        from ptychopinn.model.bundle import resolve_bundle

        ck.refuse_pairs([(bool("n_filters_scale" in args._explicit), "--init-from", "--n-filters-scale",
                          "exclude each other (a continued run keeps its bundle's network)")])
        if Path(resolve_bundle(tcfg.init_from)).resolve() == Path(args.output).resolve():
            raise ConfigError("--init-from and -o name the same bundle: write the continued run elsewhere")
    if args.overwrite and Path(args.output).exists():
        shutil.rmtree(args.output)
    run_dir = train_general(args.output, corpus, mcfg, tcfg, progress=not args.quiet)
    print(f"wrote {run_dir} ({args.threads} CPU threads)")
    return 0
