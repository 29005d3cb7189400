"""``ptychopinn <command>`` entry point.

Each command is a module ``ptychopinn.cli.<module>`` exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only for the command
that runs (``--help`` of the top level imports them to read their one-line help)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ptychopinn.errors import PtychoPINNError, one_line

# command name -> module name under ptychopinn.cli (order = order in --help)
COMMANDS: dict[str, str] = {
    "demo": "demo",
    "simulate": "simulate",
    "validate": "validate",
    "convert": "convert",
    "train": "train",
    "train-general": "train_general",
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


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``ptychopinn`` parser. With ``only``, only that command's options are built (the
    others keep their one-line help), so a command does not import every command's libraries."""
    from ptychopinn import __version__
    from ptychopinn.cli._common import HelpFormatter

    parser = _Parser(
        prog="ptychopinn",
        description="Physics-informed neural-network ptychography: simulate, train, reconstruct, compare.",
        epilog="Every command: -q/--quiet; compute commands: --threads N, --device, --config FILE. "
               "'ptychopinn <command> --help' lists every option with its default.",
    )
    parser.add_argument("--version", action="version", version=f"ptychopinn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    parser._command_parsers = {}  # type: ignore[attr-defined]
    for name, module in COMMANDS.items():
        try:
            mod = _load(module)
        except ModuleNotFoundError as exc:
            if exc.name == f"ptychopinn.cli.{module}":
                continue  # command not available in this build
            raise
        p = sub.add_parser(name, help=mod.HELP, description=getattr(mod, "DESCRIPTION", mod.HELP),
                           formatter_class=HelpFormatter)
        parser._command_parsers[name] = p  # type: ignore[attr-defined]
        p.set_defaults(_run=mod.run, _module=mod)
        if only is not None and name != only:
            continue
        mod.add_arguments(p)
        _same_help_style(p, HelpFormatter)
        if name in TELEMETRY_COMMANDS:
            p.add_argument("--telemetry", metavar="PATH", default=None,
                           help="write or extend this parity_telemetry.json (schema 1.0) with this step's stages")
            p.add_argument("--scenario", metavar="NAME", default=None,
                           help="scenario name recorded in the telemetry (default: kept from the file)")
            p.add_argument("--pipeline", metavar="NAME", default=None,
                           help="pipeline name recorded in the telemetry, e.g. sim_lines_4x (default: kept from "
                                "the file, 'ptychopinn' for a new one)")
    return parser


def _same_help_style(p: argparse.ArgumentParser, formatter: type) -> None:
    """Give nested sub-commands (e.g. ``study dose-response``) the help style of the others."""
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for child in a.choices.values():
                child.formatter_class = formatter
                _same_help_style(child, formatter)


def _command_of(argv: list[str]) -> str | None:
    for tok in argv:
        if tok in COMMANDS:
            return tok
        if not tok.startswith("-"):
            return None
    return None


def _effective_config_path(args: argparse.Namespace):
    from pathlib import Path

    from ptychopinn.cli._common import EFFECTIVE_CONFIG

    custom = getattr(args._module, "effective_config_path", None)
    if custom is not None:
        return custom(args)
    out = getattr(args, "output", None)
    return None if out is None else Path(out) / EFFECTIVE_CONFIG


def main(argv: list[str] | None = None) -> int:
    from ptychopinn import _device
    from ptychopinn.cli import _common

    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    sub_argv = argv[argv.index(args.command) + 1:]
    threads_before = _device.thread_state()  # main() called from Python: leave the process as it was
    try:
        _common.apply_config(args, parser._command_parsers[args.command], sub_argv)
        if getattr(args, "telemetry", None):
            from ptychopinn.cli._checks import check_output

            check_output(args.telemetry, "file", append=True, option="--telemetry")
        if hasattr(args, "threads"):  # each command reports the count in its status lines
            args.threads = _device.apply_threads(args.threads)
        rc = int(args._run(args) or 0)
        if rc == 0 and hasattr(args, "_config_sections") and os.environ.get("RANK", "0") == "0":
            path = _effective_config_path(args)
            if path is not None:
                _common.write_effective_config(args, args.command, path)
    except PtychoPINNError as exc:
        print(f"ptychopinn {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the environment failed mid-run (disk full, permissions changed, ...)
        print(f"ptychopinn {args.command}: I/O error: {one_line(exc)}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        hint = getattr(args._module, "interrupted_hint", None)
        extra = hint(args) if hint is not None else None
        print(f"ptychopinn {args.command}: interrupted" + (f"; {extra}" if extra else ""), file=sys.stderr)
        return 130
    finally:
        _device.restore_threads(threads_before)
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
