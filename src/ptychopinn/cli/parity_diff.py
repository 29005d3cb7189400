"""``ptychopinn parity-diff A.json B.json``: first stage where two pipeline telemetries diverge."""

from __future__ import annotations

import argparse

from ptychopinn.cli import _checks as ck

HELP = "compare two parity_telemetry.json files stage by stage; name the first divergent stage"

DESCRIPTION = """\
Compare two pipeline telemetry files (schema 1.0, written with --telemetry) in pipeline order:
probe, raw_diffraction, grouped_diffraction, grouped_X_full, intensity_scale, container_X,
training_labels_Y_amp, inference_prediction (then optional stages present in either file).
For every stage a table lists mean/std/min/max (probe: amplitude, energy, phase; intensity
scale: the recorded scales) of A and B, the relative difference, the tolerance and the status.

Default tolerances (relative): probe 1 %, raw_diffraction 1 %, grouped_X_full 5 %,
intensity_scale 1 %, every other stage 5 %; override with --tol STAGE=FRACTION (or STAGE=2%).

Exit status: 0 every compared stage within tolerance; 1 a stage diverged (or, with
--require-all, a stage is recorded in one file only); 2 unreadable or invalid file."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ptychopinn.cli import _common

    parser.add_argument("a", metavar="A.json", help="reference telemetry")
    parser.add_argument("b", metavar="B.json", help="telemetry to compare with A")
    parser.add_argument("--tol", action="append", default=[], metavar="STAGE=FRACTION",
                        help="tolerance of one stage, e.g. grouped_X_full=0.02 or probe=0.5%% (repeatable)")
    parser.add_argument("--require-all", action="store_true",
                        help="also fail when a stage is recorded in only one of the files")
    parser.add_argument("--json", default=None, metavar="OUT.json", help="also write the comparison as JSON")
    _common.add_overwrite(parser, "an existing --json file")
    _common.add_quiet(parser, "print only the verdict line, not the tables")


def run(args: argparse.Namespace) -> int:
    from ptychopinn._io import to_plain, write_json_atomic
    from ptychopinn.telemetry import diff as d

    tols = d.parse_tolerances(args.tol)
    ck.check_output(args.json, "file", overwrite=args.overwrite, option="--json")
    doc_a = d.load_telemetry(args.a)
    doc_b = d.load_telemetry(args.b)
    result = d.diff_telemetry(doc_a, doc_b, tols)
    ok = result.ok(require_all=args.require_all)
    text = d.render_diff(result, str(args.a), str(args.b))
    if getattr(args, "quiet", False):
        lines = [ln for ln in text.splitlines() if ln.strip()]
        text = (lines[-1] + "\n") if lines else ""
    print(text, end="")
    if args.json:
        payload = {"a": str(args.a), "b": str(args.b), "ok": ok, **result.to_dict()}
        write_json_atomic(args.json, to_plain(payload))
    return 0 if ok else 1
