"""Options declared from the library (``_common.add_field_option``): defaults, choices and types
come from the dataclass field or function parameter, never retyped in ``cli/``."""

from __future__ import annotations

import argparse
import ast
import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from ptychopinn._config import opt
from ptychopinn.cli import _common

CLI = Path(_common.__file__).parent


@dataclasses.dataclass(frozen=True)
class _Cfg:
    mode: Literal["a", "b"] = "b"
    kind: str = dataclasses.field(default="x", metadata={"choices": ("x", "y")})
    count: int = 3
    rate: float | None = None
    flag: bool = False
    name: str = "n"


def _parse(argv: list[str], **per_field) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    for f in dataclasses.fields(_Cfg):
        _common.add_field_option(p, _Cfg, f.name, help="h", **per_field.get(f.name, {}))
    return p.parse_args(argv)


def test_defaults_choices_and_types_come_from_the_field():
    args = _parse([])
    assert vars(args) == {"mode": "b", "kind": "x", "count": 3, "rate": None, "flag": False, "name": "n"}
    args = _parse(["--mode", "a", "--kind", "y", "--count", "5", "--rate", "0.5", "--flag", "--name", "7"])
    assert (args.mode, args.kind, args.count, args.rate, args.flag, args.name) == ("a", "y", 5, 0.5, True, "7")
    for bad in (["--mode", "c"], ["--kind", "z"], ["--count", "x"]):
        with pytest.raises(SystemExit):
            _parse(bad)


def test_explicit_flag_dest_default_and_constant_win():
    p = argparse.ArgumentParser()
    a = _common.add_field_option(p, _Cfg, "mode", "--the-mode", dest="m", default="a", choices=("a", "b", "c"))
    assert (a.option_strings, a.dest, a.default, a.choices) == (["--the-mode"], "m", "a", ("a", "b", "c"))


def test_function_parameters_declare_options_too():
    def fn(x, *, size: int = 4, how: Literal["p", "q"] = "q"):
        return x

    p = argparse.ArgumentParser()
    _common.add_field_option(p, fn, "size")
    _common.add_field_option(p, fn, "how")
    assert vars(p.parse_args(["--size", "8"])) == {"size": 8, "how": "q"}


def test_no_literal_choices_lists_in_cli():
    """Choices are the library's constants (``ARCHS``, ``SCAN_KINDS``, ...), not lists retyped in
    cli/ (the file-format names of ``convert --to/--from`` wait for the format registry)."""
    found = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "choices" and isinstance(node.value, (ast.List, ast.Tuple)):
                if path.name != "convert.py":
                    found.append(f"{path.name}:{node.lineno}")
    assert not found, f"literal choices lists in cli/: {found}"


def test_commands_do_not_import_each_other():
    """A command module imports only the private helpers (``_common``, ``_checks``,
    ``_data_input``, ``_train_options``); shared library work lives in the library."""
    found = []
    for path in sorted(CLI.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if isinstance(node, ast.ImportFrom) and node.module == "ptychopinn.cli":
                names = [f"ptychopinn.cli.{a.name}" for a in node.names]
            for name in names:
                if name.startswith("ptychopinn.cli.") and not name.split(".")[2].startswith("_") \
                        and not (path.name == "main.py"):
                    found.append(f"{path.name}: {name}")
    assert not found, f"cli command modules importing each other: {found}"


@dataclasses.dataclass(frozen=True)
class _Declared:
    count: int = opt(3, "how many", check="positive", metavar="K")
    rate: float = opt(0.5, "a fraction", check="fraction")
    plot: bool = opt(True, "skip the plot", flag="--no-plot")
    kind: str = opt("a", "the kind", choices=("a", "b"), flag="--the-kind")
    internal: int = 7  # no option: declares none


def test_options_are_generated_from_field_metadata():
    """``add_fields`` reads help, metavar, flag, choices and the numeric check from ``opt(...)``;
    fields without one get no option; ``config_for`` builds the config from the parsed values."""
    p = argparse.ArgumentParser()
    _common.add_fields(p, _Declared)
    acts = {a.dest: a for a in p._actions if a.dest != "help"}
    assert set(acts) == {"count", "rate", "plot", "kind"}
    assert (acts["count"].help, acts["count"].metavar, acts["kind"].option_strings) == ("how many", "K", ["--the-kind"])
    args = p.parse_args(["--count", "5", "--no-plot", "--the-kind", "b", "--rate", "0"])
    assert _common.config_for(args, "x", _Declared) == _Declared(count=5, rate=0.0, plot=False, kind="b")
    assert _common.config_for(p.parse_args([]), "x", _Declared) == _Declared()
    for bad in (["--count", "0"], ["--rate", "1"], ["--rate", "nan"], ["--the-kind", "c"]):
        with pytest.raises(SystemExit):
            p.parse_args(bad)
    with pytest.raises(ValueError):
        opt(1, "h", check="positve")


def test_train_options_come_from_the_configs():
    """Every option of ``train`` that names a ModelConfig/TrainConfig field has that field's help and default."""
    from ptychopinn.cli.main import build_parser
    from ptychopinn.model.config import ModelConfig
    from ptychopinn.training.config import TrainConfig

    p = build_parser(only="train")._command_parsers["train"]
    acts = {a.dest: a for a in p._actions}
    for cls in (ModelConfig, TrainConfig):
        for f in dataclasses.fields(cls):
            if "help" in f.metadata:
                assert acts[f.name].help == f.metadata["help"] and acts[f.name].default == f.default, f.name
