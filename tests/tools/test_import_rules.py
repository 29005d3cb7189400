"""The layering holds: a stage package imports only the packages its entry in ``ALLOWED`` names.

Every module under src/ptychopinn is parsed with ast (imports inside functions included). Three
forms count as an import of a package: ``import ptychopinn.x`` / ``from ptychopinn.x import y``
(relative forms resolved), ``from ptychopinn import x``, and strings: the argument of
``importlib.import_module`` (an f-string by its constant head) and any string literal that is a
dotted module path or a ``"ptychopinn.x.mod:function"`` job string (the studies runner and the lazy
attribute maps import those).

A top-level private module (``_io``, ``_config``, ``_observe`` ...) and ``errors`` may be imported by
anyone and import no stage package; ``cli`` may import everything, and nothing imports ``cli``.
A new stage package must be added to ``ALLOWED`` (docs/contributing.md shows the graph)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "ptychopinn"

# package -> the stage packages it may import (written out transitively: a package may also use what
# its dependencies use). model reads data (the bundle's probe file, grouping defaults); evaluation needs only data.
ALLOWED: dict[str, frozenset[str]] = {
    "physics": frozenset(),
    "data": frozenset({"physics"}),
    "model": frozenset({"physics", "data"}),
    "training": frozenset({"physics", "data", "model"}),
    "inference": frozenset({"physics", "data", "model", "training"}),
    "evaluation": frozenset({"physics", "data"}),
    "iterative": frozenset({"physics", "data", "evaluation"}),
    "telemetry": frozenset({"physics", "data", "model", "training", "inference", "evaluation"}),
    "studies": frozenset({"physics", "data", "model", "training", "inference", "evaluation", "iterative"}),
}
STAGES = frozenset(ALLOWED)

# a string literal naming a module ("ptychopinn.data.cxi") or a job ("ptychopinn.studies._common:f")
_MODULE_STRING = re.compile(r"ptychopinn(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*)?")


def _import_module_arg(node: ast.Call) -> str | None:
    """The module string (or an f-string's constant head) passed to ``importlib.import_module``."""
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
    if name != "import_module" or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
        return str(arg.values[0].value)
    return None


def imported_packages(path: Path, src: Path = SRC) -> set[tuple[str, int]]:
    """(first component under ptychopinn, line) of every ptychopinn import in a module."""
    rel = path.relative_to(src.parent).with_suffix("").parts  # ('ptychopinn', 'pkg', 'mod')
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(rel[:-1])[: len(rel) - node.level]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names = [module]
            if module == "ptychopinn":  # from ptychopinn import training / from .. import training
                names = [f"ptychopinn.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call):
            arg = _import_module_arg(node)
            names = [arg.partition(":")[0]] if arg else []
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _MODULE_STRING.fullmatch(node.value):
            names = [node.value.partition(":")[0]]
        else:
            continue
        out |= {(n.split(".")[1], node.lineno) for n in names if n.startswith("ptychopinn.") and n.split(".")[1]}
    return out


def violations(src: Path = SRC) -> list[str]:
    bad = []
    packages = {p.name for p in src.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    for pkg in sorted(packages - STAGES - {"cli"}):
        bad.append(f"{pkg}/ is a package missing from ALLOWED (add its allowed imports)")
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src).parts
        pkg = parts[0] if len(parts) > 1 else None  # None: a top-level module
        for target, line in sorted(imported_packages(path, src)):
            if target == pkg or (target not in STAGES and target != "cli"):
                continue  # same package, or a top-level module (_io, errors, ...)
            where = f"{path.relative_to(src)}:{line} imports ptychopinn.{target}"
            if target == "cli" and pkg != "cli" and path.name != "__main__.py":
                bad.append(where + " (nothing imports the CLI)")
            elif pkg is None and target != "cli" and path.name != "__init__.py":
                bad.append(where + " (top-level modules import no stage package)")
            elif pkg in STAGES and target not in ALLOWED[pkg]:
                bad.append(where + f" (not an allowed edge of {pkg}: {sorted(ALLOWED[pkg]) or 'none'})")
    return bad


def test_no_package_imports_outside_its_allowed_edges():
    assert violations() == []


def test_allowed_edges_are_acyclic_and_transitive():
    for pkg, deps in ALLOWED.items():
        assert pkg not in deps and deps <= STAGES, pkg
        for dep in deps:  # what a dependency may use, its user may use too; no way back
            assert ALLOWED[dep] <= deps, (pkg, dep)
            assert pkg not in ALLOWED[dep], (pkg, dep)


def test_the_check_fails_on_a_violation(tmp_path):
    root = tmp_path / "ptychopinn"
    for pkg, text in (("physics", "from ptychopinn.data.contract import load_dataset\n"),
                      ("training", "def f():\n    from ptychopinn.telemetry import observers\n"),
                      ("data", "from ptychopinn.physics import dose\nfrom ptychopinn._io import to_plain\n"),
                      ("telemetry", "from ..training import bundle\n")):
        (root / pkg).mkdir(parents=True)
        (root / pkg / "m.py").write_text(text)
    found = violations(root)
    assert len(found) == 2
    assert found[0].startswith("physics/m.py:1 imports ptychopinn.data")
    assert found[1].startswith("training/m.py:2 imports ptychopinn.telemetry")


def test_the_check_catches_every_import_form(tmp_path):
    """A synthetic tree with one bad import of each form: each is flagged, the good ones are not."""
    root = tmp_path / "ptychopinn"
    modules = {
        "model/a.py": "from ptychopinn import evaluation\n",  # a later stage, not allowed
        "model/b.py": "from .. import training\n",
        "data/c.py": "import ptychopinn.model.unet as u\n",
        "evaluation/d.py": "import importlib\nm = importlib.import_module('ptychopinn.inference.stitch')\n",
        "evaluation/e.py": "from importlib import import_module\ndef f(k):\n    return import_module(f'ptychopinn.training.{k}')\n",
        "inference/f.py": "JOB = 'ptychopinn.studies._common:train_bundle'\n",
        "physics/g.py": "from ptychopinn import cli\n",
        "_io.py": "from ptychopinn import data\n",
        # allowed: downward strings and imports, top-level modules, descriptive strings
        "studies/ok.py": ("import importlib\nJOB = 'ptychopinn.studies._common:f'\nM = 'ptychopinn.training.trainer'\n"
                          "G = 'ptychopinn.data.simulate::simulate'\nfrom ptychopinn import errors, _io, __version__\n"
                          "importlib.import_module(f'ptychopinn.inference.{M}')\n"),
        "iterative/ok.py": "from ptychopinn.evaluation import metrics\n",
        "widgets/h.py": "",  # a package nobody registered
    }
    for rel, text in modules.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.parent != root:
            (p.parent / "__init__.py").touch()
        p.write_text(text)
    found = violations(root)
    assert found[0].startswith("widgets/ is a package missing from ALLOWED")
    flagged = sorted(f.split(" imports ")[0] for f in found[1:])
    assert flagged == ["_io.py:1", "data/c.py:1", "evaluation/d.py:2", "evaluation/e.py:3",
                       "inference/f.py:1", "model/a.py:1", "model/b.py:1", "physics/g.py:1"], found


def test_library_code_never_selects_a_matplotlib_backend():
    """``matplotlib.use`` changes the backend of the caller's whole process (e.g. a notebook)."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "use"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in ("matplotlib", "mpl")):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                offenders += [f"{path.relative_to(SRC)}:{node.lineno} (pyplot)" for n in names if n == "matplotlib.pyplot"]
    assert offenders == []
