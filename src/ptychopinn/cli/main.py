"""``ptychopinn <command>`` entry point.

Each command is a module ``ptychopinn.cli.<module>`` exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only for the command
that runs (``--help`` of the top level imports them to read their one-line help)."""

from __future__ import annotations

import argparse
import importlib
import sys

from ptychopinn.errors import PtychoPINNError, one_line

# command name -> module name under ptychopinn.cli (order = order in --help)
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "simulate": "simulate",
    "validate": "validate",
    "train": "train",
    "infer": "infer",
    "reconstruct": "reconstruct",
    "compare": "compare",
    "iterative": "iterative",
    "photon-grid": "photon_grid",
    "parity-log": "parity_log",
    "parity-diff": "parity_diff",
    "study": "study",
}


#: commands that can add their part to a parity_telemetry.json (seed 003)
TELEMETRY_COMMANDS = ("simulate", "train", "infer", "compare")


def _load(module: str):
    return importlib.import_module(f"ptychopinn.cli.{module}")


class _Parser(argparse.ArgumentParser):
    """Option errors in one line (no usage block): 'ptychopinn train: error: argument --lr: ...'."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from ptychopinn import __version__

    parser = _Parser(
        prog="ptychopinn",
        description="Physics-informed neural-network ptychography: simulate, train, reconstruct, compare.",
    )
    parser.add_argument("--version", action="version", version=f"ptychopinn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, module in COMMANDS.items():
        try:
            mod = _load(module)
        except ModuleNotFoundError as exc:
            if exc.name == f"ptychopinn.cli.{module}":
                continue  # command not available in this build
            raise
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_arguments(p)
        if name in TELEMETRY_COMMANDS:
            p.add_argument("--telemetry", metavar="PATH",
                           help="write or extend this parity_telemetry.json (schema 1.0) with this step's stages")
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "telemetry", None):
            from ptychopinn.cli._checks import check_output

            check_output(args.telemetry, "file", append=True, option="--telemetry")
        rc = args._run(args)
    except PtychoPINNError as exc:
        print(f"ptychopinn {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the environment failed mid-run (disk full, permissions changed, ...)
        print(f"ptychopinn {args.command}: I/O error: {one_line(exc)}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(f"ptychopinn {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
