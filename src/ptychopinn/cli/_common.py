"""The command-line grammar every command shares.

- ``--threads N``: CPU threads for torch (default: ``OMP_NUM_THREADS`` when set, else the cores
  this process may use, divided among the processes of a ``torchrun`` job); printed at start and
  recorded in the run's effective config.
- ``-q/--quiet``: no progress bars or per-epoch lines. Without it, progress bars appear only on a
  terminal; when the output is a file or a pipe, training prints one line per epoch.
- ``--device``: ``auto`` (a free GPU when CUDA is available, else the CPU), ``cpu``, ``cuda``,
  ``cuda:K``.
- ``--config FILE``: JSON or TOML holding the fields of the command's configuration dataclasses
  (one table per dataclass, e.g. ``[training]`` and ``[model]`` for ``train``; a command with one
  dataclass also takes its fields at the top level) and any other option in a ``[run]`` table,
  under its long name with ``_`` for ``-`` (e.g. ``batch_size``). Options given on the command
  line win over the file. Keys starting with ``_`` are comments; ``overwrite`` and ``resume`` are
  accepted on the command line only. Every run writes the effective
  configuration it used (:data:`EFFECTIVE_CONFIG`, same format), so
  ``--config RUN/run_config.json`` repeats a run.
- Help shows every option's default; defaults are read from the dataclasses, not retyped.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ptychopinn._config import COMMAND_LINE_ONLY
from ptychopinn.errors import ConfigError

EFFECTIVE_CONFIG = "run_config.json"
QUIET_HELP = "no progress bars or per-epoch lines (errors and the final summary still print)"
#: dests never written to, nor read from, the [run] table
_NOT_RECORDED = {"help", "config", "version", "telemetry"}


# ---------------------------------------------------------------------------------------------
# help
# ---------------------------------------------------------------------------------------------
def _fmt_default(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):  # 1e+06 -> 1e6, 0.0001 -> 1e-4
        text = f"{v:g}"
        return text.replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")
    if isinstance(v, (tuple, list)):
        return ",".join(_fmt_default(x) for x in v)
    return str(v)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends ``(default: X)`` to every option that
    takes a value (flags are off unless given)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (not action.option_strings or action.required or action.default is argparse.SUPPRESS
                or action.nargs == 0 or "(default" in text):
            return text
        return f"{text} (default: {_fmt_default(action.default).replace('%', '%%')})".lstrip()


def field_defaults(cls: type) -> dict[str, Any]:
    """{field: default} of a dataclass (fields without a plain default are left out)."""
    return {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}


# ---------------------------------------------------------------------------------------------
# options declared by the library: a dataclass field or a function parameter
# ---------------------------------------------------------------------------------------------
FROM_FIELD: Any = object()  #: "take it from the field" (the default of add_field_option's keywords)


def add_field_option(p: Any, source: Any, name: str, flag: str | None = None, *,
                     default: Any = FROM_FIELD, choices: Any = FROM_FIELD, type: Any = FROM_FIELD,
                     **kw: Any) -> argparse.Action:
    """Declare the option of field ``name`` of ``source`` (a config dataclass, or a function whose
    parameter it is) instead of retyping it. From the field (:func:`ptychopinn._config.opt`
    metadata): flag (else ``--name`` with ``-`` for ``_``), help, metavar, choices (else its
    ``Literal[...]`` values), the numeric ``check`` as the argparse type (else ``int``/``float`` from
    the annotation) and the default; dest ``name``. Keywords given here win. A ``bool`` field that
    defaults to False becomes a flag (``store_true``)."""
    from ptychopinn._config import field_info, literal_choices, plain_type
    from ptychopinn.cli._checks import check_type

    field_default, tp, meta_choices = field_info(source, name)
    meta = ({f.name: f for f in dataclasses.fields(source)}[name].metadata
            if dataclasses.is_dataclass(source) else {})
    default = field_default if default is FROM_FIELD else default
    kw.setdefault("dest", name)
    for key in ("help", "metavar"):
        if key not in kw and key in meta:
            kw[key] = meta[key]
    flag = flag or meta.get("flag") or "--" + name.replace("_", "-")
    if tp is bool and "action" not in kw and (default is False or flag.startswith("--no-")):
        return p.add_argument(flag, action="store_true" if default is False else "store_false", **kw)
    if choices is FROM_FIELD:
        choices = meta_choices if meta_choices is not None else literal_choices(tp)
    if type is FROM_FIELD:
        type = (check_type(meta["check"], plain_type(tp)) if "check" in meta
                else None if choices is not None else plain_type(tp))
    if choices is not None:
        kw["choices"] = choices
    if type is not None:
        kw["type"] = type
    return p.add_argument(flag, default=default, **kw)


def add_fields(p: Any, cls: type, names: Sequence[str] | None = None, *,
               defaults: Mapping[str, Any] | None = None, **per_field: Mapping[str, Any]) -> None:
    """One option per field of ``cls`` that declares one (``opt(help=...)``), or per field in
    ``names`` (in that order); ``defaults`` replaces field defaults, ``per_field[name]`` holds extra
    keywords of :func:`add_field_option`."""
    declared = [f.name for f in dataclasses.fields(cls) if "help" in f.metadata]
    for name in names if names is not None else declared:
        kw = dict(per_field.get(name, {}))
        if defaults and name in defaults:
            kw.setdefault("default", defaults[name])
        add_field_option(p, cls, name, **kw)


def add_command_options(p: Any, sections: Mapping[str, type], output: str, *, metavar: str | None = None,
                        overwrite: str = "files in an existing, non-empty output directory",
                        device: Any = None) -> None:
    """A command's usual options: ``-o/--output`` (``output``: its help) and ``--overwrite``, one
    option per declared field of each config in ``sections`` (:func:`add_fields`), ``--device``
    when ``device`` gives its default, ``--threads``, ``-q`` and ``--config`` (those sections)."""
    add_output(p, output, metavar=metavar, overwrite=overwrite)
    for cls in sections.values():
        add_fields(p, cls)
    if device is not None:
        add_device(p, default=device)
    add_threads(p)
    add_quiet(p)
    add_config(p, sections)


# ---------------------------------------------------------------------------------------------
# threads
# ---------------------------------------------------------------------------------------------
def add_threads(p: argparse.ArgumentParser) -> None:
    from ptychopinn._device import default_threads
    from ptychopinn.cli._checks import positive_int

    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help=f"CPU threads for torch (default: OMP_NUM_THREADS if set, else the available cores, "
                        f"{default_threads()} here). More threads than cores, e.g. several jobs with all "
                        "cores each, slow everything down")


# ---------------------------------------------------------------------------------------------
# progress, device
# ---------------------------------------------------------------------------------------------
def add_quiet(p: argparse.ArgumentParser, help: str = QUIET_HELP) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help=help)


def add_output(p: argparse.ArgumentParser, help: str, *, metavar: str | None = None,
               overwrite: str | None = None) -> None:
    """``-o/--output`` (required) and, with ``overwrite`` (what is replaced, e.g. "an existing
    output file"), ``--overwrite`` right after it (:func:`add_overwrite`)."""
    p.add_argument("-o", "--output", required=True, metavar=metavar, help=help)
    if overwrite is not None:
        add_overwrite(p, overwrite)


def add_overwrite(p: argparse.ArgumentParser, what: str = "the output", *, help: str | None = None) -> None:
    """``--overwrite``: replace ``what`` if it already exists (the rule of ``_checks.check_output``)."""
    p.add_argument("--overwrite", action="store_true",
                   help=help or f"replace {what} if it already exists (default: refuse)")


def progress(args: argparse.Namespace) -> bool | None:
    """What to pass as ``progress=``: False with -q, else None (bars only on a terminal)."""
    return False if getattr(args, "quiet", False) else None


def device_name(text: str) -> str:
    """argparse type for ``--device``."""
    from ptychopinn._device import check_device_name

    try:
        return check_device_name(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_device(p: argparse.ArgumentParser, default: str | None = "auto", help: str | None = None) -> None:
    from ptychopinn._device import DEVICE_HELP

    p.add_argument("--device", type=device_name, default=default, metavar="DEV",
                   help=help or f"compute device: {DEVICE_HELP}")


# ---------------------------------------------------------------------------------------------
# configuration files
# ---------------------------------------------------------------------------------------------
def add_config(p: argparse.ArgumentParser, sections: Mapping[str, type]) -> None:
    """``--config FILE``; ``sections`` maps table names to the command's config dataclasses."""
    names = ", ".join(f"[{k}] ({c.__name__} fields)" for k, c in sections.items())
    what = f"{names}, other options in [run]" if sections else "options in a [run] table (e.g. batch_size = 64)"
    p.add_argument("--config", metavar="FILE", default=None,
                   help=f"JSON or TOML file of settings: {what}; command-line options win; the run "
                        f"writes the settings it used to {EFFECTIVE_CONFIG}")
    p.set_defaults(_config_sections=dict(sections))


_UNSET = object()


def explicit_dests(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """Dests of the options actually given in ``argv`` (parsed once more with sentinel defaults)."""
    saved = [(a, a.default) for a in parser._actions]
    saved_defaults = dict(parser._defaults)
    try:
        for a in parser._actions:
            # append actions extend their default, so they get None (argparse turns it into [])
            a.default = None if isinstance(a, argparse._AppendAction) else _UNSET
        parser._defaults = {}
        ns, _ = parser.parse_known_args(list(argv), argparse.Namespace())
    finally:
        for a, d in saved:
            a.default = d
        parser._defaults = saved_defaults
    return {k for k, v in vars(ns).items() if v is not _UNSET and v is not None}


def _coerce(action: argparse.Action, value: Any, where: str) -> Any:
    if isinstance(value, list):
        value = tuple(value)
    if action.type is int and (isinstance(value, bool) or not isinstance(value, (int, str))):
        raise ConfigError(f"{where}: expected an integer; got {value!r}")
    if action.type is float and (isinstance(value, bool) or not isinstance(value, (int, float, str))):
        raise ConfigError(f"{where}: expected a number; got {value!r}")
    if action.type not in (None, str) and callable(action.type) and not isinstance(value, (bool, tuple)) \
            and value is not None:
        try:  # the option's own parser and checks, as on the command line
            value = action.type(value if isinstance(value, str) else repr(value))
        except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    if action.nargs == 0 and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false; got {value!r}")
    if action.choices is not None and value not in action.choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(str, action.choices))}")
    return value


def apply_config(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Record which options were given and, with ``--config``, fill the others from the file:
    the [run] table into ``args``; the dataclass tables into ``args._config_values`` (merged by
    :func:`config_for`). Unknown tables, fields or options are a ConfigError naming them."""
    explicit = explicit_dests(parser, argv)
    args._explicit = explicit
    args._config_values = {}
    args._effective = {}
    args._mapped_dests = set()
    path = getattr(args, "config", None)
    if not path:
        return
    from ptychopinn._config import read_settings

    actions = {a.dest: a for a in parser._actions if a.dest not in _NOT_RECORDED and a.dest != argparse.SUPPRESS}
    args._config_values, run = read_settings(path, getattr(args, "_config_sections", {}), actions)
    for opt, v in run.items():
        if opt not in explicit:
            setattr(args, opt, _coerce(actions[opt], v, f"{path}: [run] {opt}"))


def config_for(args: argparse.Namespace, section: str, cls: type, values: Mapping[str, Any] | None = None,
               flag_of: Mapping[str, str] | None = None) -> Any:
    """``cls(**values)`` with the ``--config`` file's [section] fields replacing every value whose
    option (``flag_of[field]``, default the field name) was not given on the command line.
    ``values`` defaults to the fields that are options of this command (``args.<field>``), and
    fills in those it leaves out. Recorded for the effective config."""
    flag_of = dict(flag_of or {})
    explicit = getattr(args, "_explicit", set())
    merged = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    merged.update(values or {})
    for name, v in getattr(args, "_config_values", {}).get(section, {}).items():
        if flag_of.get(name, name) not in explicit:
            merged[name] = tuple(v) if isinstance(v, list) else v
    try:
        obj = cls(**merged)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__}: {exc}") from None
    if not hasattr(args, "_effective"):
        args._effective, args._mapped_dests = {}, set()
    args._effective[section] = obj
    args._mapped_dests |= {flag_of.get(f, f) for f in (f.name for f in dataclasses.fields(cls))}
    return obj


def effective_config(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """The settings a run used, in the ``--config`` format (:func:`ptychopinn._config.settings_document`)."""
    from ptychopinn._config import settings_document

    mapped = getattr(args, "_mapped_dests", set())
    skip = {*_NOT_RECORDED, *COMMAND_LINE_ONLY, "command"}
    run = {k: v for k, v in sorted(vars(args).items()) if not k.startswith("_") and k not in skip and k not in mapped}
    return settings_document(command, getattr(args, "_effective", {}), run, getattr(args, "threads", None))


def write_effective_config(args: argparse.Namespace, command: str, path: str | os.PathLike) -> Path:
    from ptychopinn._io import write_json_atomic

    return write_json_atomic(path, effective_config(args, command))
