"""``ptychopinn parity-log``: the D0 dose parity logger (JSON + Markdown + probe_stats.csv)."""

from __future__ import annotations

import argparse
import sys

from ptychopinn.cli import _checks as ck

HELP = "D0 parity log of a photon-dose sweep: dataset checksums, diffraction/probe stats, baseline metrics"

DESCRIPTION = """\
Write dose_parity_log.json, dose_parity_log.md and probe_stats.csv into --output for the
data_p<dose>.npz files under --dataset-root (or only those named in --limit-datasets):
SHA-256, size, array shapes/dtypes, raw / normalised (x / (max + 1e-12)) / per-scan_index
diffraction statistics, probe amplitude and phase percentiles and, with --baseline-params,
an excerpt of the baseline params.dill with its metrics as [train, test] pairs.

SECURITY: --baseline-params is unpickled with dill, which runs code stored in the file.
Only pass params.dill files you trust. Needs the optional dependency dill (pip install dill).
NPZ files are read with allow_pickle=False (object arrays are refused).

Exit status: 0 written; 1 no dataset found; 2 unreadable NPZ / params file (nothing written)."""

_DEFAULT_ROOT = "photon_grid_study_20250826_152459"  # == parity_log.DEFAULT_DATASET_ROOT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ptychopinn.cli import _common

    parser.add_argument("--dataset-root", default=_DEFAULT_ROOT, metavar="ROOT",
                        help="directory holding data_p<dose>.npz files (default: %(default)s)")
    parser.add_argument("--baseline-params", default=None, metavar="PARAMS_DILL",
                        help="baseline params.dill (UNPICKLED with dill: only trusted files)")
    parser.add_argument("--scenario-id", default=None, metavar="ID",
                        help="scenario identifier, e.g. PGRID-20250826-P1E5-T1024")
    _common.add_output(parser, "directory for the outputs", metavar="DIR",
                       overwrite="files in an existing, non-empty output directory")
    parser.add_argument("--limit-datasets", default=None, metavar="A.npz,B.npz",
                        help="comma-separated dataset file names (relative to ROOT); default: all data_p*.npz")
    _common.add_quiet(parser, "print only errors")


def run(args: argparse.Namespace) -> int:
    from ptychopinn.telemetry import parity_log as pl

    ck.check_output(args.output, "dir", overwrite=args.overwrite, option="--output")
    cfg = pl.ParityLogConfig(
        dataset_root=str(args.dataset_root),
        output=str(args.output),
        baseline_params=args.baseline_params,
        scenario_id=args.scenario_id,
        limit_datasets=pl.parse_limit(args.limit_datasets),
    )
    files = pl.discover_datasets(cfg.dataset_root, cfg.limit_datasets)
    if not files:
        print(f"parity-log: no dataset found: no data_p<dose>.npz files under '{cfg.dataset_root}'",
              file=sys.stderr)
        return 1
    log = pl.build_parity_log(cfg, files)
    written = pl.write_parity_log(log, cfg.output)
    if not getattr(args, "quiet", False):
        print(f"parity-log: {len(files)} dataset(s) -> " + ", ".join(str(p) for p in written.values()))
    return 0


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Stand-alone entry point (used by scripts/tools/d0_parity_logger.py)."""
    from ptychopinn.cli._common import HelpFormatter
    from ptychopinn.errors import PtychoPINNError, one_line

    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION, formatter_class=HelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(run(args) or 0)
    except PtychoPINNError as exc:
        print(f"{parser.prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
