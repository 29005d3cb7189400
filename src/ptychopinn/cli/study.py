"""``ptychopinn study``: the resumable studies (dose response, dose x overlap) and the loss guardrail."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HELP = "reproducible, resumable studies: dose-response, dose-overlap, check-loss"
DESCRIPTION = """Studies run as lists of jobs with stable ids; each job writes its own folder under -o DIR
atomically and is recorded in DIR/study_manifest.json (config, input and output SHA-256, wall time,
status). Running the same command again skips the jobs that already finished with the same inputs,
so a study that was killed resumes where it stopped.

  ptychopinn study dose-response -o DIR [--preset quick|full|seed] [--protocol modern|seed] [--doses 1e3,1e4,...]
  ptychopinn study dose-overlap -o DIR --object-from NPZ --probe-from NPZ [--preset quick|full|seed]
                                [--protocol modern|seed] [--dose D] [--view dense|sparse] [--gridsize G]
  ptychopinn study check-loss --reference A.json --candidate B.json [--tolerance 0.05]

Executors: in this process (default), --jobs K local worker processes, or --scheduler tcp://HOST:PORT
for a Dask distributed cluster (pip install 'ptychopinn[cluster]'; GPU jobs ask for a 'GPU' worker
resource when a worker advertises one, e.g. dask worker ... --resources GPU=1)."""


def _runner_args(p: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = (),
                 required: tuple[str, ...] = ()) -> None:
    """The options every study takes, then one per field of its config ``cls`` (help and choices
    from the field's metadata; unset ones take the preset's value)."""
    import dataclasses

    from ptychopinn.cli import _common
    from ptychopinn.studies._common import PRESET_NAMES

    _common.add_output(p, "study directory (created; rerun to resume)")
    p.add_argument("--preset", choices=PRESET_NAMES, default="full",
                   help="sizes: 'full' = the seed's study, 'seed' = the seed's study under --protocol seed "
                        "(and the seed's object or geometry, see docs/studies.md), 'quick' = tiny (seconds per "
                        "job, for tests)")
    p.add_argument("--jobs", type=int, default=1, metavar="K", help="run up to K jobs at once in local processes")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask distributed scheduler, e.g. tcp://host:8786")
    _common.add_quiet(p)
    _common.add_threads(p)
    p.add_argument("--dry-run", action="store_true",
                   help="list the jobs and whether each would be reused or run; run nothing")
    names = [f.name for f in dataclasses.fields(cls) if f.name not in skip]
    _common.add_fields(p, cls, names, defaults=dict.fromkeys(names), **{n: {"required": True} for n in required})


def _preset_defaults(p: argparse.ArgumentParser, presets: dict[str, Any]) -> None:
    """Options left unset take the preset's value: --help shows it (read from the presets, not
    retyped): "(default: 42)" when every preset agrees, else "(default: from --preset: quick 2,
    full 50, seed 50)", or "(default: from --preset)" where a preset leaves it to the study."""
    from ptychopinn.cli._common import _fmt_default
    from ptychopinn.studies._common import PRESET_NAMES

    def fmt(v: Any) -> str:  # doses as 1e3, not 1000
        if isinstance(v, tuple):
            return ",".join(fmt(x) for x in v)
        if isinstance(v, float) and v >= 1e3 and float(f"{v:.0e}") == v:
            return f"{v:.0e}".replace("e+0", "e").replace("e+", "e")
        return _fmt_default(v)

    for a in p._actions:
        if (a.option_strings and a.default is None and a.nargs != 0 and not a.required and a.dest != "scheduler"
                and "(default" not in (a.help or "")):
            values = [getattr(presets[name], a.dest, None) for name in PRESET_NAMES]
            if any(v is None for v in values):
                where = "from --preset"
            elif all(v == values[0] for v in values):
                where = fmt(values[0])
            else:
                where = "from --preset: " + ", ".join(f"{n} {fmt(v)}" for n, v in zip(PRESET_NAMES, values))
            a.help = f"{a.help or a.dest.replace('_', ' ')} (default: {where.replace('%', '%%')})"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ptychopinn.cli import _common
    from ptychopinn.studies import dose_overlap, dose_response
    from ptychopinn.studies.dose_overlap import VIEW_FILTERS

    sub = p.add_subparsers(dest="study", metavar="<study>")
    dr = sub.add_parser("dose-response", help="seed 001: NLL vs MAE at high and low dose (or a dose sweep)",
                        description="Trains one PINN per (dose, loss) on an amplitude-only lines object and writes "
                        "DIR/dose_comparison.png, metrics.csv, frc_curves.png, training_history.json, sanity.json, "
                        "summary.json, summary.md (and dose_gain.png / dose_gain.json for three or more doses), "
                        "the bundles DIR/<arm>/ and every job's folder.")
    _runner_args(dr, dose_response.DoseResponseConfig)
    _preset_defaults(dr, dose_response.PRESETS)
    do = sub.add_parser("dose-overlap", help="seed 002: PINN / baseline / pty-chi on dense and sparse views per dose",
                        description="Simulates from a real object and probe at each dose: cuts the object into a training and a "
                        "test half first, then scans each half on its own (no content crosses the cut; the "
                        "leakage is measured in split.json); builds dense "
                        "and sparse views by group-centre spacing, trains PINN gridsize 1 and 2 and the supervised "
                        "baseline, runs pty-chi LSQML and compares them; writes DIR/run_manifest.json, "
                        "training_manifest.json, skip_summary.json, metrics_bundle.json, metrics.csv, summary.md.")
    do.add_argument("--dose", type=float, dest="only_dose", metavar="D",
                    help="run only the jobs of this dose (and what they need); the summary needs a run without filters")
    do.add_argument("--view", choices=VIEW_FILTERS, dest="only_view",
                    help="run only the jobs of this view ('full': the gridsize-1 arms trained on the whole half)")
    do.add_argument("--gridsize", type=int, dest="only_gridsize", metavar="G",
                    help="run only the training jobs of this gridsize (1: PINN gs1 and baseline; 2: the views' PINN)")
    _runner_args(do, dose_overlap.DoseOverlapConfig, skip=("gridsize",), required=("object_from", "probe_from"))

    _preset_defaults(do, dose_overlap.PRESETS)
    ck = sub.add_parser("check-loss", help="training-loss guardrail: compare two training_manifest.json files",
                        description="Fails (exit 1) when a training job of the reference is missing from the "
                        "candidate, has a missing or non-finite final_loss, or a final_loss above "
                        "reference + tolerance * |reference|.")
    ck.add_argument("--reference", required=True, help="reference training_manifest.json")
    ck.add_argument("--candidate", required=True, help="candidate training_manifest.json")
    ck.add_argument("--tolerance", type=float, default=0.05, help="relative tolerance")
    ck.add_argument("--dose", type=float, help="only jobs at this dose")
    ck.add_argument("--view", help="only jobs of this view (dense, sparse, full)")
    ck.add_argument("--gridsize", type=int, help="only jobs of this gridsize")
    _common.add_quiet(ck, "print only the verdict line")


