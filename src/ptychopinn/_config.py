"""The one configuration base: frozen dataclasses that refuse unknown keys and round-trip JSON."""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ptychopinn.errors import ConfigError

T = TypeVar("T")
C = TypeVar("C", bound="Config")


def strict_from_dict(cls: type[T], d: Mapping[str, Any], what: str) -> T:
    """``cls(**d)``, refusing keys that are not fields of ``cls`` (names them in the error); list
    values of tuple-typed fields become tuples (JSON has no tuples)."""
    fields = {f.name: str(f.type) for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(f"unknown {what} keys: {', '.join(unknown)}")
    check_types(cls, dict(d), what)  # type: ignore[arg-type]
    return cls(**{k: tuple(v) if isinstance(v, list) and fields[k].startswith("tuple") else v
                  for k, v in d.items()})


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (tuple, list):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        return isinstance(value, (list, tuple)) and all(_type_ok(v, args[0]) for v in value) if args else True
    return True  # annotations this checker does not know are not checked


def type_problem(cls: type, d: dict[str, Any]) -> tuple[str, str] | None:
    """(key, problem) for the first value whose JSON type does not fit its field's annotation
    (e.g. ``"N": "64"``), or None. Keys that are not fields are not checked here."""
    hints = typing.get_type_hints(cls)
    for name, value in d.items():
        tp = hints.get(name)
        if tp is not None and not _type_ok(value, tp):
            return name, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
    return None


def check_types(cls: type, d: dict[str, Any], what: str) -> None:
    """ConfigError naming the key when a value's type does not fit (see :func:`type_problem`)."""
    bad = type_problem(cls, d)
    if bad is not None:
        raise ConfigError(f"{what} key '{bad[0]}': {bad[1]}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


@dataclasses.dataclass(frozen=True)
class Config:
    """Base class of every configuration dataclass (subclasses are ``@dataclass(frozen=True)``).

    :meth:`to_dict` / :meth:`from_dict` and :meth:`to_json` / :meth:`from_json` round-trip;
    an unknown key is a :class:`~ptychopinn.errors.ConfigError` naming it. Subclasses validate
    their values in ``__post_init__``."""

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
        return strict_from_dict(cls, d, f"{cls.__name__}")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{cls.__name__}: not valid JSON ({exc.msg})") from None
        if not isinstance(d, dict):
            raise ConfigError(f"{cls.__name__}: expected a JSON object; got {type(d).__name__}")
        return cls.from_dict(d)


# ---------------------------------------------------------------------------------------------
# fields as options, settings files
# ---------------------------------------------------------------------------------------------
#: numeric checks a field's option applies (``opt(check=...)``; ``cli._checks.CHECKS`` parses them)
CHECKS = ("positive", "non_negative", "fraction", "seed", "dose", "doses", "finite")


def opt(default: Any, help: str, *, choices: Any = None, check: str | None = None, metavar: str | None = None,
        flag: str | None = None) -> Any:
    """A config field that declares its command-line option: ``help``, ``choices`` (else the
    field's ``Literal`` values), ``check`` (one of :data:`CHECKS`: the numeric range the option
    accepts), ``metavar`` and ``flag`` (default ``--name`` with ``-`` for ``_``), all kept in the
    field's ``metadata``. The CLI builds the option from it; nothing is retyped there."""
    if check is not None and check not in CHECKS:
        raise ValueError(f"check must be one of {CHECKS}; got {check!r}")
    meta = {"help": help, "choices": choices, "check": check, "metavar": metavar, "flag": flag}
    return dataclasses.field(default=default, metadata={k: v for k, v in meta.items() if v is not None})


def field_like(cls: type, name: str, default: Any = dataclasses.MISSING) -> Any:
    """Field ``name`` of config ``cls`` (its default unless given, its option help, choices and
    check): a config that shares a field with another does not retype its option."""
    f = cls.__dataclass_fields__[name]
    return dataclasses.field(default=f.default if default is dataclasses.MISSING else default, metadata=f.metadata)


def field_info(source: Any, name: str) -> tuple[Any, Any, tuple | None]:
    """(default, resolved annotation, metadata choices) of field ``name`` of a dataclass, or of
    parameter ``name`` of a function."""
    import inspect

    plain = {"bool": bool, "int": int, "float": float, "str": str}
    try:
        hints = typing.get_type_hints(source)
    except (NameError, TypeError, AttributeError):  # an annotation not resolvable here: only the plain names are read
        hints = {}
    if dataclasses.is_dataclass(source):
        f = {f.name: f for f in dataclasses.fields(source)}[name]
        default = f.default if f.default is not dataclasses.MISSING else None
        return default, hints.get(name, plain.get(str(f.type))), f.metadata.get("choices")
    param = inspect.signature(source).parameters[name]
    default = None if param.default is inspect.Parameter.empty else param.default
    return default, hints.get(name, plain.get(str(param.annotation))), None


def literal_choices(tp: Any) -> tuple | None:
    """The values of a ``Literal[...]`` annotation (also inside ``X | None``), else None."""
    if typing.get_origin(tp) is typing.Literal:
        return typing.get_args(tp)
    for arg in typing.get_args(tp) if typing.get_origin(tp) is not None else ():
        found = literal_choices(arg)
        if found is not None:
            return found
    return None


def plain_type(tp: Any) -> Any:
    """int / float for an ``int`` / ``float`` annotation (also ``X | None``), else None (a string)."""
    if tp in (int, float):
        return tp
    args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) is not None else []
    return args[0] if len(args) == 1 and args[0] in (int, float) else None


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON (``.json``) or TOML (any other suffix) document at ``path``: a dict."""
    from ptychopinn._io import parse_json, read_text

    path = Path(path)
    text = read_text(path, "config file", error=ConfigError)
    if path.suffix.lower() == ".json":
        return parse_json(text, path, "config file", error=ConfigError, expect=dict)
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ConfigError(f"{path}: reading TOML needs Python >= 3.11 or the 'tomli' package; "
                              "or write the file as JSON (.json)") from None
    try:
        return tomllib.loads(text)  # a TOML document is always a table
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


#: decisions about existing outputs: command line only (a repeated run must not silently replace
#: or continue something); left out of run_config.json and refused in a settings file
COMMAND_LINE_ONLY = ("overwrite", "resume")


def read_settings(path: str | os.PathLike, sections: Mapping[str, type],
                  run_options: Collection[str] | None = None) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """A settings file (a ``--config`` file, or the ``run_config.json`` a run writes): ({section:
    {field: value}}, {option: value} of its [run] table). One table per config dataclass of
    ``sections`` (a single section's fields may also stand at the top level); other options in
    [run], checked against ``run_options`` when given; keys starting with ``_`` are comments.
    Unknown tables, fields or options, and :data:`COMMAND_LINE_ONLY` keys, are a ConfigError
    naming the file and the key. E.g. ``read_settings("RUN/run_config.json", {"model": ModelConfig,
    "training": TrainConfig})[0]["training"]`` are the training fields a run used."""
    doc = load_config_file(path)
    values: dict[str, dict[str, Any]] = {}
    run: dict[str, Any] = {}
    single = next(iter(sections)) if len(sections) == 1 else None
    for key, value in doc.items():
        if key.startswith("_"):
            continue
        inner = value if isinstance(value, dict) and (key in sections or key == "run") else {key: value}
        for name in COMMAND_LINE_ONLY:
            if name in inner:
                raise ConfigError(f"{path}: '{name}' can only be given on the command line (--{name})")
        if key in sections:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: '{key}' must be a table of {sections[key].__name__} fields")
            unknown = sorted(set(value) - {f.name for f in dataclasses.fields(sections[key])})
            if unknown:
                raise ConfigError(f"{path}: [{key}]: unknown {sections[key].__name__} field(s) "
                                  f"{', '.join(unknown)}")
            values.setdefault(key, {}).update(value)
        elif key == "run":
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: 'run' must be a table of command-line options")
            unknown = sorted(set(value) - set(run_options)) if run_options is not None else []
            if unknown:
                raise ConfigError(f"{path}: [run]: unknown option '{unknown[0]}' (known: {', '.join(sorted(run_options))})")
            run.update(value)
        elif single is not None and key in {f.name for f in dataclasses.fields(sections[single])}:
            values.setdefault(single, {})[key] = value
        else:
            raise ConfigError(f"{path}: unknown key '{key}' (tables: {', '.join([*sections, 'run'])})")
    return values, run


def settings_document(command: str, configs: Mapping[str, Any], run: Mapping[str, Any],
                      threads: int | None = None) -> dict[str, Any]:
    """What a run writes as ``run_config.json``: an ``_about`` block, the [run] options and one
    table per config (``configs``: section -> config object; :data:`COMMAND_LINE_ONLY` fields left
    out), in the format :func:`read_settings` reads back. Non-finite floats stay floats (Python's
    json reads them back)."""
    import time

    from ptychopinn import __version__
    from ptychopinn._io import to_plain

    doc: dict[str, Any] = {"_about": {
        "command": command, "package_version": __version__, "threads": threads,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "note": f"repeat with: ptychopinn {command} --config THIS_FILE (plus the required options)",
    }, "run": to_plain(dict(run), nonfinite="keep")}
    for section, obj in configs.items():
        d = obj.to_dict() if hasattr(obj, "to_dict") else dataclasses.asdict(obj)
        doc[section] = to_plain({k: v for k, v in d.items() if k not in COMMAND_LINE_ONLY}, nonfinite="keep")
    return doc