def _overrides(args: argparse.Namespace, cls: Any) -> dict[str, Any]:
    import dataclasses

    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


def _print_bundles(root: Path, jobs: list[Any]) -> None:
    """One line per training job (bundle path and SHA-256, or why it was skipped), then the skip count."""
    from ptychopinn.studies.dose_overlap import job_outcomes

    outcomes = job_outcomes(root, jobs)
    for jid, o in outcomes.items():
        if "skipped" in o and jid.startswith("train/"):
            print(f"skipped {jid}: {o['skipped']}")
        elif "bundle" in o:
            print(f"bundle_path {o['bundle']}  bundle_sha256 {o['bundle_sha256']}")
    skipped = sum("skipped" in o for o in outcomes.values())
    print(f"{skipped} job(s) skipped (views with too few groups, or pty-chi missing); see skip_summary.json")


def _dry_run(jobs: list[Any], out: str) -> int:
    from ptychopinn.studies.runner import plan_study

    reuse, todo = plan_study(jobs, out)
    for j in jobs:
        print(f"{'reuse' if j.id in reuse else 'run  '} {j.id}{'  [GPU]' if j.gpu else ''}")
    print(f"{len(todo)} jobs to run, {len(reuse)} to reuse (dry run: nothing was run)")
    return 0


def run(args: argparse.Namespace) -> int:
    from ptychopinn.errors import ConfigError

    if not getattr(args, "study", None):
        raise ConfigError("choose a study: dose-response, dose-overlap or check-loss (see --help)")
    if args.study == "check-loss":
        from ptychopinn.studies.dose_overlap import check_loss

        if not args.tolerance >= 0:
            raise ConfigError(f"--tolerance must be >= 0; got {args.tolerance}")
        problems = check_loss(args.reference, args.candidate, args.tolerance, args.dose, args.view, args.gridsize)
        for pr in problems if not args.quiet else ():
            print(f"FAIL {pr}")
        print("check-loss: " + ("passed" if not problems else f"{len(problems)} problem(s)"))
        return 1 if problems else 0

    progress = not args.quiet
    if args.protocol == "seed" and args.patience not in (None, 0):
        raise ConfigError(f"--protocol seed fixes --patience = 0 (no early stopping); got {args.patience}")
    if args.study == "dose-response":
        from ptychopinn.studies.dose_response import DoseResponseConfig, preset_config, run_dose_response, sanity_text

        cfg = preset_config(args.preset, **_overrides(args, DoseResponseConfig))
        if args.dry_run:
            from ptychopinn.studies.dose_response import build_jobs

            return _dry_run(build_jobs(cfg), args.output)
        res = run_dose_response(args.output, cfg, n_jobs=args.jobs, scheduler=args.scheduler, progress=progress)
        if (res.root / "sanity/sanity.json").exists():
            print(sanity_text(json.loads((res.root / "sanity/sanity.json").read_text())))
        if res.ok:
            bad = json.loads((res.root / "summary.json").read_text())["not_converged"]
            if bad:
                print(f"warning: not converged (plateau rule, summary.md): {', '.join(bad)}")
        outputs = ["dose_comparison.png", "metrics.csv", "frc_curves.png", "training_history.json", "summary.md"]
    else:
        from ptychopinn.studies.dose_overlap import (
            DoseOverlapConfig,
            build_jobs,
            preset_config,
            run_dose_overlap,
            select_jobs,
        )

        cfg = preset_config(args.preset, **_overrides(args, DoseOverlapConfig))
        filters = {"dose": args.only_dose, "view": args.only_view, "gridsize": args.only_gridsize}
        jobs = select_jobs(build_jobs(cfg), cfg, **filters)
        if args.dry_run:
            return _dry_run(jobs, args.output)
        res = run_dose_overlap(args.output, cfg, n_jobs=args.jobs, scheduler=args.scheduler, progress=progress,
                               jobs=jobs)
        _print_bundles(res.root, jobs)
        outputs = (["summary.md", "metrics.csv", "run_manifest.json", "training_manifest.json", "skip_summary.json"]
                   if any(j.id == "summary" for j in jobs) else [])
    print(f"{len(res.ran)} jobs run, {len(res.skipped)} reused, {len(res.failed)} failed in {res.seconds:.1f} s; "
          f"manifest: {res.root / 'study_manifest.json'}")
    if res.failed:
        for jid, err in res.failed.items():
            print(f"failed: {jid}: {err}", file=sys.stderr)
        return 1
    for name in outputs:
        print(f"wrote {res.root / name}")
    return 0
